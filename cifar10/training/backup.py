"""Resuming an interrupted training run exactly where its last completed epoch ended.

Keras' own BackupAndRestore restores weights, optimizer slots and the epoch counter, but not the
dropout layers' random-seed state, the early-stopping bookkeeping or the per-epoch history, so a
resumed run would drift from an uninterrupted one. This backup stores all of them after every epoch,
in one file replaced atomically, so a kill at any moment leaves the previous epoch's state intact.
Where the backup lives and when it is deleted: cifar10.training.backup_folders.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from cifar10.training.backup_folders import STATE_FILE as _STATE_FILE
from cifar10.training.history import EpochHistory


@dataclass
class TrainState:
    """Everything a resumed run needs: finished epochs, whether training already stopped, arrays."""

    epochs_done: int = 0
    stopped: bool = False
    history: list[dict] = field(default_factory=list)
    early_stopping: dict = field(default_factory=dict)
    variables: list[np.ndarray] = field(default_factory=list)
    best_weights: list[np.ndarray] | None = None
    seconds: float | None = None  # training time of the finished epochs, over all sittings (None: not kept)
    # Who trained the finished epochs: per sitting {"cpu", "commit", "epochs"}; None: an older backup
    # that did not keep it.
    sittings: list[dict] | None = None


def _state_variables(model) -> list:
    # model.variables includes the seed-generator state of every dropout layer; the optimizer
    # variables hold its step counter, learning rate and moment estimates.
    return list(model.variables) + list(model.optimizer.variables)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose counters and best weights can be saved and put back after a restart."""

    resume_from: dict | None = None
    resume_best_weights: list | None = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.resume_from:
            self.wait = self.resume_from["wait"]
            self.best = self.resume_from["best"]
            self.best_epoch = self.resume_from["best_epoch"]
            self.best_weights = self.resume_best_weights

    def state(self) -> dict:
        best = None if self.best is None else float(self.best)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch)}


def load_state(folder: Path | None) -> TrainState | None:
    """The saved state, or None if there is none (or it is unreadable: then training starts over)."""
    if folder is None:
        return None
    try:
        with np.load(folder / _STATE_FILE, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            variables = [npz[f"v{i}"] for i in range(meta["n_variables"])]
            best = [npz[f"b{i}"] for i in range(meta["n_best"])] if meta["n_best"] is not None else None
    except (OSError, ValueError, KeyError):
        return None
    return TrainState(meta["epochs_done"], meta["stopped"], meta["history"], meta["early_stopping"], variables, best,
                      meta.get("seconds"), meta.get("sittings"))  # older backups kept neither


def restore(model, state: TrainState) -> bool:
    """Put a loaded state into a compiled model; False (model untouched) if it does not fit it."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    targets = _state_variables(model)
    if len(targets) != len(state.variables) or any(
        tuple(t.shape) != a.shape for t, a in zip(targets, state.variables)
    ):
        return False
    for target, value in zip(targets, state.variables):
        target.assign(value)
    return True


class TrainingBackup(keras.callbacks.Callback):
    """Writes the training state to `folder` after every epoch (nothing when `folder` is None) and
    times the epochs (the time a restored run reports is the one its backup kept).

    Put it after the EpochHistory and EarlyStopping callbacks, so the state it saves includes that
    epoch's row and early-stopping decision.
    """

    def __init__(self, folder: str | Path | None, history: EpochHistory, early_stopping: ResumableEarlyStopping,
                 seconds_before: float | None = 0.0, sittings_before: list[dict] | None = None,
                 sitting: dict | None = None):
        """`seconds_before`: the training time of the epochs an earlier sitting finished (None: unknown);
        `sittings_before`: who trained them (None: unknown); `sitting`: this sitting's CPU and commit."""
        super().__init__()
        self.folder = Path(folder) if folder is not None else None
        self.history = history
        self.early_stopping = early_stopping
        self.seconds_before = seconds_before
        self.sittings_before = sittings_before
        self.sitting = {**(sitting or {}), "epochs": 0}
        self.seconds_here = 0.0  # from the start of this sitting's training to its last finished epoch
        self._started = time.perf_counter()

    @property
    def sittings(self) -> list[dict] | None:
        """Who trained the finished epochs, this sitting last (None: an earlier sitting is unknown)."""
        if self.sittings_before is None:
            return None
        return self.sittings_before + ([self.sitting] if self.sitting["epochs"] else [])

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds_here = time.perf_counter() - self._started
        self.sitting["epochs"] += 1
        if self.folder is None:
            return
        es = self.early_stopping
        best = es.best_weights if es.best_weights is not None else None
        meta = {
            "epochs_done": epoch + 1,
            "stopped": bool(self.model.stop_training),
            "history": self.history.rows,
            "early_stopping": es.state(),
            "n_variables": len(_state_variables(self.model)),
            "n_best": None if best is None else len(best),
            "seconds": None if self.seconds_before is None else self.seconds_before + self.seconds_here,
            "sittings": self.sittings,
        }
        arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(_state_variables(self.model))}
        arrays.update({f"b{i}": np.asarray(w) for i, w in enumerate(best or [])})
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{_STATE_FILE}.tmp.npz"
        np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, self.folder / _STATE_FILE)  # a kill leaves either the old state or the new one
