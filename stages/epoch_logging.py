"""Per-epoch curves: one Keras callback that writes them to MLflow (step = epoch) and to a CSV for `dvc plots`."""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import keras

CURVE_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def _learning_rate(model) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (TypeError, ValueError, AttributeError):
        return None


class EpochLogger(keras.callbacks.Callback):
    """Log loss, accuracy, val_loss, val_accuracy and learning rate after every epoch.

    `tracker` is the stage's Tracker (or None); the CSV is rewritten whole each epoch, so a resumed run
    that passes `history` keeps earlier rows. Prints one line per epoch, which reads well in CI logs
    where Keras' progress bar would print one line per batch.
    """

    def __init__(self, tracker=None, csv_path: str | Path | None = None, history: list[dict] | None = None,
                 label: str = ""):
        super().__init__()
        self.tracker = tracker
        self.csv_path = Path(csv_path) if csv_path else None
        self.rows: list[dict] = list(history or [])
        self.label = label
        self._started = time.perf_counter()

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
        if self.tracker is not None:
            self.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        if self.csv_path is not None:
            write_history(self.csv_path, self.rows)
        shown = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
        seconds = time.perf_counter() - self._started
        print(f"{self.label}epoch {row['epoch']}: {shown} ({seconds:.1f}s)", file=sys.stderr, flush=True)


def write_history(path: str | Path, rows: list[dict]) -> None:
    """Write the curves as a CSV with a fixed header (missing values empty)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CURVE_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
