"""This machine's limit for a kind of work: TensorFlow's matmul peak in its float type over the work's
FLOPs per image (convolutions and dense layers, what a matrix unit computes)."""
from __future__ import annotations

import time

import numpy as np


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 15) -> float:
    """Median GFLOP/s of TensorFlow's n x n matmul in `dtype` (float32, bfloat16, float16) on its default
    device: the GPU where there is one."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)), dtype)

    @tf.function
    def matmul():
        return tf.reduce_sum(tf.cast(tf.linalg.matmul(a, a)[:1, :1], tf.float32))

    matmul()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul().numpy()
        times.append(time.perf_counter() - started)
    return 2 * n**3 / float(np.median(times)) / 1e9


def forward_flops(model) -> dict[str, int]:
    """FLOPs of one image's forward pass through each convolution and dense layer of a functional model
    (nested models included): the work a matrix unit does; pooling, normalisation and activations are
    left out."""
    import keras

    flops = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            flops.update(forward_flops(layer))
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel.shape[:2]
            flops[layer.name] = 2 * h * w * cout * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw, cin, _ = layer.kernel.shape  # cin: per group
            flops[layer.name] = 2 * h * w * cout * kh * kw * cin
        elif isinstance(layer, keras.layers.Dense):
            flops[layer.name] = 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return flops


def training_gflop(model) -> float:
    """GFLOP of one image's training step: gradients of weights and of inputs, each as costly as the
    forward pass, except the first layer's input gradient (its input is the data)."""
    forward = forward_flops(model)
    return (3 * sum(forward.values()) - next(iter(forward.values()), 0)) / 1e9
