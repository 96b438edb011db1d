"""Batch norm folded into the layer before it: an inference-only copy of a model, the same function faster.

In inference a batch-norm layer is a per-channel affine map, y = (x - mean) * s + beta with
s = gamma / sqrt(variance + epsilon). Applied to the output of a convolution or dense layer that feeds
nothing else, it can be folded into that layer's weights: kernel * s (per output channel) and bias
(b - mean) * s + beta. The copy drops the separate normalisation pass over every feature map: the
frozen EfficientNet-Lite0 runs 1.7x faster so on a 2-core CPU (BENCHMARKS.md). Outputs agree with
the original to float32 rounding (tested). The copy serves frozen passes and predictions only:
training it would optimise the folded weights, a different parametrisation, so stages always save
and fine-tune the original.
"""
from __future__ import annotations

import keras
import numpy as np

_FOLDABLE = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


@keras.saving.register_keras_serializable(package="cifar10")
class FoldedBatchNorm(keras.layers.Layer):
    """Where a batch-norm layer was: its maths now lives in the preceding layer's weights."""

    def call(self, inputs, training=None, mask=None):  # the signature of the layer it replaces
        return inputs


def _source(layer):
    """The layer whose output a single-use layer reads, or None."""
    if len(layer._inbound_nodes) != 1:
        return None
    tensors = layer._inbound_nodes[0].input_tensors
    return tensors[0]._keras_history.operation if len(tensors) == 1 else None


def _pairs(model: keras.Model) -> dict[str, keras.layers.BatchNormalization]:
    """Foldable (layer name -> the batch norm that alone reads its output) in this model's own graph."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or layer.axis not in (-1, len(layer.input.shape) - 1):
            continue
        src = _source(layer)
        if (isinstance(src, _FOLDABLE) and len(src._inbound_nodes) == 1 and len(src._outbound_nodes) == 1
                and src.activation is keras.activations.linear
                and getattr(src, "data_format", "channels_last") == "channels_last"):
            pairs[src.name] = layer
    return pairs


def _folded_weights(layer, bn) -> list[np.ndarray]:
    channels = bn.moving_mean.shape[0]
    gamma = bn.gamma.numpy() if bn.scale else np.ones(channels, np.float32)
    beta = bn.beta.numpy() if bn.center else np.zeros(channels, np.float32)
    mean, variance = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    scale = gamma / np.sqrt(variance + bn.epsilon)
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # kernel (kh, kw, C, multiplier): output c*m + j
        kernel_shape = layer.kernel.shape
        kernel = layer.kernel.numpy() * scale.reshape(kernel_shape[2], kernel_shape[3])
    else:  # Conv2D (kh, kw, in, out), Dense (in, out): output channels last
        kernel = layer.kernel.numpy() * scale
    bias = layer.bias.numpy() if layer.use_bias else np.zeros(channels, np.float32)
    return [kernel.astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)]


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """An inference-only copy of a functional `model` (nested functional models included) with every
    batch norm that follows a linear Conv2D, DepthwiseConv2D or Dense layer folded into it."""
    pairs = _pairs(model)
    folded_bn = {bn.name for bn in pairs.values()}
    nested: dict[str, keras.Model] = {}

    def clone(layer):
        if isinstance(layer, keras.Model):
            nested[layer.name] = fold_batch_norm(layer)
            return nested[layer.name]
        if layer.name in folded_bn:
            return FoldedBatchNorm(name=layer.name, dtype=layer.dtype_policy)  # no casts around it
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, copy.layers):
        if old.name in nested or old.name in folded_bn or not old.weights:
            continue
        if old.name != new.name:
            raise ValueError(f"fold_batch_norm: layer order changed in the copy ({old.name} vs {new.name})")
        new.set_weights(_folded_weights(old, pairs[old.name]) if old.name in pairs else old.get_weights())
        if isinstance(new, keras.layers.Normalization):
            new.finalize_state()  # it derives its mean/variance from the weights here, as loading does
    return copy
