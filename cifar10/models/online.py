"""Training-only augmentation layers of the CNN that Keras has no layer for: pad-and-crop and cutout.

Both act on float images in [0, 1] in training and pass them through unchanged at inference. Each
draws from its own Keras SeedGenerator, whose state is a variable of the model: the same seed gives
the same transforms, and a resumed training (cifar10.training.backup) continues the same draws.

- PadCrop(pad): each image is padded with `pad` pixels of zeros (black) on every side and a window of
  the original size is cut at a random position, every one of the (2 pad + 1)^2 equally likely: the
  content moves by a whole number of pixels, at most `pad` either way, and the uncovered border is
  black. The standard CIFAR recipe is pad 4 (He et al., 2016). Keras' RandomCrop cannot do it: at
  inference it would resize the padded image instead of passing the image through.
- Cutout(size): one `size` x `size` square per image, centred on a random pixel, set to 0 (black);
  a square reaching past the border is cut by it, so it covers less (DeVries & Taylor, 2017: 16 px
  on CIFAR-10).

The saved model holds a stock Identity layer in their place (`cifar10.models.fused_bn.to_stock`):
what they do at inference, so every reader loads the model without this project's code.
"""
from __future__ import annotations

import keras
import tensorflow as tf


class TrainingOnly(keras.layers.Layer):
    """A weightless layer that changes images in training only; saved as keras.layers.Identity."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="cifar10")
class PadCrop(TrainingOnly):
    """Pad `pad` pixels of zeros on every side, then cut a random window of the input's size."""

    def __init__(self, pad: int, seed: int | None = None, **kwargs):
        super().__init__(seed, **kwargs)
        self.pad = int(pad)

    def call(self, images, training=False):
        if not training or not self.pad:
            return images
        height, width, p = images.shape[1], images.shape[2], self.pad
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]])
        # The window's top-left corner in the padded image, per image: 0..2p on each axis.
        corner = keras.random.randint((tf.shape(images)[0], 2), 0, 2 * p + 1, seed=self.seed_generator)
        rows = corner[:, :1] + tf.range(height)[None, :]
        cols = corner[:, 1:] + tf.range(width)[None, :]
        return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package="cifar10")
class Cutout(TrainingOnly):
    """Set one `size` x `size` square per image, centred on a random pixel, to 0."""

    def __init__(self, size: int, seed: int | None = None, **kwargs):
        super().__init__(seed, **kwargs)
        self.size = int(size)

    def call(self, images, training=False):
        if not training or not self.size:
            return images
        n, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
        top = keras.random.randint((n, 1, 1), 0, height, seed=self.seed_generator) - self.size // 2
        left = keras.random.randint((n, 1, 1), 0, width, seed=self.seed_generator) - self.size // 2
        rows, cols = tf.range(height)[None, :, None], tf.range(width)[None, None, :]
        inside = (rows >= top) & (rows < top + self.size) & (cols >= left) & (cols < left + self.size)
        return tf.where(inside[..., None], tf.zeros_like(images), images)

    def get_config(self):
        return {**super().get_config(), "size": self.size}
