"""Stage `download`: CIFAR-10 (official binary release or an image-folder dataset) into data/raw.

Writes data/raw/{train,test}.npz and data/raw/source.json; a failed run leaves none of them.
"""
from __future__ import annotations

import json
import sys

from cifar10.data import dataset
from cifar10.data.acquire import acquire, check_source
from cifar10.errors import cli_errors
from cifar10.outputs import atomic_output, no_partial_outputs
from cifar10.paths import RAW_SOURCE_INFO, RAW_TEST, RAW_TRAIN
from cifar10.reporting.figures import sample_grid
from cifar10.schema import load_params
from cifar10.tracking.datasets import dataset_input
from cifar10.tracking.runs import stage_run


@cli_errors
def main() -> None:
    params = load_params()
    cfg = params.download
    check_source(cfg)

    outputs = (RAW_TRAIN, RAW_TEST, RAW_SOURCE_INFO)
    with no_partial_outputs(*outputs), stage_run("download", params, ["download"]) as tracker:
        got = acquire(cfg, scratch_parent=RAW_TRAIN.parent)

        dataset.save(RAW_TRAIN, got.train)
        dataset.save(RAW_TEST, got.test)
        info = {"source": cfg.source, "checksum": got.checksum, "format": got.format,
                "train": got.train.counts(), "test": got.test.counts()}
        with atomic_output(RAW_SOURCE_INFO) as tmp:
            tmp.write_text(json.dumps(info, indent=2) + "\n")

        tracker.set_tags({"source": cfg.source, "source_checksum": got.checksum, "source_format": got.format})
        tracker.log_params({"source_checksum": got.checksum, "source_format": got.format})
        metrics = {"count_train": len(got.train), "count_test": len(got.test)}
        for split, ds in (("train", got.train), ("test", got.test)):
            metrics.update({f"count_{split}_{name}": n for name, n in ds.counts().items()})
        tracker.log_metrics(metrics)
        tracker.log_datasets([dataset_input(path, ds, "output", cfg.source)
                              for path, ds in ((RAW_TRAIN, got.train), (RAW_TEST, got.test))])
        tracker.log_dict(info, "source.json")
        grid = sample_grid(got.train.x, got.train.y, got.train.classes, title=f"train samples ({got.format})")
        tracker.log_figure(grid, "samples/train_grid.png")

    if not cfg.checksum and got.checksum.startswith("sha256:"):
        print(f"download: recorded {got.checksum} for {cfg.source} (set download.checksum to pin it)", file=sys.stderr)
    print(f"download: {got.format} from {cfg.source}: {len(got.train)} train / {len(got.test)} test images "
          f"({', '.join(f'{c} {n}' for c, n in got.train.counts().items())})")


if __name__ == "__main__":
    main()
