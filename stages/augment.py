"""Stage `augment`: rebalance the imbalanced training set with synthetic, augmented images.

Writes data/augmented/train.npz (originals first, then synthetic rows, marked by `synthetic`, each
row's original in `source`) and the preview figures plots/augment/{preview,samples}.png. The test set
is never augmented.
"""
from __future__ import annotations

import time
from pathlib import Path

from cifar10.augmentation.rebalance import augment, plan, preview_inputs
from cifar10.data import dataset
from cifar10.errors import cli_errors
from cifar10.outputs import atomic_output, no_partial_outputs
from cifar10.paths import AUGMENTED_TRAIN, IMBALANCED_TRAIN
from cifar10.reporting.figures import preview_figure, samples_figure
from cifar10.schema import load_params

PREVIEW = Path("plots/augment/preview.png")
SAMPLES = Path("plots/augment/samples.png")


@cli_errors
def main() -> None:
    # Whatever fails, bad params included, leaves no output that looks like a result.
    with no_partial_outputs(AUGMENTED_TRAIN, PREVIEW, SAMPLES):
        params = load_params()
        cfg, seed = params.augment, params.base.seed
        classes = cfg.classes if cfg.classes is not None else params.imbalance.classes
        train = dataset.load(IMBALANCED_TRAIN)
        needed = plan(train, classes, cfg.target)  # a bad target fails before TF is even imported

        from cifar10.console import quiet_tensorflow

        quiet_tensorflow()
        from cifar10.augmentation.layers import make_augmenter
        from cifar10.runtime import seed_everything
        from cifar10.tracking.datasets import dataset_input
        from cifar10.tracking.runs import stage_run

        with stage_run("augment", params, ["base", "imbalance", "augment"]) as tracker:
            seed_everything(seed, params.base.deterministic)
            augmenter = make_augmenter(cfg, seed)  # one compiled pipeline for the data and the preview
            started = time.perf_counter()
            result = augment(train, classes, cfg.target, cfg, seed, augmenter)
            seconds = time.perf_counter() - started

            dataset.save(AUGMENTED_TRAIN, result)
            original, label, variants, samples = preview_inputs(train, result, list(needed), augmenter,
                                                                cfg.preview_variants)
            for fig, path in ((preview_figure(original, variants, label), PREVIEW), (samples_figure(samples), SAMPLES)):
                with atomic_output(path) as tmp:
                    fig.savefig(tmp, dpi=120)

            n_synthetic = int(result.extra["synthetic"].sum())
            goal = max(train.counts().values()) if cfg.target == "max" else cfg.target
            tracker.log_params({"augment.resolved_classes": list(needed), "augment.resolved_target": goal})
            metrics = {"n_synthetic": n_synthetic, "count_before": len(train), "count_after": len(result),
                       "augment_seconds": seconds, "images_per_s": n_synthetic / seconds}
            metrics.update({f"count_before_{c}": k for c, k in train.counts().items()})
            metrics.update({f"count_after_{c}": k for c, k in result.counts().items()})
            tracker.log_metrics(metrics)
            tracker.log_datasets([dataset_input(IMBALANCED_TRAIN, train, "input"),
                                  dataset_input(AUGMENTED_TRAIN, result, "output")])
            for path in (PREVIEW, SAMPLES):
                tracker.log_artifact(path, "augment")

    added = ", ".join(f"{c} +{k}" for c, k in needed.items()) or "nothing to add"
    print(f"augment: {len(train)} -> {len(result)} training images ({added}), "
          f"{metrics['images_per_s']:.0f} synthetic images/s")


if __name__ == "__main__":
    main()
