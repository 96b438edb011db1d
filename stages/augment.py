"""Stage `augment`: rebalance the imbalanced training set with synthetic, augmented images.

Every original row is kept bit for bit and in order; synthetic rows follow, class by class in
label order, each an augmented copy of an original of its class (originals are used in a seeded
random order, cycling, so each one is used about equally often). The output adds a boolean
`synthetic` array marking the generated rows; other extra arrays of the input are not carried
over, since they have no meaning for synthetic rows. The test set is never augmented.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from stages import dataset
from stages.atomic import atomic_output, remove_output
from stages.dataset import Dataset
from stages.errors import PipelineError, cli_errors
from stages.schema import load_params
from stages.schema.augment import AugmentParams

PREVIEW = Path("plots/augment/preview.png")
SAMPLES = Path("plots/augment/samples.png")


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
    if len(rows):
        from stages.augmentations import augment_rows, make_augmenter  # TF: only when needed

        augment_rows(augmenter or make_augmenter(cfg, seed), ds.x, rows, x[n:], cfg.batch_size)
    synthetic = np.zeros(len(x), dtype=bool)
    synthetic[n:] = True
    return Dataset(x, np.concatenate([ds.y, labels]), ds.classes, {"synthetic": synthetic})


def _save_figure(fig, path: Path) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120)


def _figures(before: Dataset, after: Dataset, classes: Sequence[str], augmenter, n_variants: int):
    from stages.augment_figures import preview_figure, samples_figure

    names = [c for c in before.classes if c in classes]
    label = before.classes.index(names[0]) if names else int(before.y[0])
    original = before.x[np.flatnonzero(before.y == label)[0]]
    variants = augmenter(np.repeat(original[None], n_variants, axis=0))
    preview = preview_figure(original, variants, before.classes[label])
    synthetic = after.extra["synthetic"]
    samples = {c: after.x[synthetic & (after.y == before.classes.index(c))][:8] for c in names}
    return preview, samples_figure(samples)


@cli_errors
def main() -> None:
    try:  # whatever fails, bad params included, leaves no output that looks like a result
        params = load_params()
        cfg, seed = params.augment, params.base.seed
        classes = cfg.classes if cfg.classes is not None else params.imbalance.classes
        train = dataset.load(dataset.IMBALANCED_TRAIN)
        needed = plan(train, classes, cfg.target)  # bad target: fail before TF is even imported

        from stages.augmentations import make_augmenter
        from stages.runtime import seed_everything
        from stages.tracking import stage_run

        seed_everything(seed, params.base.deterministic)
        augmenter = make_augmenter(cfg, seed)  # one compiled pipeline for the data and the preview
        with stage_run("augment", params, ["base", "imbalance", "augment"]) as tracker:
            goal = max(train.counts().values()) if cfg.target == "max" else cfg.target
            tracker.log_params({"augment.resolved_classes": list(needed), "augment.resolved_target": goal})
            start = time.perf_counter()
            result = augment(train, classes, cfg.target, cfg, seed, augmenter)
            seconds = time.perf_counter() - start
            dataset.save(dataset.AUGMENTED_TRAIN, result)
            n_synthetic = int(result.extra["synthetic"].sum())
            metrics = {
                "n_synthetic": n_synthetic,
                "count_before": len(train),
                "count_after": len(result),
                "augment_seconds": seconds,
                "images_per_s": n_synthetic / seconds,
            }
            metrics.update({f"count_before_{c}": k for c, k in train.counts().items()})
            metrics.update({f"count_after_{c}": k for c, k in result.counts().items()})
            tracker.log_metrics(metrics)
            figures = _figures(train, result, list(needed), augmenter, cfg.preview_variants)
            for fig, path in zip(figures, (PREVIEW, SAMPLES)):
                _save_figure(fig, path)
                tracker.log_artifact(path, "augment")
    except BaseException:
        for path in (dataset.AUGMENTED_TRAIN, PREVIEW, SAMPLES):
            remove_output(path)
        raise
    added = ", ".join(f"{c} +{k}" for c, k in needed.items()) or "nothing to add"
    print(f"augment: {len(train)} -> {len(result)} training images ({added}), "
          f"{metrics['images_per_s']:.0f} synthetic images/s")


if __name__ == "__main__":
    main()
