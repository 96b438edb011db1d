"""The one per-epoch history of a training run: it feeds the curves (MLflow, CSV, console) and the resume backup.

`EpochHistory` is a Keras callback that turns each epoch's logs into a row {epoch, loss, accuracy,
val_loss, val_accuracy, learning_rate, balanced_accuracy, val_balanced_accuracy}; where the rows go
is injected as sinks, so the training core never imports MLflow.
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Callable

import keras

CURVE_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "balanced_accuracy",
                 "val_balanced_accuracy")  # the last two: the CNN's mean per-class recall (not the transfer head's)
Sink = Callable[[dict, list[dict]], None]  # (the new row, all rows so far)


def _learning_rate(model) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (TypeError, ValueError, AttributeError):
        return None


class EpochHistory(keras.callbacks.Callback):
    """Rows of per-epoch curves; each new row goes to every sink.

    A resumed run starts from the rows of the interrupted one (`resume`), and a row for an epoch that
    already has one replaces it, so the history never holds an epoch twice. Put it first among the
    callbacks: the resume backup saves `rows` after early stopping has seen the epoch.
    """

    def __init__(self, sinks: list[Sink] = (), replay_sinks: list[Sink] = ()):
        super().__init__()
        self.rows: list[dict] = []
        self.sinks = list(sinks)
        self.replay_sinks = list(replay_sinks)  # where the rows of a resumed run go again (a new MLflow run)
        self._started = time.perf_counter()
        self.last_seconds = 0.0

    def resume(self, rows: list[dict]) -> None:
        """Start from the rows of an interrupted run, sent again to `replay_sinks`: a new run's curves
        start at epoch 1 too. Called once its weights are restored, so a backup that does not fit the
        model leaves no stale rows."""
        self.rows = list(rows)
        for i, row in enumerate(self.rows):
            for sink in self.replay_sinks:
                sink(row, self.rows[: i + 1])

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch + 1}
        for key in CURVE_COLUMNS[1:]:
            value = logs.get(key)
            if key == "learning_rate" and value is None:
                value = _learning_rate(self.model)
            if value is not None:
                row[key] = float(value)
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        self.last_seconds = time.perf_counter() - self._started
        for sink in self.sinks:
            sink(row, self.rows)


def write_history(path: str | Path, rows: list[dict]) -> None:
    """Write the curves as a CSV with a fixed header (missing values empty)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CURVE_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)


def csv_sink(path: str | Path) -> Sink:
    """Rewrite the whole CSV after every epoch, so `dvc plots` of a running stage shows its progress."""
    return lambda row, rows: write_history(path, rows)


def tracker_sink(tracker) -> Sink:
    """Log the row to MLflow with step = epoch."""
    return lambda row, rows: tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])


def console_sink(label: str, history: EpochHistory) -> Sink:
    """One line per epoch on stderr: reads well in CI logs, where a per-batch progress bar would not."""
    def sink(row: dict, rows: list[dict]) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
        print(f"{label}epoch {row['epoch']}: {shown} ({history.last_seconds:.1f}s)", file=sys.stderr, flush=True)

    return sink
