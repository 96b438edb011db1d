"""Tiny, generated stand-ins for CIFAR-10: a few learnable 32x32 images per class."""
from __future__ import annotations

import numpy as np

from cifar10.classes import CIFAR10_CLASSES
from cifar10.data.dataset import Dataset


def make_images(per_class: int, seed: int = 0) -> Dataset:
    """`per_class` images of each class: a class-specific colour and stripe, plus noise.

    Distinct enough that one epoch of training moves accuracy, small enough to train in seconds.
    """
    rng = np.random.default_rng(seed)
    n_classes = len(CIFAR10_CLASSES)
    y = np.repeat(np.arange(n_classes, dtype=np.int64), per_class)
    x = rng.integers(0, 64, size=(len(y), 32, 32, 3), dtype=np.int64)
    for label in range(n_classes):
        rows = y == label
        colour = np.array([(label * 97) % 192, (label * 53) % 192, (label * 29) % 192])
        x[rows] += colour
        x[rows, (label * 3) % 32 : (label * 3) % 32 + 3, :, :] = 255  # a stripe at a class-specific row
    return Dataset(x.clip(0, 255).astype(np.uint8), y, CIFAR10_CLASSES)


def to_cifar_binary(ds: Dataset) -> bytes:
    """The official binary format: per record one label byte, then 1024 R, 1024 G, 1024 B bytes."""
    planes = ds.x.transpose(0, 3, 1, 2).reshape(len(ds), 3072)
    return np.concatenate([ds.y.astype(np.uint8)[:, None], planes], axis=1).tobytes()
