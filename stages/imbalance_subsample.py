"""Stage `imbalance-subsample`: make some classes rare by dropping most of their training images.

Removes `1 - keep_fraction` of the training images of each class in `imbalance.classes`, chosen at
random with `base.seed`, and writes data/imbalanced/train.npz. The test set is not touched.
"""
from __future__ import annotations

from cifar10.data import dataset
from cifar10.data.subsample import subsample
from cifar10.errors import cli_errors
from cifar10.outputs import no_partial_outputs
from cifar10.paths import IMBALANCED_TRAIN, RAW_TRAIN, require
from cifar10.reporting.figures import counts_figure
from cifar10.schema import load_params
from cifar10.tracking.datasets import dataset_input
from cifar10.tracking.runs import stage_run


@cli_errors
def main() -> None:
    params = load_params()
    cfg, seed = params.imbalance, params.base.seed
    require(RAW_TRAIN)

    with no_partial_outputs(IMBALANCED_TRAIN), stage_run("imbalance-subsample", params, ["imbalance"]) as tracker:
        train = dataset.load(RAW_TRAIN)
        result = subsample(train, cfg.classes, cfg.keep_fraction, seed)

        dataset.save(IMBALANCED_TRAIN, result)

        before, after = train.counts(), result.counts()
        tracker.log_params({"base.seed": seed})
        metrics = {"count_before": len(train), "count_after": len(result)}
        metrics.update({f"count_before_{c}": n for c, n in before.items()})
        metrics.update({f"count_after_{c}": n for c, n in after.items()})
        tracker.log_metrics(metrics)
        tracker.log_datasets([dataset_input(RAW_TRAIN, train, "input"),
                              dataset_input(IMBALANCED_TRAIN, result, "output")])
        tracker.log_figure(counts_figure(before, after), "counts.png")

    kept = ", ".join(f"{c} {before[c]} -> {after[c]}" for c in cfg.classes)
    print(f"imbalance-subsample: {len(train)} -> {len(result)} training images ({kept})")


if __name__ == "__main__":
    main()
