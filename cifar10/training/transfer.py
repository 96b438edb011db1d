"""The transfer stage's core: one pass of the frozen backbone over the images, then a head (and
optionally the top blocks) trained on what that pass cached.

The frozen part of the backbone runs in inference mode, so its output is a fixed function of the
image: it is computed once and every epoch trains on the cache, seconds instead of a backbone pass.
With `fine_tune_blocks: N` the cache is the input of the last N blocks and each fine-tuning epoch
runs only those blocks and the head. Mirrored copies of the training images (`flip_train`) go
through the same pass. The returned model is the whole network (uint8 32x32 images in, 10
probabilities out; with `flip_test` it averages each image and its mirror image), made of the very
layers that were trained.
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
    validation: dict[str, float] = field(default_factory=dict)  # accuracy of the final model on the split


def _compile(model, cfg: TransferParams, learning_rate: float, steps: int) -> None:
    import keras

    rate = learning_rate
    if cfg.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(steps, 1))
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])


def _best_weights_callback(enabled: bool):
    """Keep the weights of the epoch with the lowest validation loss, put back when training ends."""
    import keras

    class BestWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.best, self.weights = np.inf, None

        def on_epoch_end(self, epoch, logs=None):
            if enabled and (logs or {}).get("val_loss", np.inf) < self.best:
                self.best, self.weights = logs["val_loss"], self.model.get_weights()

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.set_weights(self.weights)

    return BestWeights()


def _fit(model, cfg, cluster, x, y, val, epochs: int, first_epoch: int, batch: int, rate: float, history) -> None:
    steps = -(-len(y) // batch) * (epochs - first_epoch)
    with cluster.scope():  # the optimizer's slots live under the model's strategy
        _compile(model, cfg, rate, steps)
    model.fit(x, y, validation_data=val, initial_epoch=first_epoch, epochs=epochs, batch_size=batch, shuffle=True,
              verbose=0, callbacks=[history, _best_weights_callback(cfg.restore_best)])


def train_transfer(train: Dataset, cfg: TransferParams, weights: Path | None, seed: int, cluster: Cluster,
                   history: EpochHistory | None = None) -> TransferResult:
    """One frozen pass, the head on the cache, optionally the top blocks too; return the whole model.

    Args:
        train: uint8 training set; the validation split is carved from it (stratified).
        cfg: the transfer params.
        weights: backbone weights file, or None for random weights.
        seed: seed of the validation split (Keras' shuffles follow the seeded global state).
        cluster: the tf.distribute set-up (one strategy builds, trains and fine-tunes).
        history: the run's EpochHistory; fine-tuning epochs continue the head's curve.
    """
    import keras

    from cifar10.models import transfer as tm
    from cifar10.models.blocks import split, unfreeze_top_blocks
    from cifar10.training.embeddings import embed, pooled

    history = history or EpochHistory()
    timings: dict[str, float] = {}
    tr, val = split_rows(train.y, cfg.validation_split, seed, section="transfer")
    n_top = cfg.fine_tune_blocks
    with cluster.scope():
        backbone = tm.build_backbone(cfg.backbone, cfg.image_size, weights)
        lower, upper = split(backbone, n_top) if n_top else (backbone, None)
        cached = tm.build_extractor(cfg.backbone, lower, cfg.image_size, pool=not n_top)
        head = tm.build_head(cfg.head.units, cfg.head.activation, cfg.head.dropout, len(train.classes),
                             standardize=cfg.head.standardize, l2=cfg.head.l2)

    # The one backbone pass: every training image, plus the mirror images the params ask for.
    started = time.perf_counter()
    store = "float16" if n_top else "float32"  # a feature-map cache is 37x larger than pooled features
    cache, _ = embed(cached, train.x, cfg.embed_batch_size, desc="backbone pass", dtype=store)
    flip_rows = np.concatenate([tr if cfg.flip_train else [], val if cfg.flip_test else []]).astype(int)
    cache_m = np.zeros((len(train), *cache.shape[1:]), dtype=cache.dtype)
    if len(flip_rows):
        mirrored = train.x[flip_rows][:, :, ::-1]  # the saved model's mirror layers flip the same way, exactly
        cache_m[flip_rows], _ = embed(cached, mirrored, cfg.embed_batch_size, desc="mirrored pass", dtype=store)
    timings["embed_seconds"] = time.perf_counter() - started
    timings["embed_images"] = len(train) + len(flip_rows)
    timings["embed_images_per_second"] = timings["embed_images"] / timings["embed_seconds"]

    def features(maps: np.ndarray) -> np.ndarray:
        return maps if not n_top else pooled(upper, maps, cfg.embed_batch_size, cluster)

    fit_rows = np.concatenate([tr, tr]) if cfg.flip_train else tr
    started = time.perf_counter()
    feats = features(cache)
    feats_m = features(cache_m[flip_rows]) if len(flip_rows) else None
    train_feats = np.concatenate([feats[tr], feats_m[: len(tr)]]) if cfg.flip_train else feats[tr]
    tm.adapt_head(head, train_feats)
    _fit(head, cfg, cluster, train_feats, train.y[fit_rows], (feats[val], train.y[val]), cfg.epochs, 0, cfg.batch_size,
         cfg.learning_rate, history)
    timings["head_seconds"] = time.perf_counter() - started
    del feats, feats_m, train_feats

    if n_top:
        started = time.perf_counter()
        with cluster.scope():
            trainable = unfreeze_top_blocks(backbone, n_top)
            maps = keras.Input(cache.shape[1:], name="cached_maps")
            tuned = keras.Model(maps, head(keras.layers.GlobalAveragePooling2D()(upper(maps, training=False))))
        print(f"fine-tuning the top {n_top} blocks ({trainable} layers with weights) for {cfg.fine_tune_epochs} "
              "epochs on the cached pass", file=sys.stderr)
        x_fit = np.concatenate([cache[tr], cache_m[tr]]) if cfg.flip_train else cache[tr]
        _fit(tuned, cfg, cluster, x_fit, train.y[fit_rows], (cache[val], train.y[val]), cfg.epochs + cfg.fine_tune_epochs,
             cfg.epochs, cfg.fine_tune_batch_size, cfg.fine_tune_learning_rate, history)
        timings["fine_tune_seconds"] = time.perf_counter() - started

    with cluster.scope():
        model = tm.build_whole(tm.build_extractor(cfg.backbone, backbone, cfg.image_size), head, cfg.flip_test)
    validation = _validation_accuracy(head, upper if n_top else None, cache, cache_m, train.y, val, cfg, cluster)
    sizes = {"n_train": len(tr), "n_validation": len(val), "n_train_features": len(fit_rows)}
    return TransferResult(model, head, timings, sizes, validation)


def _validation_accuracy(head, upper, cache, cache_m, y, val, cfg, cluster) -> dict[str, float]:
    """Accuracy on the validation split, plain and (if flip_test) averaged with the mirror images: what
    the settings are chosen on, never the test set."""
    from cifar10.training.embeddings import pooled

    def probs(maps: np.ndarray) -> np.ndarray:
        feats = maps if upper is None else pooled(upper, maps, cfg.embed_batch_size, cluster)
        return head.predict(feats, batch_size=cfg.batch_size, verbose=0)

    plain = probs(cache[val])
    out = {"val_accuracy_final": float(np.mean(plain.argmax(1) == y[val]))}
    if cfg.flip_test:
        both = (plain + probs(cache_m[val])) / 2
        out["val_accuracy_flip_average"] = float(np.mean(both.argmax(1) == y[val]))
    return out
