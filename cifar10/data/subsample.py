"""Making classes rare: the core of the imbalance-subsample stage."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from cifar10.data.dataset import Dataset
from cifar10.errors import PipelineError


def subsample(ds: Dataset, classes: Sequence[str], keep_fraction: float, seed: int) -> Dataset:
    """Keep round(n * keep_fraction) of the n images of each listed class, at random.

    The other classes and the order of the kept rows are unchanged. Classes are drawn in label
    order whatever the order of `classes`, so the same set of classes and seed always keep the same
    rows.
    """
    unknown = [c for c in classes if c not in ds.classes]
    if unknown:
        raise PipelineError(f"imbalance.classes: {', '.join(unknown)} not among the dataset's classes")
    rng = np.random.default_rng(seed)
    keep = np.ones(len(ds), dtype=bool)
    for label in sorted(ds.classes.index(c) for c in classes):
        rows = np.flatnonzero(ds.y == label)
        chosen = rng.choice(rows, size=round(len(rows) * keep_fraction), replace=False)
        keep[rows] = False
        keep[chosen] = True
    return ds.take(keep)
