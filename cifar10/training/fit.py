"""The CNN stages' core: fit the study's CNN with early stopping on a validation split, resumable.

Arrays and typed params in, a trained model, its per-epoch history and run facts out; tracking is
injected through the EpochHistory's sinks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar10.data.dataset import Dataset
from cifar10.data.splits import split_rows, validation_source
from cifar10.schema.train import TrainParams
from cifar10.training import remedies
from cifar10.training.distribution import Cluster, describe_shard, make_cluster, sharded_batches
from cifar10.training.history import EpochHistory
from cifar10.training.inputs import eval_batches, train_batches


@dataclass
class TrainResult:
    model: object  # the keras.Model, with the best epoch's weights if restore_best_weights
    history: list[dict]  # per-epoch rows of all epochs (also those of an interrupted earlier run)
    info: dict  # run facts: best_epoch, epochs_run, images_per_s, parameter counts, ...
    shard: dict  # under a strategy: the rows this worker trained on (distribution.describe_shard)


def _build_compiled_state(model, x, y) -> None:
    """Build the metrics, loss and optimizer state on a plain batch, as fit() would, and skip fit()'s own
    step: under a strategy Keras 3.15 first passes the whole per-replica (x, y) batch to
    strategy.reduce, which MultiWorkerMirroredStrategy rejects ("Attempt to convert a value
    (PerReplica...) to a Tensor"). Call it inside the strategy's scope."""
    model._symbolic_build(data_batch=(x, y))
    model._maybe_symbolic_build = lambda *args, **kwargs: None


def compiled_cnn(cfg: TrainParams, n_classes: int, cluster: Cluster, sample: tuple[np.ndarray, np.ndarray],
                 training_layers: bool = True, loss="sparse_categorical_crossentropy", steps_per_epoch: int = 1):
    """The CNN built and compiled under the cluster's strategy and `cfg.precision` (auto: this CPU's
    rule), with batch norm on TensorFlow's fused kernel and dropout drawing 16-bit masks: the layers
    made for training (save `cifar10.models.fused_bn.to_stock(model)`).
    `loss` and `steps_per_epoch` (the cosine schedule's unit): as the remedies in `cfg` ask."""

    from cifar10.models.cnn import build_cnn
    from cifar10.runtime import precision
    from cifar10.training.balanced_accuracy import BalancedAccuracy
    from cifar10.training.optimizer import make_optimizer
    from cifar10.training.precision import resolve

    with precision(resolve(cfg.precision)[0]), cluster.scope():
        model = build_cnn(cfg.model, n_classes=n_classes, fused_batch_norm=training_layers,
                          online=cfg.online_augmentation, bits_dropout=training_layers)
        model.compile(optimizer=make_optimizer(cfg, steps_per_epoch), loss=loss,
                      metrics=["accuracy", BalancedAccuracy(n_classes)],
                      jit_compile=False)  # XLA is several times slower on CPU
        if cluster.strategy is not None:
            _build_compiled_state(model, *sample)
    return model


def train(train_ds: Dataset, cfg: TrainParams, seed: int, deterministic: bool = True,
          history: EpochHistory | None = None, backup_dir: str | Path | None = None,
          cluster: Cluster | None = None, callbacks: list = (), training_layers: bool = True,
          sitting: dict | None = None) -> TrainResult:
    """Train the CNN on `train_ds` with early stopping on a validation split carved from it.

    Args:
        train_ds: training images (uint8) and labels.
        cfg: the `train` params.
        seed, deterministic: `base.seed` and `base.deterministic`.
        history: the run's EpochHistory (its sinks get each epoch's row, its replay sinks the rows of
            a restored backup); None = a fresh one.
        backup_dir: where to keep per-epoch state for resuming; None = no backup. A state found
            there is resumed from.
        cluster: the tf.distribute set-up (made first thing in the process); None = from `cfg.distribution`.
        callbacks: more Keras callbacks (a progress bar), called after the history's.
        training_layers: batch norm on TensorFlow's fused kernel (the same maths, faster on a CPU) and
            dropout drawing 16-bit masks (its rate exact in bfloat16 too); False = Keras' stock layers.
        sitting: who trains here, {"cpu", "commit"}: kept in the backup with the epochs it trains, so a
            run restored later names the sittings that trained it, not the one that restored it.
    """
    from cifar10.models.cnn import param_counts
    from cifar10.runtime import seed_everything
    from cifar10.training.backup import ResumableEarlyStopping, TrainingBackup, load_state, restore
    from cifar10.training.precision import resolve

    source = validation_source(train_ds.extra, cfg.validation_from, "train")
    train_rows, val_rows = split_rows(train_ds.y, cfg.validation_split, seed, cfg.train_size, source=source)
    cluster = cluster or make_cluster(cfg.distribution)
    seed_everything(seed, deterministic)
    n_classes, mixing = len(train_ds.classes), remedies.mix(cfg, len(train_ds.classes))
    labels = np.eye(n_classes, dtype=np.float32)[train_ds.y] if mixing else train_ds.y  # mixing makes them one-hot
    steps = math.ceil(len(train_rows) / cfg.batch_size)
    model = compiled_cnn(cfg, n_classes, cluster, (train_ds.x[:1], labels[:1]), training_layers,
                         remedies.loss(cfg, train_ds.y[train_rows], n_classes), steps)

    history = history or EpochHistory()
    es = ResumableEarlyStopping(monitor=cfg.early_stopping.monitor, patience=cfg.early_stopping.patience,
                                mode="min" if cfg.early_stopping.monitor == "val_loss" else "max",
                                restore_best_weights=cfg.early_stopping.restore_best_weights)
    state = load_state(Path(backup_dir) if backup_dir is not None else None)
    first_epoch, stopped = 0, False
    with cluster.scope():  # a mirrored model's optimizer slots are built under its strategy
        restored = state is not None and restore(model, state)
    if restored:
        es.resume_from, es.resume_best_weights = state.early_stopping, state.best_weights
        history.resume(state.history)
        first_epoch = cfg.epochs if state.stopped else min(state.epochs_done, cfg.epochs)
        stopped = state.stopped

    shard: dict = {}
    if cluster.strategy is None:
        train_data = train_batches(train_ds.x[train_rows], train_ds.y[train_rows], cfg.batch_size, seed,
                                   first_epoch, cfg.epochs, mixing)
        val_steps = None
        val_data = eval_batches(train_ds.x[val_rows], train_ds.y[val_rows], cfg.batch_size, n_classes if mixing else 0)
    else:
        x, y = train_ds.x, train_ds.y
        train_data, found = sharded_batches(cluster, x, y, train_rows, cfg.batch_size, seed,
                                            range(first_epoch, cfg.epochs), shuffle=True)
        val_data, val_found = sharded_batches(cluster, x, y, val_rows, cfg.batch_size, seed,
                                              range(max(cfg.epochs - first_epoch, 1)), shuffle=False)
        steps, val_steps = found["steps"], val_found["steps"]
        shard = describe_shard(cluster, found)
    # The speed covers every epoch, also those of earlier sittings (their time is in the backup), so a
    # resumed run, or a finished one restored from its backup, reports the whole training's speed.
    seconds_before = state.seconds if restored else 0.0
    sittings = state.sittings if restored else []
    if first_epoch < cfg.epochs:
        backup = TrainingBackup(backup_dir, history, es, seconds_before, sittings, sitting)
        model.fit(
            train_data, epochs=cfg.epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
            validation_data=val_data, validation_steps=val_steps,
            callbacks=[history, *callbacks, es, backup], shuffle=False, verbose=0,
        )
        stopped = bool(model.stop_training)
        seconds_here, sittings = backup.seconds_here, backup.sittings
    else:  # training had finished: only what follows fit() was lost
        es.on_train_begin()  # puts back the early-stopping record: best epoch and best weights
        if cfg.early_stopping.restore_best_weights and es.best_weights is not None:
            model.set_weights(es.best_weights)
        seconds_here = 0.0
    adjusted = {}
    if cfg.logit_adjustment == "validation":  # after the kept weights are in place; never on the test set
        adjusted = remedies.adjust_logits(model, train_ds.x[val_rows], train_ds.y[val_rows],
                                          train_ds.y[remedies.originals(train_ds.extra, train_rows)], n_classes,
                                          cfg.batch_size)
    if seconds_before is None:  # a backup that did not keep its time: only this sitting's epochs count
        epochs_timed, seconds = len(history.rows) - first_epoch, seconds_here
    else:
        epochs_timed, seconds = len(history.rows), seconds_before + seconds_here
    info = {
        "best_epoch": int(es.best_epoch) + 1 if es.best is not None else len(history.rows),
        "epochs_run": len(history.rows),
        "stopped_early": stopped,
        "resumed_from_epoch": first_epoch,
        "train_images": len(train_rows),
        "val_images": len(val_rows),
        "train_seconds": seconds,
        "precision": resolve(cfg.precision)[0],
        "sittings": sittings,  # who trained the epochs: [{"cpu", "commit", "epochs"}], None if unknown
        **adjusted,
        "images_per_s": epochs_timed * len(train_rows) / seconds if epochs_timed and seconds > 0 else 0.0,
        **param_counts(model),
    }
    return TrainResult(model, list(history.rows), info, shard)
