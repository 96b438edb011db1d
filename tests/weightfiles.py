"""Real EfficientNet-B0 no-top weights files for tests, in the legacy HDF5 layout of Keras' published file.

Random weights give features of about 1e-7 (batch norm in inference mode with untouched statistics
shrinks every block), so every image would get the same prediction and equivalence tests could not
fail. Calibrating the batch norm statistics on a few images at the test's image size fixes that.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_backbone_weights(path: Path, images: np.ndarray, image_size: int) -> Path:
    """Save a random EfficientNet-B0 (no top) with batch norm statistics set from `images` to `path` (.h5)."""
    import h5py
    import keras
    import tensorflow as tf
    from keras.src.legacy.saving import legacy_h5_format  # the writer of the format Keras publishes

    model = keras.applications.EfficientNetB0(
        include_top=False, weights=None, pooling="avg", input_shape=(image_size, image_size, 3)
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # one training-mode pass sets the moving statistics to the batch's
    batch = tf.image.resize(tf.cast(images, tf.float32), (image_size, image_size))
    model(batch, training=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, model)
    keras.backend.clear_session()
    return path
