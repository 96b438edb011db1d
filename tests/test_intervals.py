"""Test-set intervals: the bootstrap agrees with the binomial where the answer is known, and with itself
whether it starts from a confusion matrix or from per-class counts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cifar10.reporting.intervals import METHOD, RESAMPLES, confusion_intervals, recall_intervals


def _binomial_95(k: int, n: int) -> tuple[float, float]:
    p = k / n
    half = 1.959964 * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


def test_accuracy_interval_is_the_binomial_one_for_a_large_test_set():
    """10,000 images, 8,000 right: a proportion's interval is p +- 1.96 sqrt(p(1-p)/n) = [0.7922, 0.8078]."""
    cm = np.zeros((2, 2), np.int64)
    cm[0, 0], cm[0, 1], cm[1, 1], cm[1, 0] = 4100, 900, 3900, 1100
    acc = confusion_intervals(cm, ["a", "b"])["accuracy"]
    low, high = _binomial_95(8000, 10_000)
    assert acc.value == 0.8
    assert acc.low == pytest.approx(low, abs=1.5e-3) and acc.high == pytest.approx(high, abs=1.5e-3)
    assert acc.half_width == pytest.approx((high - low) / 2, rel=0.1)


def test_a_class_recall_interval_is_binomial_over_that_class_support():
    """1,000 cats, 270 found: [0.242, 0.298] by the binomial; the other classes do not widen it."""
    support = {"cat": 1000, "dog": 1000, "car": 8000}
    recall = {"cat": 0.27, "dog": 0.55, "car": 0.9}
    cat = recall_intervals(support, recall)["recall"]["cat"]
    low, high = _binomial_95(270, 1000)
    assert cat.low == pytest.approx(low, abs=4e-3) and cat.high == pytest.approx(high, abs=4e-3)


def test_counts_alone_give_the_confusion_matrix_intervals_for_accuracy_and_recall():
    rng = np.random.default_rng(1)
    cm = rng.integers(0, 60, (10, 10)) + np.diag(rng.integers(300, 900, 10))
    classes = [f"c{i}" for i in range(10)]
    full = confusion_intervals(cm, classes)
    support = {c: int(cm[i].sum()) for i, c in enumerate(classes)}
    recall = {c: cm[i, i] / cm[i].sum() for i, c in enumerate(classes)}
    counts = recall_intervals(support, recall)
    assert counts["accuracy"].value == pytest.approx(full["accuracy"].value)
    assert counts["accuracy"].half_width == pytest.approx(full["accuracy"].half_width, rel=0.15)
    for c in classes:
        assert counts["recall"][c].half_width == pytest.approx(full["recall"][c].half_width, rel=0.15)
    assert full["macro_f1"].low < full["macro_f1"].value < full["macro_f1"].high


def test_intervals_are_seeded_and_named():
    cm = np.array([[50, 10], [5, 35]])
    assert str(confusion_intervals(cm, "ab")["macro_f1"]) == str(confusion_intervals(cm, "ab")["macro_f1"])
    assert f"{RESAMPLES:,} resamples" in METHOD and "bootstrap" in METHOD
    with pytest.raises(ValueError, match="no test images"):
        confusion_intervals(np.zeros((2, 2)), "ab")
