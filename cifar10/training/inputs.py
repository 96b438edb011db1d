"""Batch streams for training and prediction, and the one batched prediction pass: uint8 images
gathered per batch, in a seeded order.

Images stay uint8 until a batch enters the model (a 50,000-image float32 copy would cost 600 MB).
tf.data's autotuning is off: destroying a finished iterator waits for the autotune thread's next
wake-up (5, 10, 20 or 40 s after the iterator was made on TF 2.21), up to seconds per epoch for the
validation pass, while a fixed prefetch of 2 batches keeps the CPU as busy (measured: BENCHMARKS.md).
"""
from __future__ import annotations

import numpy as np

from cifar10.errors import PipelineError


def train_batches(x: np.ndarray, y: np.ndarray, batch: int, seed: int, first_epoch: int, epochs: int,
                  mix: tuple[str, float, int] | None = None):
    """Batches for epochs [first_epoch, epochs) in one stream.

    Each epoch's order is a pure function of (seed, epoch), so a resumed run sees exactly the batches
    an uninterrupted one would have. `mix`: (mixup | cutmix, alpha, number of classes) mixes every
    batch, seeded per epoch too (labels then come one-hot, mixed).
    """
    import tensorflow as tf

    x_t, y_t = tf.constant(x), tf.constant(y)
    rows = tf.range(len(y), dtype=tf.int64)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch)

    def gathered(ds):
        return ds.map(lambda idx: (tf.gather(x_t, idx), tf.gather(y_t, idx)))

    if mix is None or first_epoch >= epochs:
        return _fixed(gathered(tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)))
    from cifar10.training.mixing import mixer

    kind, alpha, n_classes = mix
    epochs_ = [gathered(one_epoch(tf.constant(e, tf.int64))).map(mixer(kind, alpha, seed, e, n_classes))
               for e in range(first_epoch, epochs)]
    ds = epochs_[0]
    for more in epochs_[1:]:
        ds = ds.concatenate(more)
    return _fixed(ds)


def eval_batches(x: np.ndarray, y: np.ndarray | None, batch: int, one_hot: int = 0):
    """Batches of images (and labels, if given) in file order; `one_hot`: that many classes, labels one-hot
    (to match training labels that mixup or cutmix made distributions)."""
    import tensorflow as tf

    items = x if y is None else (x, y)
    ds = tf.data.Dataset.from_tensor_slices(items).batch(batch)
    if y is not None and one_hot:
        ds = ds.map(lambda images, labels: (images, tf.one_hot(labels, one_hot)))
    return _fixed(ds)


def predict_proba(model, x: np.ndarray, batch_size: int, callbacks: list = ()) -> np.ndarray:
    """Class probabilities (N, classes) in one batched pass; images stay uint8 until each batch."""
    batches = eval_batches(x, None, batch_size)
    probs = np.asarray(model.predict(batches, verbose=0, callbacks=list(callbacks))) if len(x) else np.zeros((0, 0))
    if probs.ndim != 2 or len(probs) != len(x):
        raise PipelineError(f"model output has shape {probs.shape}; expected ({len(x)}, classes) probabilities")
    return probs


def _fixed(ds):
    """Prefetch two batches, autotuning off (see the module docstring)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(2).with_options(options)
