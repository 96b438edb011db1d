"""95% intervals of the figures on STUDIES.md, from the counts each run's record keeps.

Test figures: cifar10.reporting.intervals, from the run's test confusion matrix where its record kept one
(accuracy, each class's recall and macro F1), else from each class's test support and recall (accuracy and
recall; macro F1 then has none). Validation balanced accuracy: the records keep no per-class validation
counts, so its interval is the same bootstrap over the stratified validation split's class counts (they
follow from its size and the set it was drawn from), each class at the recall the run reached on test,
the classes' half-widths combined as independent strata.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from cifar10.reporting.intervals import Interval, confusion_intervals, recall_intervals
from cifar10.schema.data import ImbalanceParams
from writeup.studies.records import Trained

Value = Callable[[Trained], "float | None"]


@dataclass(frozen=True)
class Figure:
    """A figure runs are compared on: its label, its value in a run and the half-width of its 95% interval
    there (None where the run's record cannot give one)."""

    label: str
    value: Value
    half_width: Value


def _classes(run: Trained) -> list[str]:
    return [k.removeprefix("test_support_") for k in run.metrics if k.startswith("test_support_")]


@lru_cache(maxsize=4096)
def _from_counts(support: tuple[tuple[str, int], ...], recall: tuple[tuple[str, float], ...]) -> dict:
    return recall_intervals(dict(support), dict(recall))


@lru_cache(maxsize=1024)
def _from_matrix(matrix: tuple[tuple[int, ...], ...], classes: tuple[str, ...]) -> dict:
    return confusion_intervals(matrix, classes)


def intervals_on_test(run: Trained) -> dict | None:
    """accuracy, recall (per class) and macro_f1 (None without a confusion matrix) as Intervals."""
    if run.confusion:
        return _from_matrix(tuple(map(tuple, run.confusion["matrix"])), tuple(run.confusion["classes"]))
    classes = _classes(run)
    if not classes or any(f"test_recall_{c}" not in run.metrics for c in classes):
        return None
    found = _from_counts(tuple((c, int(run.metrics[f"test_support_{c}"])) for c in classes),
                         tuple((c, run.metrics[f"test_recall_{c}"]) for c in classes))
    return {**found, "macro_f1": None}


def interval_on_test(run: Trained, key: str) -> Interval | None:
    """The interval of one logged test figure (test_accuracy, test_macro_f1, test_recall_<class>), if any."""
    found = intervals_on_test(run)
    if found is None:
        return None
    if key.startswith("test_recall_"):
        return found["recall"].get(key.removeprefix("test_recall_"))
    return {"test_accuracy": found["accuracy"], "test_macro_f1": found["macro_f1"]}.get(key)


def figure_on_test(label: str, key: str) -> Figure:
    """A logged test figure and its test-set interval."""
    def half(run: Trained) -> float | None:
        found = interval_on_test(run, key)
        return found.half_width if found else None

    return Figure(label, lambda run: run.metrics.get(key), half)


def validation_support(run: Trained, half: bool = False) -> dict[str, int] | None:
    """Images per class in the run's validation split (`half`: in the half logit adjustment's ranking reads),
    for part 3's and the remedies' runs: the split is stratified over the study's imbalanced set where the
    baseline trains or validation holds originals only, else over a set with every class alike."""
    total, classes = int(float(run.params.get("val_images", 0))), _classes(run)
    if not total or not classes:
        return None
    study = ImbalanceParams()
    imbalanced = run.model == "baseline" or run.params.get("train.validation_from") == "originals"
    weights = [study.keep_fraction if imbalanced and c in study.classes else 1.0 for c in classes]
    ideal = [total * w / sum(weights) for w in weights]
    counts = [math.floor(x) for x in ideal]
    for i in sorted(range(len(classes)), key=lambda i: counts[i] - ideal[i])[:total - sum(counts)]:
        counts[i] += 1  # largest remainders first, as the splitter rounds
    return {c: n // 2 if half else n for c, n in zip(classes, counts)}


def validation_half_width(run: Trained, half: bool = False) -> float | None:
    """Half-width of the 95% interval of the run's validation balanced accuracy (see the module's note)."""
    support = validation_support(run, half)
    if support is None or any(f"test_recall_{c}" not in run.metrics for c in support):
        return None
    counted = {c: n for c, n in support.items() if n}
    per_class = _from_counts(tuple(counted.items()),
                             tuple((c, run.metrics[f"test_recall_{c}"]) for c in counted))["recall"]
    return math.sqrt(sum(i.half_width ** 2 for i in per_class.values())) / len(per_class)


def with_interval(run: Trained, key: str, digits: int = 3) -> str:
    """`0.761 [0.753, 0.770]`: a run's test figure and its interval (the figure alone where it has none)."""
    found = interval_on_test(run, key)
    value = f"{run.metrics[key]:.{digits}f}"
    return f"{value} [{found.low:.{digits}f}, {found.high:.{digits}f}]" if found else value


def mean_with(runs: list[Trained], figure: Figure) -> str:
    """A figure over seeds: `0.713 (0.685 to 0.738) ±0.009`, the mean, the seeds' range and the largest half-width
    of the runs' intervals (left out where a run has none); one run: `0.818 ±0.008`; `–` without runs."""
    found = [(v, figure.half_width(r)) for r in runs if (v := figure.value(r)) is not None]
    if not found:
        return "–"
    values, halves = [v for v, _ in found], [h for _, h in found]
    text = f"{values[0]:.3f}" if len(values) == 1 else (
        f"{statistics.mean(values):.3f} ({min(values):.3f} to {max(values):.3f})")
    return text + (f" ±{max(halves):.3f}" if None not in halves else "")
