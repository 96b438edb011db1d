"""95% intervals of test-set figures, from resampling the test images (the bootstrap).

A model's test figures are estimates from one finite test set: another 10,000 images from the same
distribution would give other figures. Resampling the test images with replacement RESAMPLES times
and taking the 2.5th and 97.5th percentiles of each figure gives its 95% percentile interval.

Only the counts matter, so a resample is one multinomial draw over the cells of the confusion matrix
(true class x predicted class): the same distribution as drawing images one by one, at a fraction of
the cost. Records that kept only per-class recall and support (no confusion matrix) still give
accuracy and per-class recall intervals: their cells are (class, right) and (class, wrong). Seeded,
so a page written twice carries the same intervals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 20260
METHOD = f"{LEVEL:.0%} percentile bootstrap over the test images, {RESAMPLES:,} resamples"


@dataclass(frozen=True)
class Interval:
    """A figure and its interval."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def _resampled(cells: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """`resamples` draws of the cell counts, each of the same total as `cells`."""
    cells = np.asarray(cells, dtype=np.int64)
    n = int(cells.sum())
    if n == 0:
        raise ValueError("no test images to resample")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, cells.ravel() / n, size=resamples).reshape(resamples, *cells.shape)


def _interval(value: float, samples: np.ndarray) -> Interval:
    low, high = np.nanpercentile(samples, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    return Interval(float(value), float(low), float(high))


def _recalls(cm: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diagonal(cm, axis1=-2, axis2=-1) / cm.sum(axis=-1)


def _macro_f1(cm: np.ndarray) -> np.ndarray:
    diag = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
    predicted, actual = cm.sum(axis=-2), cm.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(predicted + actual > 0, 2 * diag / (predicted + actual), 0.0)
    return f1.mean(axis=-1)


def confusion_intervals(cm, classes, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """Accuracy, macro F1 and each class's recall with intervals, from a confusion matrix
    (rows: true class, columns: predicted, in `classes` order)."""
    cm = np.asarray(cm, dtype=np.int64)
    draws = _resampled(cm, resamples, seed)
    n = cm.sum()
    recalls, sampled = _recalls(cm), _recalls(draws)
    return {
        "accuracy": _interval(np.trace(cm) / n, np.trace(draws, axis1=1, axis2=2) / n),
        "macro_f1": _interval(_macro_f1(cm), _macro_f1(draws)),
        "recall": {c: _interval(recalls[i], sampled[:, i]) for i, c in enumerate(classes)},
    }


def recall_intervals(support: dict[str, int], recall: dict[str, float], resamples: int = RESAMPLES,
                     seed: int = SEED) -> dict:
    """Accuracy and each class's recall with intervals, from per-class support and recall alone."""
    classes = list(support)
    right = np.array([round(recall[c] * support[c]) for c in classes], dtype=np.int64)
    cells = np.stack([right, np.array([support[c] for c in classes]) - right], axis=1)  # (class, right|wrong)
    draws = _resampled(cells, resamples, seed)
    n = cells.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        sampled = draws[:, :, 0] / draws.sum(axis=2)
    return {
        "accuracy": _interval(right.sum() / n, draws[:, :, 0].sum(axis=1) / n),
        "recall": {c: _interval(right[i] / cells[i].sum(), sampled[:, i]) for i, c in enumerate(classes)},
    }
