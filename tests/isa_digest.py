"""Prints the SHA-256 of the augment stage's output for a tiny fixed input: run it under different
oneDNN instruction-set settings (ONEDNN_MAX_CPU_ISA, TF_ENABLE_ONEDNN_OPTS) to compare the bytes.

`python -m tests.isa_digest` -> one line, the hex digest of the .npz file the stage would write.
"""
from __future__ import annotations

import hashlib
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


def main() -> None:
    from cifar10.augmentation.rebalance import augment
    from cifar10.training.runtime import seed_everything

    params = Params()  # the study's transforms, as committed
    seed_everything(params.base.seed, params.base.deterministic)
    result = augment(fixed_input(), params.imbalance.classes, params.augment.target, params.augment,
                     params.base.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npz"
        dataset.save(path, result)
        print(hashlib.sha256(path.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
