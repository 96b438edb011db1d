"""Stage `download`: get CIFAR-10 (official binary release or an image-folder dataset) into data/raw.

The source is fetched (or copied) and verified, extracted safely into a scratch folder inside
data/raw, recognised by its content, and written as data/raw/{train,test}.npz. The scratch folder
is removed whatever happens; a failed run leaves no dataset files behind.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from stages import dataset
from stages.atomic import atomic_output, remove_output
from stages.dataset import Dataset
from stages.errors import PipelineError, cli_errors
from stages.schema import load_params
from stages.sources import cifar_binary, image_folder
from stages.sources.fetch import fetch, is_remote, local_path
from stages.sources.safe_extract import safe_extract
from stages.tracking import project_root, stage_run

RAW_DIR = dataset.RAW_TRAIN.parent
SOURCE_INFO = RAW_DIR / "source.json"
SCRATCH_PREFIX = ".download-"
GRID_PER_CLASS = 8


def first_per_class(ds: Dataset, n: int | None) -> Dataset:
    """Keep the first `n` images of each class, in their original order (all when n is None)."""
    if n is None:
        return ds
    keep = np.concatenate([np.flatnonzero(ds.y == label)[:n] for label in range(len(ds.classes))])
    keep.sort()
    return Dataset(ds.x[keep], ds.y[keep], ds.classes)


def load_folder(folder: Path, train_per_class: int | None, test_per_class: int | None) -> tuple[Dataset, Dataset, str]:
    """Recognise a dataset folder by its content and read it: (train, test, format name)."""
    root = cifar_binary.find_root(folder)
    if root is not None:
        train, test = cifar_binary.load_binary(root)
        return first_per_class(train, train_per_class), first_per_class(test, test_per_class), "cifar-10-binary"
    root = image_folder.find_root(folder)
    if root is not None:
        train, test = image_folder.load_image_folder(root, train_per_class, test_per_class)
        return train, test, "image-folder"
    entries = sorted(p.name for p in folder.iterdir())[:10]
    raise PipelineError(
        f"download.source: found neither {cifar_binary.FOLDER}/ nor train/ and test/ folders "
        f"(top level holds: {', '.join(entries) or 'nothing'})"
    )


def sample_grid(ds: Dataset, per_class: int = GRID_PER_CLASS, title: str = ""):
    """A figure with one row per class showing its first `per_class` images."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(per_class * 0.8 + 1.2, len(ds.classes) * 0.8 + 0.4))
    axes = fig.subplots(len(ds.classes), per_class, squeeze=False)
    for label, name in enumerate(ds.classes):
        rows = np.flatnonzero(ds.y == label)[:per_class]
        for col, ax in enumerate(axes[label]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(rows):
                ax.imshow(ds.x[rows[col]], interpolation="nearest")
            else:
                ax.axis("off")
        axes[label][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.15, right=0.99, top=0.95 if title else 0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    return fig


def _resolve_local(source: str) -> Path:
    """A relative local source, from the project root (cwd) or, inside a DVC temporary workspace, its repo."""
    path = local_path(source)
    if not path.is_absolute() and not path.exists():
        alt = project_root() / path
        if alt.exists():
            return alt
    return path


def _fetch_and_read(cfg, scratch: Path) -> tuple[Dataset, Dataset, str, str]:
    """(train, test, format, recorded checksum) for the configured source."""
    source = cfg.source if is_remote(cfg.source) else None
    path = None if source else _resolve_local(cfg.source)
    if path is not None and path.is_dir():
        if cfg.checksum:
            raise PipelineError(
                f"download.checksum: {path} is a folder and cannot be checksummed; set download.checksum to ''"
            )
        return (*load_folder(path, cfg.train_per_class, cfg.test_per_class), "none (folder read in place)")
    name = Path(source.split("?")[0]).name if source else path.name
    archive = scratch / (name or "source")
    try:
        checksum = fetch(str(source or path), archive, cfg.checksum, cfg.retries, cfg.timeout, "download.source")
    except PipelineError as exc:
        if "checksum mismatch" in str(exc):
            raise PipelineError(f"{exc} (download.checksum belongs to the source; '' records a new one)") from None
        raise
    safe_extract(archive, scratch / "extracted")
    archive.unlink()  # halves the scratch space needed while decoding
    return (*load_folder(scratch / "extracted", cfg.train_per_class, cfg.test_per_class), checksum)


def _clear_stale_scratch() -> None:
    """Scratch folders of a run that was killed must not end up inside the stage's output."""
    if RAW_DIR.is_dir():
        for old in RAW_DIR.glob(f"{SCRATCH_PREFIX}*"):
            shutil.rmtree(old, ignore_errors=True)


@cli_errors
def main() -> None:
    params = load_params()
    cfg = params.download
    if not is_remote(cfg.source) and not _resolve_local(cfg.source).exists():
        raise PipelineError(f"download.source: {cfg.source} not found (from {Path.cwd()})")
    outputs = (dataset.RAW_TRAIN, dataset.RAW_TEST, SOURCE_INFO)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    _clear_stale_scratch()
    scratch = Path(tempfile.mkdtemp(dir=RAW_DIR, prefix=SCRATCH_PREFIX))
    try:
        with stage_run("download", params, ["download"]) as tracker:
            train, test, fmt, checksum = _fetch_and_read(cfg, scratch)
            shutil.rmtree(scratch, ignore_errors=True)
            dataset.save(dataset.RAW_TRAIN, train)
            dataset.save(dataset.RAW_TEST, test)
            info = {"source": cfg.source, "checksum": checksum, "format": fmt,
                    "train": train.counts(), "test": test.counts()}
            with atomic_output(SOURCE_INFO) as tmp:
                tmp.write_text(json.dumps(info, indent=2) + "\n")

            tracker.set_tags({"source": cfg.source, "source_checksum": checksum, "source_format": fmt})
            tracker.log_params({"source_checksum": checksum, "source_format": fmt})
            metrics = {"count_train": len(train), "count_test": len(test)}
            for split, ds in (("train", train), ("test", test)):
                metrics.update({f"count_{split}_{name}": n for name, n in ds.counts().items()})
            tracker.log_metrics(metrics)
            tracker.log_dict(info, "source.json")
            tracker.log_figure(sample_grid(train, title=f"train samples ({fmt})"), "samples/train_grid.png")
    except BaseException:
        for path in outputs:
            remove_output(path)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not cfg.checksum and checksum.startswith("sha256:"):
        print(f"download: recorded {checksum} for {cfg.source} (set download.checksum to pin it)", file=sys.stderr)
    print(f"download: {fmt} from {cfg.source}: {len(train)} train / {len(test)} test images "
          f"({', '.join(f'{c} {n}' for c, n in train.counts().items())})")


if __name__ == "__main__":
    main()
