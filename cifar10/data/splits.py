"""The one stratified splitter: training subsets and validation splits for every model.

Rows are chosen with seeded NumPy generators, so the same labels, fraction and seed always give the
same rows (a resumed run sees exactly the rows an uninterrupted one would have).
"""
from __future__ import annotations

import numpy as np

from cifar10.errors import PipelineError


def stratified_take(y: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into `n` taken and the rest, each class in proportion to its count.

    Largest-remainder rounding keeps the total exact even when there are fewer rows to take than
    classes (tiny data), where scikit-learn's stratified split refuses.
    """
    labels, counts = np.unique(y, return_counts=True)
    ideal = counts * n / len(y)
    quota = np.floor(ideal).astype(int)
    order = np.lexsort((rng.random(len(labels)), -(ideal - quota)))  # ties broken at random, seeded
    quota[order[: n - quota.sum()]] += 1
    taken, rest = [], []
    for label, k in zip(labels, quota):
        rows = rng.permutation(np.flatnonzero(y == label))
        taken.append(rows[:k])
        rest.append(rows[k:])
    return np.sort(np.concatenate(taken)), np.sort(np.concatenate(rest))


def split_rows(y: np.ndarray, validation_split: float, seed: int, train_size: int | None = None,
               section: str = "train", source: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row indices: an optional stratified `train_size` subset, then a
    stratified validation split carved from it (disjoint; the test set is never involved).

    Args:
        y: labels of the training set.
        validation_split: fraction of the (sub)set held out, rounded to whole images.
        seed: seed of both draws.
        train_size: None for all rows, else the size of the stratified subset.
        section: the params section the values come from, for error messages.
        source: per row, the row of the original image it shows (the augment stage's `source`); given,
            validation is carved from the originals alone and the variants of a validation image are
            left out of training, so no validation image has a variant on the other side. On a
            rebalanced set (and no `train_size`) the validation rows are then the ones its unaugmented
            originals get with the same seed.
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(len(y))
    if train_size is not None:
        if train_size > len(y):
            raise PipelineError(
                f"params.yaml: {section}.train_size: at most the {len(y)} images of the training set "
                f"(got {train_size})"
            )
        rows, _ = stratified_take(y, train_size, rng)
    pool = rows if source is None else rows[source[rows] == rows]  # the originals, when variants exist
    n_val = round(validation_split * len(pool))
    if n_val < 1 or n_val >= len(pool):
        raise PipelineError(
            f"params.yaml: {section}.validation_split: {validation_split} of {len(pool)} images leaves no "
            "validation or no training image; change it or use more images"
        )
    val_pos, train_pos = stratified_take(y[pool], n_val, rng)
    if source is None:
        return rows[train_pos], rows[val_pos]
    val = pool[val_pos]
    return rows[~np.isin(source[rows], val)], val


def validation_source(extra: dict[str, np.ndarray], validation_from: str, section: str) -> np.ndarray | None:
    """The `source` argument of split_rows for a `validation_from` param and a dataset's extra arrays.

    None for `all`, and for a set without synthetic rows (it splits the same either way); refuses a
    set with synthetic rows but no `source` array (written by an older augment stage).
    """
    if validation_from != "originals":
        return None
    if "source" not in extra and "synthetic" in extra:
        raise PipelineError(f"params.yaml: {section}.validation_from: originals needs the `source` array the "
                            "augment stage writes beside `synthetic`; this training set has none (rerun augment)")
    return extra.get("source")
