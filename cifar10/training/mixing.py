"""mixup and cutmix (keras-cv) on every training batch: pairs of images blended or patched together,
and their labels mixed in the same proportion (an imbalance remedy; `train.mix`).

A fresh keras-cv layer per epoch, seeded from (seed, epoch): an epoch's mixing is a pure function of
the two, like its batch order (cifar10.training.inputs), so a resumed run mixes exactly as an
uninterrupted one would have. Mixed images are rounded back to uint8, the model's input (at most half
a grey level from the exact blend).
"""
from __future__ import annotations

import numpy as np


def epoch_seed(seed: int, epoch: int) -> int:
    """A nonzero seed for one epoch's layer (keras-cv treats 0 as unseeded)."""
    return int(np.random.SeedSequence([seed, epoch, 0x313]).generate_state(1)[0] % (2**31 - 1)) + 1


def mixer(kind: str, alpha: float, seed: int, epoch: int, n_classes: int):
    """A tf.data map function (uint8 images, int labels) -> (mixed uint8 images, mixed one-hot labels)."""
    import keras_cv
    import tensorflow as tf

    layer = {"mixup": keras_cv.layers.MixUp, "cutmix": keras_cv.layers.CutMix}[kind](
        alpha=alpha, seed=epoch_seed(seed, epoch))

    def mix(images, labels):
        out = layer({"images": tf.cast(images, tf.float32), "labels": tf.one_hot(labels, n_classes)}, training=True)
        return tf.cast(tf.clip_by_value(tf.round(out["images"]), 0.0, 255.0), tf.uint8), out["labels"]

    return mix
