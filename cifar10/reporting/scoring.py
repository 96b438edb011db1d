"""The one scorer of the test set: predictions, per-class reports (scikit-learn), the confusion matrix and
its 95% intervals (cifar10.reporting.intervals), and the metric names every run shares.

Only the evaluate stage scores the test set; it writes the same metric names onto its own run and
onto each model's training run (there with the prefix cifar10.tracking.links.metric_prefix gives).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from cifar10.errors import PipelineError
from cifar10.reporting.intervals import METHOD, Interval, confusion_intervals
from cifar10.training.inputs import predict_proba


def class_report(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    """scikit-learn's classification report as a dict (per class, accuracy, macro and weighted avg)."""
    return classification_report(y_true, y_pred, labels=list(range(len(classes))), target_names=list(classes),
                                 output_dict=True, zero_division=0)


def class_metric_names(cls: str, prefix: str = "test") -> dict[str, str]:
    """The fixed per-class metric names, e.g. test_precision_cat."""
    return {k: f"{prefix}_{k}_{cls}" for k in ("precision", "recall", "f1", "support")}


def flat_metrics(report: dict, classes: Sequence[str], prefix: str = "test") -> dict[str, float]:
    """The report as flat metrics: test_precision_<class>, ..., test_accuracy, test_macro_f1, ..."""
    out: dict[str, float] = {}
    for cls in classes:
        names, row = class_metric_names(cls, prefix), report[cls]
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


def _named_intervals(intervals: dict, prefix: str) -> dict[str, Interval]:
    return {f"{prefix}_accuracy": intervals["accuracy"], f"{prefix}_macro_f1": intervals["macro_f1"],
            **{f"{prefix}_recall_{cls}": i for cls, i in intervals["recall"].items()}}


def interval_metrics(intervals: dict, prefix: str = "test") -> dict[str, float]:
    """The bounds of `confusion_intervals`' figures as flat metrics: test_accuracy_low, test_accuracy_high,
    test_macro_f1_low, ..., test_recall_<class>_high."""
    return {f"{name}_{end}": getattr(i, end) for name, i in _named_intervals(intervals, prefix).items()
            for end in ("low", "high")}


def intervals_json(intervals: dict) -> dict:
    """`confusion_intervals`' figures as plain JSON, with the method that made them."""
    return {"method": METHOD, "accuracy": intervals["accuracy"].as_dict(), "macro_f1": intervals["macro_f1"].as_dict(),
            "recall": {cls: i.as_dict() for cls, i in intervals["recall"].items()}}


def summarize(report: dict, classes: Sequence[str], n_images: int) -> dict:
    """scikit-learn's report in the stable shape of metrics/<model>.json."""
    def prf(row: dict) -> dict:
        return {"precision": float(row["precision"]), "recall": float(row["recall"]), "f1": float(row["f1-score"])}

    return {
        "test_images": int(n_images),
        "accuracy": float(report["accuracy"]),
        "macro": prf(report["macro avg"]),
        "weighted": prf(report["weighted avg"]),
        "per_class": {cls: {**prf(report[cls]), "support": int(report[cls]["support"])} for cls in classes},
    }


def score(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    """Metrics of given predictions.

    Returns:
        dict with `metrics` (the JSON shape: the figures, the confusion matrix and the intervals), `flat`
        (test_accuracy, test_recall_<cls>, ..., the intervals' test_accuracy_low, ...), `report`
        (scikit-learn's), `confusion` (rows actual, columns predicted), `intervals` (confusion_intervals')
        and `y_pred`.
    """
    if len(classes) and len(y_true) and int(np.max(y_pred)) >= len(classes):
        raise PipelineError(f"model predicts class {int(np.max(y_pred))}; there are {len(classes)} classes")
    report = class_report(y_true, y_pred, classes)
    confusion = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    intervals = confusion_intervals(confusion, classes)
    return {
        "metrics": {**summarize(report, classes, len(y_true)), "confusion": confusion.tolist(),
                    "intervals": intervals_json(intervals)},
        "flat": {**flat_metrics(report, classes), **interval_metrics(intervals)},
        "report": report,
        "confusion": confusion,
        "intervals": intervals,
        "y_pred": np.asarray(y_pred),
    }


def score_model(model, x: np.ndarray, y: np.ndarray, classes: Sequence[str], batch_size: int,
                callbacks: list = ()) -> dict:
    """Predict the test set once (batched) and score it; see `score` for the result."""
    probs = predict_proba(model, x, batch_size, callbacks)
    if probs.shape[1] != len(classes):
        raise PipelineError(f"model outputs {probs.shape[1]} classes; the test set has {len(classes)}")
    return score(y, probs.argmax(axis=1), classes)
