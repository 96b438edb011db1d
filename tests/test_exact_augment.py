"""The augment stage's `seed` policy computes nothing whose result depends on the CPU: its graph holds only
exactly rounded float ops, integer ops and copies, and a NumPy twin of every step agrees bit for bit.

These hold on any one machine and say what another CPU kind will compute; tests/test_same_bits.py pins the
resulting digests, the same on every kind.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from cifar10.schema.augment import AugmentParams
from tests import numpy_twin as twin

# Ops whose float results IEEE 754 fixes to the bit (one rounding of the exact result), or that only move,
# compare or select values. Anything else in the graph (sin, cos, exp, matmul, convolution, the
# projective-transform kernel, float reductions) is computed by a kernel the CPU chooses or approximates.
EXACT_FLOAT = {"AddV2", "Sub", "Mul", "RealDiv", "Floor", "Round", "Maximum", "Minimum", "Cast"}
MOVES = {"Const", "Placeholder", "Identity", "NoOp", "Fill", "Pack", "Reshape", "Shape", "StridedSlice",
         "GatherV2", "ReverseV2", "SelectV2", "ExpandDims", "ConcatV2", "Range", "ZerosLike", "Bitcast",
         "Less", "LessEqual", "Greater", "GreaterEqual", "Equal", "LogicalAnd", "LogicalOr", "LogicalNot"}
# Integer-only ops: exact on integers; their float versions would sum or divide in a kernel's own order.
INTEGER_ONLY = {"Prod", "FloorMod", "FloorDiv"}
# Philox counter-based draws: integer arithmetic, then the integer bits placed in a float's mantissa.
RANDOM = {"RngReadAndSkip", "StatelessRandomUniformV2"}
INTEGER_TYPES = {3, 9, 4, 22, 23}  # DT_INT32, DT_INT64, DT_UINT8, DT_UINT32, DT_UINT64


def cpu_dependent_ops(graph_def) -> list[str]:
    """The ops of a graph (its functions' too) not known to give the same bits on every CPU, as 'op (name)'."""
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    bad = []
    for node in nodes:
        if node.op in EXACT_FLOAT | MOVES | RANDOM:
            continue
        if node.op in INTEGER_ONLY and node.attr["T"].type in INTEGER_TYPES:
            continue
        bad.append(f"{node.op} ({node.name})")
    return bad


def traced(fn, *specs):
    import tensorflow as tf

    return tf.function(fn, input_signature=list(specs)).get_concrete_function().graph.as_graph_def()


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "wrap", "constant"])
def test_the_seed_policy_graph_holds_only_cpu_independent_ops(fill_mode):
    import tensorflow as tf

    from cifar10.augmentation.layers import build_layers, to_uint8

    layers = build_layers(AugmentParams(fill_mode=fill_mode, horizontal_flip=True), seed=3)  # every layer on

    def apply(batch):
        x = tf.cast(batch, tf.float32)
        for layer in layers:
            x = layer(x)
        return to_uint8(x)

    graph = traced(apply, tf.TensorSpec([None, 32, 32, 3], tf.uint8))
    assert cpu_dependent_ops(graph) == []
    assert {"GatherV2", "RealDiv", "Floor", "StatelessRandomUniformV2"} <= {n.op for n in graph.node}


def test_the_op_check_flags_what_made_the_bytes_differ_between_cpus():
    import tensorflow as tf
    from keras_cv.src.utils import preprocessing

    def old_geometry(images, angles):
        rotation = preprocessing.get_rotation_matrix(angles, 32.0, 32.0)  # tf.cos and tf.sin
        composed = tf.matmul(tf.reshape(tf.concat([rotation, tf.ones_like(angles)[:, None]], 1), [-1, 3, 3]),
                             tf.eye(3, batch_shape=[1]))
        return preprocessing.transform(images, tf.reshape(composed, [-1, 9])[:, :8])

    graph = traced(old_geometry, tf.TensorSpec([None, 32, 32, 3], tf.float32), tf.TensorSpec([None], tf.float32))
    flagged = {entry.split()[0] for entry in cpu_dependent_ops(graph)}
    assert {"Cos", "Sin", "BatchMatMulV2", "ImageProjectiveTransformV3"} <= flagged
    float_sum = traced(lambda x: tf.reduce_prod(x, axis=1), tf.TensorSpec([None, 4], tf.float32))
    assert [e.split()[0] for e in cpu_dependent_ops(float_sum)] == ["Prod"]


def _draws(n: int, seed: int):
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-math.pi, math.pi, n).astype(np.float32)
    shifts = rng.uniform(-0.99, 0.99, (n, 2)).astype(np.float32)
    scales = np.exp(rng.uniform(np.log(0.05), np.log(20), n)).astype(np.float32)  # far zooms reach every border
    return angles, shifts, scales


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "wrap", "constant"])
def test_each_step_equals_its_numpy_twin_bit_for_bit(fill_mode):
    import tensorflow as tf

    from cifar10.augmentation import exact

    angles, shifts, scales = _draws(48, seed=5)
    images = np.random.default_rng(6).integers(0, 256, (48, 32, 32, 3), dtype=np.uint8)
    ours = exact.sin_cos(tf.constant(angles.astype(np.float64)))
    theirs = twin.sin_cos(angles.astype(np.float64))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.numpy(), b)
    x, y = exact.sample_coordinates(angles, shifts, scales, 32, 32)
    tx, ty = twin.sample_coordinates(angles, shifts, scales, 32, 32)
    np.testing.assert_array_equal(x.numpy(), tx)
    np.testing.assert_array_equal(y.numpy(), ty)
    assert (tx < 0).any() and (tx > 31).any() and (np.abs(tx) > 64).any(), "the draws must reach every border case"
    out = exact.bilinear(tf.cast(images, tf.float32), x, y, fill_mode).numpy()
    np.testing.assert_array_equal(out.view(np.uint32), twin.bilinear(images.astype(np.float32), tx, ty, fill_mode)
                                  .view(np.uint32))


def test_sine_and_cosine_are_right_to_float64_rounding_over_the_schema_range():
    import tensorflow as tf

    from cifar10.augmentation.exact import sin_cos

    angles = np.linspace(-math.pi, math.pi, 2001)
    sin, cos = (t.numpy() for t in sin_cos(tf.constant(angles)))
    assert np.abs(sin - [math.sin(a) for a in angles]).max() < 1e-15
    assert np.abs(cos - [math.cos(a) for a in angles]).max() < 1e-15


@pytest.mark.parametrize("fill_mode, pad", [("nearest", "edge"), ("reflect", "symmetric"), ("wrap", "wrap"),
                                            ("constant", "constant")])
def test_fill_modes_read_outside_pixels_as_their_names_say(fill_mode, pad):
    """A whole-pixel shift samples exactly on the grid: the output is the padded image, cut."""
    import tensorflow as tf

    from cifar10.augmentation.exact import bilinear, sample_coordinates

    image = np.random.default_rng(7).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    shift = np.array([[5 / 32, -3 / 32]], np.float32)  # content moves 5 px right and 3 px up
    x, y = sample_coordinates(np.zeros(1, np.float32), shift, np.ones(1, np.float32), 32, 32)
    out = bilinear(tf.cast(image, tf.float32), x, y, fill_mode).numpy()[0]
    padded = np.pad(image[0], ((8, 8), (8, 8), (0, 0)), mode=pad)
    np.testing.assert_array_equal(out, padded[8 + 3 : 8 + 3 + 32, 8 - 5 : 8 - 5 + 32])


@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
def test_the_compiled_augmenter_computes_what_the_ops_compute_one_by_one(fill_mode):
    """TensorFlow's graph optimizer may rewrite arithmetic before a compiled function runs (its constant folding
    changed the former transform's bytes); run op by op, nothing is rewritten. Both must give the same bytes."""
    import tensorflow as tf

    from cifar10.augmentation.layers import make_augmenter

    cfg = AugmentParams(fill_mode=fill_mode, horizontal_flip=True)
    images = np.random.default_rng(8).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    compiled = make_augmenter(cfg, seed=9)(images)
    tf.config.run_functions_eagerly(True)
    try:
        one_by_one = make_augmenter(cfg, seed=9)(images)
    finally:
        tf.config.run_functions_eagerly(False)
    assert not np.array_equal(compiled, images)
    np.testing.assert_array_equal(compiled, one_by_one)
