"""Feeding a float16 feature-map cache to Keras one batch at a time.

Keras casts a float array that is not float32 to float32 as a whole before `fit` or `predict` (its
array slicing "normalizes floats to floatx"), so a float16 cache briefly costs three times its size,
and more with the copies around it: the cache of the input of block 4a (28x28x40 per image, 55,000
images, 3.4 GB) ran a 24 GB machine out of memory. This sequence casts one batch at a time instead.
"""
from __future__ import annotations

import keras
import numpy as np


class HalfBatches(keras.utils.PyDataset):
    """Batches of `x` (and `y`) as float32, in a new order every epoch when `shuffle` is set.

    The order comes from a generator seeded off NumPy's global state, so a seeded run repeats it.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 32, shuffle: bool = False):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self._rng = np.random.default_rng(np.random.randint(2**31)) if shuffle else None
        self._order = self._rng.permutation(len(x)) if shuffle else None

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index: int):
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        rows = window if self._order is None else np.sort(self._order[window])  # sorted: a faster gather
        x = self.x[rows].astype(np.float32)
        return x if self.y is None else (x, self.y[rows])

    def on_epoch_end(self) -> None:
        if self._rng is not None:
            self._order = self._rng.permutation(len(self.x))
