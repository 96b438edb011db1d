"""Rebalancing a training set with synthetic, augmented images: the augment stage's core.

Every original row is kept bit for bit and in order; synthetic rows follow, class by class in
label order, each an augmented copy of an original of its class (originals are used in a seeded
random order, cycling, so each one is used about equally often). The output adds a boolean
`synthetic` array marking the generated rows and an int64 `source` array, the row of the original
each row shows (an original: its own row), so a validation split can keep an image and its variants
on one side (`train.validation_from: originals`). Other extra arrays of the input are not carried
over, since they have no meaning for synthetic rows. The test set is never augmented.
"""
from __future__ import annotations

from typing import Callable, Literal, Sequence

import numpy as np

from cifar10.data.dataset import Dataset
from cifar10.errors import PipelineError
from cifar10.schema.augment import AugmentParams


def plan(ds: Dataset, classes: Sequence[str], target: int | Literal["max"]) -> dict[str, int]:
    """New images needed per augmented class (label order); PipelineError if `target` is impossible."""
    counts = ds.counts()
    goal = max(counts.values(), default=0) if target == "max" else target
    needed = {}
    for name in sorted(set(classes), key=ds.classes.index):
        if counts[name] == 0:
            raise PipelineError(f"augment.classes: class {name!r} has no training images to augment")
        if goal < counts[name]:
            raise PipelineError(
                f"augment.target: {goal} is below the {counts[name]} images class {name!r} already has;"
                f" use a target >= {counts[name]} or max"
            )
        needed[name] = goal - counts[name]
    return needed


def source_rows(ds: Dataset, needed: dict[str, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows of `ds` to augment, their labels): per class a seeded permutation of its rows, cycled."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for name, n in needed.items():
        label = ds.classes.index(name)
        own = np.flatnonzero(ds.y == label)
        rows.append(np.resize(rng.permutation(own), n))
        labels.append(np.full(n, label, dtype=np.int64))
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(rows), np.concatenate(labels)


def augment(
    ds: Dataset,
    classes: Sequence[str],
    target: int | Literal["max"],
    cfg: AugmentParams,
    seed: int,
    augmenter: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Dataset:
    """Originals first (unchanged, same order), then synthetic rows until each class in `classes`
    has `target` images (`max`: the largest class count). Same inputs and seed, same bytes.

    `augmenter`: a fresh `make_augmenter(cfg, seed)` to reuse afterwards (default: built here).
    """
    needed = plan(ds, classes, target)
    rows, labels = source_rows(ds, needed, seed)
    n = len(ds)
    x = np.empty((n + len(rows), *ds.x.shape[1:]), dtype=np.uint8)
    x[:n] = ds.x
    if len(rows) and cfg.policy == "oversample":  # plain random oversampling: exact copies
        x[n:] = ds.x[rows]
    elif len(rows):
        from cifar10.augmentation.layers import augment_rows, make_augmenter  # TF: only when needed

        augment_rows(augmenter or make_augmenter(cfg, seed), ds.x, rows, x[n:], cfg.batch_size)
    synthetic = np.zeros(len(x), dtype=bool)
    synthetic[n:] = True
    source = np.concatenate([np.arange(n), rows]).astype(np.int64)
    return Dataset(x, np.concatenate([ds.y, labels]), ds.classes, {"synthetic": synthetic, "source": source})




def preview_inputs(before: Dataset, after: Dataset, classes: Sequence[str], augmenter, n_variants: int):
    """What the stage's figures show: (one original, its label name, `n_variants` augmentations of it,
    {class: first synthetic images}) for the first augmented class."""
    names = [c for c in before.classes if c in classes]
    label = before.classes.index(names[0]) if names else int(before.y[0])
    original = before.x[np.flatnonzero(before.y == label)[0]]
    variants = augmenter(np.repeat(original[None], n_variants, axis=0))
    synthetic = after.extra["synthetic"]
    samples = {c: after.x[synthetic & (after.y == before.classes.index(c))][:8] for c in names}
    return original, before.classes[label], variants, samples
