"""The transfer stage's core: one frozen-backbone pass over the images, a dense head on the cached features.

With the backbone frozen and in inference mode its output is a fixed function of the image, so the
training features are computed once and the head trains on them: 20 head epochs cost seconds
instead of 20 backbone passes. The returned model is the whole chain (uint8 32x32 images in, 10
probabilities out). `fine_tune_layers > 0` then trains the top of the backbone too, through the
whole model.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cifar10.data.dataset import Dataset
from cifar10.data.splits import split_rows
from cifar10.schema.transfer import TransferParams
from cifar10.training.distribution import Cluster
from cifar10.training.history import EpochHistory


@dataclass
class TransferResult:
    model: object  # the whole keras.Model
    head: object
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def _compile(model, learning_rate: float) -> None:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])


def train_transfer(train: Dataset, cfg: TransferParams, weights: Path | None, seed: int, cluster: Cluster,
                   history: EpochHistory | None = None) -> TransferResult:
    """Embed once, train the head on the cached features, optionally fine-tune; return the whole model.

    Args:
        train: uint8 training set; the head's validation split is carved from it (stratified).
        cfg: the transfer params.
        weights: backbone weights file, or None for random weights.
        seed: seed of the validation split and the fine-tuning shuffle.
        cluster: the tf.distribute set-up (one strategy for building, training and fine-tuning).
        history: the run's EpochHistory; fine-tuning epochs continue the head's curve.
    """
    import tensorflow as tf

    from cifar10.models import transfer as tm
    from cifar10.training.embeddings import embed

    history = history or EpochHistory()
    timings: dict[str, float] = {}
    tr_idx, val_idx = split_rows(train.y, cfg.validation_split, seed, section="transfer")
    with cluster.scope():
        backbone = tm.build_backbone(cfg.image_size, weights)
        extractor = tm.build_extractor(backbone, cfg.image_size)
        head = tm.build_head(cfg.head.units, cfg.head.activation, cfg.head.dropout, len(train.classes),
                             standardize=cfg.head.standardize)
        _compile(head, cfg.learning_rate)
        model = tm.build_whole(extractor, head)

    started = time.perf_counter()
    features, rate = embed(extractor, train.x, cfg.embed_batch_size, desc="embed train")
    timings["embed_seconds"] = time.perf_counter() - started
    timings["embed_images_per_second"] = rate

    started = time.perf_counter()
    tm.adapt_head(head, features[tr_idx])
    head.fit(
        features[tr_idx], train.y[tr_idx], validation_data=(features[val_idx], train.y[val_idx]),
        epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=0, callbacks=[history],
    )
    timings["head_seconds"] = time.perf_counter() - started
    del features

    if cfg.fine_tune_layers > 0:
        started = time.perf_counter()
        with cluster.scope():
            trainable = tm.unfreeze_top(backbone, cfg.fine_tune_layers)
            # Recompile so the new trainable set and the low learning rate take effect.
            _compile(model, cfg.fine_tune_learning_rate)
        print(f"fine-tuning {trainable} backbone layers with weights for {cfg.fine_tune_epochs} epochs",
              file=sys.stderr)

        def batches(idx: np.ndarray, shuffle: bool):
            ds = tf.data.Dataset.from_tensor_slices((train.x[idx], train.y[idx]))
            if shuffle:
                ds = ds.shuffle(len(idx), seed=seed, reshuffle_each_iteration=True)
            return ds.batch(cfg.fine_tune_batch_size).prefetch(tf.data.AUTOTUNE)

        model.fit(batches(tr_idx, True), validation_data=batches(val_idx, False), verbose=0,
                  initial_epoch=cfg.epochs, epochs=cfg.epochs + cfg.fine_tune_epochs, callbacks=[history])
        timings["fine_tune_seconds"] = time.perf_counter() - started
    sizes = {"n_train": len(tr_idx), "n_validation": len(val_idx)}
    return TransferResult(model, head, timings, sizes)
