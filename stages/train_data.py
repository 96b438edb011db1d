"""Training data for the CNN stages: stratified subsets and splits, and uint8 batch streams.

Rows are chosen with seeded NumPy generators and batches ordered by stateless TF shuffles, so a
resumed run sees exactly the rows and batches an uninterrupted one would have.
"""
from __future__ import annotations

import numpy as np

from stages.errors import PipelineError
from stages.schema.train import TrainParams


def stratified_take(y: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into `n` taken and the rest, each class in proportion to its count.

    Largest-remainder rounding keeps the total exact even when there are fewer rows to take than
    classes (tiny data), where scikit-learn's stratified split refuses.
    """
    labels, counts = np.unique(y, return_counts=True)
    ideal = counts * n / len(y)
    quota = np.floor(ideal).astype(int)
    order = np.lexsort((rng.random(len(labels)), -(ideal - quota)))  # ties broken at random, seeded
    quota[order[: n - quota.sum()]] += 1
    taken, rest = [], []
    for label, k in zip(labels, quota):
        rows = rng.permutation(np.flatnonzero(y == label))
        taken.append(rows[:k])
        rest.append(rows[k:])
    return np.sort(np.concatenate(taken)), np.sort(np.concatenate(rest))


def split_rows(y: np.ndarray, cfg: TrainParams, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row indices: a stratified `train_size` subset, then a stratified
    validation split carved from it (the two are disjoint; the test set is never involved)."""
    rng = np.random.default_rng(seed)
    rows = np.arange(len(y))
    if cfg.train_size is not None:
        if cfg.train_size > len(y):
            raise PipelineError(
                f"params.yaml: train.train_size: at most the {len(y)} images of the training set "
                f"(got {cfg.train_size})"
            )
        rows, _ = stratified_take(y, cfg.train_size, rng)
    n_val = round(cfg.validation_split * len(rows))
    if n_val < 1:
        raise PipelineError(
            f"params.yaml: train.validation_split: {cfg.validation_split} of {len(rows)} images is no "
            "validation image; raise it or use more images"
        )
    val_pos, train_pos = stratified_take(y[rows], n_val, rng)
    return rows[train_pos], rows[val_pos]


def train_batches(x: np.ndarray, y: np.ndarray, batch: int, seed: int, first_epoch: int, epochs: int):
    """Batches of uint8 images for epochs [first_epoch, epochs) in one stream.

    Each epoch's order is a pure function of (seed, epoch), so a resumed run sees exactly the batches
    an uninterrupted one would have. Images stay uint8 and are gathered per batch.
    """
    import tensorflow as tf

    x_t, y_t = tf.constant(x), tf.constant(y)
    rows = tf.range(len(y), dtype=tf.int64)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch)

    return (
        tf.data.Dataset.range(first_epoch, epochs)
        .flat_map(one_epoch)
        .map(lambda idx: (tf.gather(x_t, idx), tf.gather(y_t, idx)))
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_batches(x: np.ndarray, y: np.ndarray | None, batch: int):
    """Batches of uint8 images (and labels, if given) in file order."""
    import tensorflow as tf

    items = x if y is None else (x, y)
    return tf.data.Dataset.from_tensor_slices(items).batch(batch).prefetch(tf.data.AUTOTUNE)
