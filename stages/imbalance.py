"""Stage `imbalance-subsample`: make some classes rare by dropping most of their training images.

Removes `1 - keep_fraction` of the training images of each class in `imbalance.classes`, chosen at
random with `base.seed`; the other classes and the order of the kept rows are unchanged. The test
set is not touched (later stages read data/raw/test.npz).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from stages import dataset
from stages.atomic import remove_output
from stages.dataset import Dataset
from stages.errors import PipelineError, cli_errors
from stages.schema import load_params
from stages.tracking import stage_run


def subsample(ds: Dataset, classes: Sequence[str], keep_fraction: float, seed: int) -> Dataset:
    """Keep round(n * keep_fraction) of the n images of each listed class, at random.

    Classes are drawn in label order whatever the order of `classes`, so the same set of classes
    and seed always keep the same rows.
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
    return Dataset(ds.x[keep], ds.y[keep], ds.classes, {k: v[keep] for k, v in ds.extra.items()})


def counts_figure(before: dict[str, int], after: dict[str, int], title: str = "training images per class"):
    """Grouped bars: images per class before and after subsampling."""
    from matplotlib.figure import Figure

    names = list(before)
    pos = np.arange(len(names))
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    ax.bar(pos - 0.2, [before[n] for n in names], width=0.4, label="before")
    bars = ax.bar(pos + 0.2, [after[n] for n in names], width=0.4, label="after")
    ax.bar_label(bars, fontsize=7)
    ax.set_xticks(pos, names, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


@cli_errors
def main() -> None:
    params = load_params()
    cfg, seed = params.imbalance, params.base.seed
    if not dataset.RAW_TRAIN.exists():
        raise PipelineError(f"{dataset.RAW_TRAIN} not found: run `dvc repro download` first")
    try:
        with stage_run("imbalance-subsample", params, ["imbalance"]) as tracker:
            tracker.log_params({"base.seed": seed})
            train = dataset.load(dataset.RAW_TRAIN)
            result = subsample(train, cfg.classes, cfg.keep_fraction, seed)
            dataset.save(dataset.IMBALANCED_TRAIN, result)
            before, after = train.counts(), result.counts()
            metrics = {"count_before": len(train), "count_after": len(result)}
            metrics.update({f"count_before_{c}": n for c, n in before.items()})
            metrics.update({f"count_after_{c}": n for c, n in after.items()})
            tracker.log_metrics(metrics)
            tracker.log_figure(counts_figure(before, after), "counts.png")
    except BaseException:
        remove_output(dataset.IMBALANCED_TRAIN)
        raise
    kept = ", ".join(f"{c} {before[c]} -> {after[c]}" for c in cfg.classes)
    print(f"imbalance-subsample: {len(train)} -> {len(result)} training images ({kept})")


if __name__ == "__main__":
    main()
