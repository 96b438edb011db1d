"""Digests of the augment stage's output for a tiny fixed input, to compare the bytes between CPU kinds and
under the settings that make one machine imitate another (ONEDNN_MAX_CPU_ISA, TF_ENABLE_ONEDNN_OPTS,
NPY_DISABLE_CPU_FEATURES).

`python -m tests.isa_digest` -> one line, the SHA-256 of the .npz file the stage would write.
`python -m tests.isa_digest --steps` -> one line per step of the study's transform on 64 noise images
(the committed params, seed 42): the step, its digest from TensorFlow (the stage's code), its digest from
the NumPy twin (tests/numpy_twin.py) given the same random draws; then the .npz line. On two machines,
the first step whose digest differs is the one that depends on the CPU.
"""
from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

from cifar10.classes import CIFAR10_CLASSES
from cifar10.data import dataset
from cifar10.data.dataset import Dataset
from cifar10.schema import Params

PER_CLASS, RARE = 24, 4  # 8 classes x 24 originals; cat and dog get 20 synthetic images each


def fixed_input() -> Dataset:
    """Uniform noise: every pixel is an edge, so a last-bit difference in the transform shows."""
    rng = np.random.default_rng(38)
    rare = Params().imbalance.classes
    counts = [RARE if name in rare else PER_CLASS for name in CIFAR10_CLASSES]
    y = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    return Dataset(rng.integers(0, 256, (len(y), 32, 32, 3), dtype=np.uint8), y)


def digest(array) -> str:
    """The first 16 hex digits of the SHA-256 of an array's bytes."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(array)).tobytes()).hexdigest()[:16]


def npz_digest(params: Params) -> str:
    from cifar10.augmentation.rebalance import augment
    from cifar10.runtime import seed_everything

    seed_everything(params.base.seed, params.base.deterministic)
    result = augment(fixed_input(), params.imbalance.classes, params.augment.target, params.augment,
                     params.base.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npz"
        dataset.save(path, result)
        return hashlib.sha256(path.read_bytes()).hexdigest()


def steps(params: Params, n: int = 64) -> list[tuple[str, str, str]]:
    """(step, TensorFlow's digest, the NumPy twin's digest) for each step of the `seed` policy."""
    import tensorflow as tf

    from cifar10.augmentation import exact
    from cifar10.augmentation.layers import build_layers, make_augmenter, to_uint8
    from cifar10.runtime import seed_everything
    from tests import numpy_twin as twin

    cfg, seed = params.augment, params.base.seed
    seed_everything(seed, params.base.deterministic)
    x = np.random.default_rng(38).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    affine, bright = build_layers(cfg, seed)  # the committed policy: the affine layer, then brightness
    t = {k: v.numpy() for k, v in affine.get_random_transformation_batch(n).items()}
    factors = bright.get_random_transformation_batch(n).numpy()
    rows = [(f"draw {k}", digest(v), digest(v)) for k, v in t.items()] + [("draw brightness", digest(factors), digest(factors))]

    angles64 = tf.constant(t["angles"].astype(np.float64))
    sin, cos = exact.sin_cos(angles64)
    tsin, tcos = twin.sin_cos(t["angles"].astype(np.float64))
    gx, gy = exact.sample_coordinates(t["angles"], t["shifts"], t["scales"][:, 0], 32, 32)
    tx, ty = twin.sample_coordinates(t["angles"], t["shifts"], t["scales"][:, 0], 32, 32)
    img = exact.bilinear(tf.cast(x, tf.float32), gx, gy, cfg.fill_mode)
    timg = twin.bilinear(x.astype(np.float32), tx, ty, cfg.fill_mode)
    out = bright.augment_images(img, tf.constant(factors))
    tout = twin.brighten(timg, factors)
    final = to_uint8(out)
    rows += [("sin", digest(sin), digest(tsin)), ("cos", digest(cos), digest(tcos)),
             ("sample x", digest(gx), digest(tx)), ("sample y", digest(gy), digest(ty)),
             ("resampled float32", digest(img), digest(timg)), ("brightened float32", digest(out), digest(tout)),
             ("final uint8", digest(final), digest(twin.to_uint8(tout)))]
    # The stage's own compiled path, freshly seeded, makes the same draws: it must give the same bytes.
    seed_everything(seed, params.base.deterministic)
    rows.append(("stage's augmenter", digest(make_augmenter(cfg, seed)(x)), digest(twin.to_uint8(tout))))
    return rows


def main() -> None:
    params = Params()  # the study's transforms, as committed
    if "--steps" in sys.argv[1:]:
        for name, ours, theirs in steps(params):
            print(f"{name:20s} {ours} {theirs}")
    print(npz_digest(params))


if __name__ == "__main__":
    main()
