"""Saved-model stand-ins with the trained models' contract and predictions chosen by the test.

Contract: raw uint8 (N, 32, 32, 3) in, softmax (N, 10) out, loadable by `keras.models.load_model`.
"""
from __future__ import annotations

import numpy as np


def pixel_model(pixel: tuple[int, int, int] = (0, 0, 0)):
    """A model whose most likely class is the value (0..9) of one input pixel.

    logit_k = 2k·v − k² = v² − (v − k)²: linear in v, largest at k = v, so a single Dense layer.
    """
    import keras

    inputs = keras.Input((32, 32, 3))
    flat = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(10, activation="softmax")
    model = keras.Model(inputs, dense(flat))
    kernel = np.zeros((32 * 32 * 3, 10), dtype="float32")
    kernel[np.ravel_multi_index(pixel, (32, 32, 3))] = 2 * np.arange(10)
    dense.set_weights([kernel, -(np.arange(10, dtype="float32") ** 2)])
    return model
