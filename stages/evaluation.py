"""Per-class test reports with scikit-learn's metrics, in the metric names every stage shares."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from stages.tracking import class_metric_names


def class_report(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    """scikit-learn's classification report as a dict (per class, accuracy, macro and weighted avg)."""
    return classification_report(
        y_true,
        y_pred,
        labels=list(range(len(classes))),
        target_names=list(classes),
        output_dict=True,
        zero_division=0,
    )


def flat_metrics(report: dict, classes: Sequence[str], prefix: str = "test") -> dict[str, float]:
    """The report as flat metrics: test_precision_<class>, ..., test_accuracy, test_macro_f1, ..."""
    out: dict[str, float] = {}
    for cls in classes:
        names = class_metric_names(cls, prefix)
        row = report[cls]
        out[names["precision"]] = row["precision"]
        out[names["recall"]] = row["recall"]
        out[names["f1"]] = row["f1-score"]
        out[names["support"]] = row["support"]
    out[f"{prefix}_accuracy"] = report["accuracy"]
    for avg in ("macro", "weighted"):
        row = report[f"{avg} avg"]
        out[f"{prefix}_{avg}_precision"] = row["precision"]
        out[f"{prefix}_{avg}_recall"] = row["recall"]
        out[f"{prefix}_{avg}_f1"] = row["f1-score"]
    return {k: float(v) for k, v in out.items()}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion counts, rows = actual class, columns = predicted class."""
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def confusion_figure(matrix: np.ndarray, classes: Sequence[str], title: str):
    """A labelled confusion-matrix heat map (matplotlib Figure, headless backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if n > threshold else "black")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig
