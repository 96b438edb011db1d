"""Dropout drawing 16 random bits per unit, for training the CNN on the CPU.

Keras' Dropout draws one uniform number per unit in the layer's compute dtype and keeps the units at
or above the rate. Under mixed_bfloat16 that number has 7 bits of mantissa, so a rate of 0.2 drops
26/128 = 20.3% of the units, and drawing, comparing and scaling in separate passes took 5.3 of the
CNN's 47.2 ms bfloat16 training step on a 2-core AMX Xeon (`benchmarks.profile`). This layer draws half
as many 32-bit integers and reads each as two 16-bit ones: the kept fraction is right to 1/65536 in
either precision, the mask is the same in float32 and bfloat16 for one seed, and the step is 1.06x
faster in bfloat16 (`benchmarks.dropout`, BENCHMARKS.md). Kept units are
scaled by 1 / (1 - rate), as Keras does; inference passes inputs through. The saved model uses the
stock layer (`cifar10.models.fused_bn.to_stock`), which behaves identically at inference.
"""
from __future__ import annotations

import keras
import tensorflow as tf
# Keras' own helpers for a TF-backend draw from the layer's SeedGenerator, as its Dropout uses them.
from keras.src.backend.tensorflow.random import _cast_seed, _get_concrete_noise_shape, draw_seed

LEVELS = 2**16


def keep_mask(shape, rate: float, seed) -> tf.Tensor:
    """Boolean mask of `shape` keeping each unit with probability 1 - round(rate * 65536) / 65536."""
    n = tf.reduce_prod(shape)
    words = tf.random.stateless_uniform([(n + 1) // 2], seed=seed, minval=None, maxval=None, dtype=tf.uint32)
    bits = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:n]
    # A rate within 1/131072 of 1 would round to 65536, past uint16: it keeps 1/65536 of the units instead.
    return tf.reshape(bits, shape) >= tf.constant(min(round(rate * LEVELS), LEVELS - 1), tf.uint16)


@keras.saving.register_keras_serializable(package="cifar10")
class BitsDropout(keras.layers.Dropout):
    """keras.layers.Dropout with its mask drawn from 16-bit integers (see the module docstring)."""

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1.0:
            return tf.zeros_like(inputs)
        seed = _cast_seed(draw_seed(self.seed_generator))
        keep = keep_mask(_get_concrete_noise_shape(inputs, self.noise_shape), self.rate, seed)
        scaled = inputs * tf.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return tf.where(keep, scaled, tf.zeros_like(scaled))
