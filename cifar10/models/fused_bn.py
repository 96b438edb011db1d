"""Batch normalization on TensorFlow's fused kernel, for training the CNN on the CPU.

Keras 3's BatchNormalization computes moments, variance and the normalisation with separate generic
ops and differentiates them one by one: a third of the CNN's training step on a 2-core CPU. TF's
FusedBatchNormV3 (oneDNN's batch norm, with the following ReLU fused in) does the same maths in one
kernel with an analytic gradient: training output normalised with the batch mean and *biased* batch
variance, moving statistics updated as `moving * momentum + batch * (1 - momentum)` with the biased
variance, inference from the moving statistics. Only the order of floating-point operations differs,
so results agree with the stock layer to rounding. The saved model uses the stock layer
(`to_stock`), so every reader loads it with plain Keras.
"""
from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="cifar10")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization, computed by FusedBatchNormV3 where it can be (NHWC or 2-D, no
    mask, renorm or synchronisation); anything else falls back to the stock computation."""

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        axis = self.axis if self.axis >= 0 else self.axis + rank
        return (mask is None and rank in (2, 4) and axis == rank - 1 and self.scale and self.center
                and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        rank = len(inputs.shape)
        x = inputs if rank == 4 else inputs[:, None, None, :]  # (N, C) -> (N, 1, 1, C)
        # The kernel keeps statistics, scale and offset in float32 whatever x's dtype, as the stock
        # layer does after its explicit up-cast under a mixed policy.
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.constant([], tf.float32), variance=tf.constant([], tf.float32),
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
            shape = tf.shape(x)
            n = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
            # The kernel applies Bessel's correction; the stock layer keeps the biased variance.
            variance = variance * ((n - 1.0) / n)
            for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                new = tf.cast(moving, tf.float32) * self.momentum + batch * (1.0 - self.momentum)
                moving.assign(tf.cast(new, moving.dtype))
        else:
            y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, exponential_avg_factor=1.0,
                data_format="NHWC", is_training=False)
        if rank == 2:
            y = y[:, 0, 0, :]
        return tf.cast(y, self.compute_dtype)


def to_stock(model: keras.Model) -> keras.Model:
    """The same model with stock BatchNormalization (and Dropout) layers and the same weights, and an
    Identity layer for each training-only augmentation of our own (what it does at inference): what is saved."""
    from cifar10.models.bits_dropout import BitsDropout
    from cifar10.models.online import TrainingOnly

    stock_of = {FusedBatchNormalization: keras.layers.BatchNormalization, BitsDropout: keras.layers.Dropout}

    def clone(layer):
        if isinstance(layer, TrainingOnly):
            return keras.layers.Identity(name=layer.name, dtype=layer.dtype_policy.name)
        return stock_of.get(type(layer), layer.__class__).from_config(layer.get_config())

    # Cloned from an uncompiled view: clone_model would carry the training compile config (and its
    # project-defined metric) into the saved file, which every reader must load with stock Keras.
    plain = keras.Model(model.inputs, model.outputs, name=model.name)
    stock = keras.models.clone_model(plain, clone_function=clone)
    stock.set_weights(model.get_weights())
    return stock
