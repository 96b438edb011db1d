"""The transfer stage's core: one pass of the frozen backbone over the images, then a head (and
optionally the top blocks) trained on what that pass cached.

The frozen part of the backbone runs in inference mode, so its output is a fixed function of the
image: it is computed once and every epoch trains on the cache, seconds instead of a backbone pass.
With `fine_tune_blocks: N` the cache is the input of the last N blocks and each fine-tuning epoch
runs only those blocks and the head. Mirror images of the training images (`flip_train`) and of
the validation images (`flip_test`, to measure test-time averaging) go through the same pass. The
returned models are whole networks (uint8 32x32 images in, 10 probabilities out; with `flip_test`
they average each image and its mirror image): the frozen one as the head phase left it (the
study's method: a frozen backbone, a trained head), and the fine-tuned one, made of the very layers
that were trained; without fine-tuning they are one model.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cifar10.data.dataset import Dataset
from cifar10.schema.transfer import TransferParams
from cifar10.training.cached_pass import Pass, backbone_pass, features
from cifar10.training.distribution import Cluster
from cifar10.training.history import EpochHistory


@dataclass
class TransferResult:
    model: object  # the whole keras.Model, fine-tuned if fine_tune_blocks > 0
    head: object
    frozen: object  # the whole keras.Model after the head phase: its own copy, or `model` itself without fine-tuning
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)  # accuracy of the final model on the split


def _best_weights(enabled: bool):
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


def fit_phase(model, cfg: TransferParams, cluster: Cluster, x, y, val, epochs: tuple[int, int], batch: int,
              rate: float, history: EpochHistory, callbacks: list = ()) -> None:
    """Compile `model` (Adam at `rate`, cosine-decayed over the phase if asked) and fit it for the
    epochs [first, last) on `x` (a float16 feature-map cache is cast batch by batch)."""
    from cifar10.training.half_batches import HalfBatches
    from cifar10.training.optimizer import phase_optimizer

    first, last = epochs
    with cluster.scope():  # the optimizer's slots live under the model's strategy
        model.compile(optimizer=phase_optimizer(rate, cfg.schedule, -(-len(y) // batch) * (last - first)),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [history, *callbacks, _best_weights(cfg.restore_best)]
    if x.dtype == np.float16:  # a feature-map cache: cast batch by batch, not whole (half_batches.py)
        model.fit(HalfBatches(x, y, batch, shuffle=True), validation_data=HalfBatches(*val, batch_size=batch),
                  initial_epoch=first, epochs=last, verbose=0, callbacks=callbacks)
    else:
        model.fit(x, y, validation_data=val, initial_epoch=first, epochs=last, batch_size=batch, shuffle=True,
                  verbose=0, callbacks=callbacks)


def fit_head(p: Pass, y: np.ndarray, cfg: TransferParams, cluster: Cluster, history: EpochHistory,
             callbacks: list = ()):
    """A new head trained on the cached features (and those of the mirror images, with flip_train)."""
    from cifar10.models import transfer as tm
    from cifar10.runtime import precision
    from cifar10.training.precision import resolve

    rows = p.train_rows
    x = features(p, rows, cluster, cfg.embed_batch_size)
    if cfg.flip_train:
        x = np.concatenate([x, features(p, rows, cluster, cfg.embed_batch_size, mirror=True)])
        rows = np.concatenate([rows, rows])
    with cluster.scope(), precision(resolve(cfg.precision, "fine_tune")[0]):  # trained like the blocks
        head = tm.build_head(cfg.head.units, cfg.head.activation, cfg.head.dropout, 10,
                             standardize=cfg.head.standardize, l2=cfg.head.l2)
    tm.adapt_head(head, x)
    val = (features(p, p.val_rows, cluster, cfg.embed_batch_size), y[p.val_rows])
    fit_phase(head, cfg, cluster, x, y[rows], val, (0, cfg.epochs), cfg.batch_size, cfg.learning_rate, history,
              callbacks)
    return head


def fine_tune(p: Pass, head, y: np.ndarray, cfg: TransferParams, cluster: Cluster, history: EpochHistory,
              n_blocks: int, callbacks: list = ()) -> int:
    """Train the top `n_blocks` whole blocks (batch norm frozen) and the head on the cached pass; each
    epoch runs only the blocks above the cache. Returns the number of layers with weights trained."""
    tuned, trained = tuning_model(p.backbone, p.upper, head, p.cache.shape[1:], n_blocks, cfg, cluster)
    rows = p.train_rows
    x = np.concatenate([p.of(rows), p.of(rows, mirror=True)]) if cfg.flip_train else p.of(rows)
    rows = np.concatenate([rows, rows]) if cfg.flip_train else rows
    epochs = (cfg.epochs, cfg.epochs + cfg.fine_tune_epochs)
    fit_phase(tuned, cfg, cluster, x, y[rows], (p.of(p.val_rows), y[p.val_rows]), epochs, cfg.fine_tune_batch_size,
              cfg.fine_tune_learning_rate, history, callbacks)
    return trained


def tuning_model(backbone, upper, head, map_shape: tuple, n_blocks: int, cfg: TransferParams, cluster: Cluster):
    """(cached feature maps -> the `upper` blocks -> pooling -> `head`, the number of layers with weights
    it trains): the backbone's top `n_blocks` blocks unfrozen (batch norm stays frozen)."""
    import keras

    from cifar10.models.blocks import unfreeze_top_blocks
    from cifar10.runtime import precision
    from cifar10.training.precision import resolve

    with cluster.scope(), precision(resolve(cfg.precision, "fine_tune")[0]):
        trained = unfreeze_top_blocks(backbone, n_blocks)
        maps = keras.Input(tuple(map_shape), name="cached_maps")
        return keras.Model(maps, head(keras.layers.GlobalAveragePooling2D()(upper(maps, training=False)))), trained


def validation_accuracy(p: Pass, head, y: np.ndarray, cfg: TransferParams, cluster: Cluster) -> dict[str, float]:
    """Accuracy on the validation split, plain and (with flip_test) averaged with the mirror images: what
    settings are chosen on, never the test set."""
    def probs(mirror: bool) -> np.ndarray:
        return head.predict(features(p, p.val_rows, cluster, cfg.embed_batch_size, mirror), verbose=0,
                            batch_size=cfg.batch_size)

    plain = probs(False)
    out = {"val_accuracy_final": float(np.mean(plain.argmax(1) == y[p.val_rows]))}
    if cfg.flip_test:
        both = (plain + probs(True)) / 2
        out["val_accuracy_flip_average"] = float(np.mean(both.argmax(1) == y[p.val_rows]))
    return out


def train_transfer(train: Dataset, cfg: TransferParams, weights: Path | None, seed: int, cluster: Cluster,
                   history: EpochHistory | None = None, callbacks: list = ()) -> TransferResult:
    """One frozen pass, the head on the cache, optionally the top blocks too; return the whole models.

    Args:
        train: uint8 training set; the validation split is carved from it (stratified).
        cfg: the transfer params.
        weights: backbone weights file, or None for random weights.
        seed: seed of the validation split (Keras' shuffles follow the seeded global state).
        cluster: the tf.distribute set-up (one strategy builds, trains and fine-tunes).
        history: the run's EpochHistory; fine-tuning epochs continue the head's curve.
        callbacks: more Keras callbacks for every fit (a progress bar).
    """
    history = history or EpochHistory()
    p = backbone_pass(train, cfg, weights, seed, cluster, cfg.fine_tune_blocks)
    timings = {"embed_seconds": p.seconds, "embed_images": len(train) + len(p.mirror_rows)}
    timings["embed_images_per_second"] = timings["embed_images"] / p.seconds

    started = time.perf_counter()
    head = fit_head(p, train.y, cfg, cluster, history, callbacks)
    timings["head_seconds"] = time.perf_counter() - started
    frozen = None
    if cfg.fine_tune_blocks:
        from cifar10.models.saved import detached_copy

        frozen = detached_copy(whole_model(p, head, cfg, cluster))  # fine-tuning trains the layers it is made of
        started = time.perf_counter()
        print(f"fine-tuning the top {cfg.fine_tune_blocks} blocks for {cfg.fine_tune_epochs} epochs on the cached pass",
              file=sys.stderr)
        fine_tune(p, head, train.y, cfg, cluster, history, cfg.fine_tune_blocks, callbacks)
        timings["fine_tune_seconds"] = time.perf_counter() - started

    model = whole_model(p, head, cfg, cluster)
    sizes = {"n_train": len(p.train_rows), "n_validation": len(p.val_rows),
             "n_train_features": len(p.train_rows) * (2 if cfg.flip_train else 1)}
    return TransferResult(model, head, model if frozen is None else frozen, timings, sizes,
                          validation_accuracy(p, head, train.y, cfg, cluster))


def whole_model(p: Pass, head, cfg: TransferParams, cluster: Cluster):
    """The whole network of the pass's backbone and `head`, as they are now.

    Built in the precision it trained in (float32 unless transfer.precision says bfloat16): readers choose
    the precision they predict in (evaluate.precision), as the frozen pass did.
    """
    from cifar10.models import transfer as tm
    from cifar10.runtime import precision
    from cifar10.training.precision import resolve

    with cluster.scope(), precision(resolve(cfg.precision, "fine_tune")[0]):
        return tm.build_whole(tm.build_extractor(cfg.backbone, p.backbone, cfg.image_size), head, cfg.flip_test)
