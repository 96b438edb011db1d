"""The training CNN's dropout (cifar10.models.bits_dropout): the rate it claims in both precisions, one
mask for one seed whatever the precision, stock behaviour at inference and in the saved model."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from cifar10.models.bits_dropout import BitsDropout
from cifar10.models.cnn import build_cnn
from cifar10.models.fused_bn import to_stock
from cifar10.schema.train import ModelParams

N = 1_000_000  # the dropped fraction's standard error is below 0.0005 at every rate here


def _dropped(layer, x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(layer(x, training=True)), dtype=np.float32) == 0


@pytest.mark.parametrize("rate", [0.2, 0.3, 0.4])
def test_the_dropped_fraction_is_the_rate_and_the_mask_the_same_in_both_precisions(rate):
    x = np.ones((N // 1000, 1000), dtype=np.float32)
    masks = {policy: _dropped(BitsDropout(rate, seed=7, dtype=policy), x) for policy in ("float32", "mixed_bfloat16")}
    assert abs(masks["float32"].mean() - rate) < 0.002
    np.testing.assert_array_equal(masks["float32"], masks["mixed_bfloat16"])
    kept = np.asarray(keras.ops.convert_to_numpy(BitsDropout(rate, seed=7)(x, training=True)))
    assert kept[~masks["float32"]] == pytest.approx(1 / (1 - rate))  # inverted dropout: the mean is kept


def test_keras_stock_dropout_drifts_from_its_rate_in_bfloat16():
    """Why the layer exists: Keras draws the uniform number in the compute dtype, 7 bits in bfloat16."""
    x = np.ones((N // 1000, 1000), dtype=np.float32)
    stock = _dropped(keras.layers.Dropout(0.4, seed=7, dtype="mixed_bfloat16"), x).mean()
    bits = _dropped(BitsDropout(0.4, seed=7, dtype="mixed_bfloat16"), x).mean()
    assert stock > 0.405 and abs(bits - 0.4) < 0.002


def test_a_seed_repeats_its_masks_and_inference_passes_inputs_through():
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 16)).astype(np.float32)
    first, second = BitsDropout(0.3, seed=11), BitsDropout(0.3, seed=11)
    a, b = (keras.ops.convert_to_numpy(layer(x, training=True)) for layer in (first, second))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, keras.ops.convert_to_numpy(first(x, training=True)))  # the next draw differs
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(first(x, training=False)), x)


def test_noise_shape_drops_whole_channels():
    x = np.ones((4, 8, 8, 64), dtype=np.float32)
    out = keras.ops.convert_to_numpy(BitsDropout(0.5, noise_shape=(None, 1, 1, 64), seed=3)(x, training=True))
    per_channel = (out == 0).transpose(0, 3, 1, 2).reshape(4, 64, -1)
    assert np.all(per_channel.all(axis=2) | (~per_channel).all(axis=2))  # each channel all dropped or all kept
    assert 0 < (out == 0).mean() < 1


def test_the_saved_model_has_keras_stock_dropout():
    model = build_cnn(ModelParams(filters=[4, 8], conv_dropout=[0.1, 0.2], dense_units=[8]),
                      fused_batch_norm=True, bits_dropout=True)
    assert sum(isinstance(layer, BitsDropout) for layer in model.layers) == 3
    stock = to_stock(model)
    drops = [layer for layer in stock.layers if isinstance(layer, keras.layers.Dropout)]
    assert [type(layer) for layer in drops] == [keras.layers.Dropout] * 3
    assert [layer.rate for layer in drops] == [0.1, 0.2, 0.5]
