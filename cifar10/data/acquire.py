"""The download stage's core: a CIFAR-10 source (URL, archive or folder) into train and test datasets.

The source is fetched (or copied) and verified, extracted safely into a scratch folder, recognised by
its content (official binary release or image folders) and decoded. The scratch folder is removed
whatever happens.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar10.data.dataset import Dataset
from cifar10.data.sources import cifar_binary, image_folder
from cifar10.data.sources.fetch import fetch, is_remote, local_path
from cifar10.data.sources.safe_extract import safe_extract
from cifar10.errors import PipelineError
from cifar10.paths import project_root
from cifar10.schema.data import DownloadParams

SCRATCH_PREFIX = ".download-"
OFFLINE_HINT = ("offline? set download.source to a local copy: the official archive or an image-folder "
                "archive or folder (train/<class>/*, test/<class>/*)")


@dataclass(frozen=True)
class Acquired:
    train: Dataset
    test: Dataset
    format: str  # cifar-10-binary | image-folder
    checksum: str  # the verified (or recorded) checksum of the source, or why there is none


def first_per_class(ds: Dataset, n: int | None) -> Dataset:
    """Keep the first `n` images of each class, in their original order (all when n is None)."""
    if n is None:
        return ds
    keep = np.concatenate([np.flatnonzero(ds.y == label)[:n] for label in range(len(ds.classes))])
    keep.sort()
    return ds.take(keep)


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


def resolve_local(source: str) -> Path:
    """A relative local source, from the project root (cwd) or, inside a DVC temporary workspace, its repo."""
    path = local_path(source)
    if not path.is_absolute() and not path.exists():
        alt = project_root() / path
        if alt.exists():
            return alt
    return path


def check_source(cfg: DownloadParams) -> None:
    """Fail in a moment on a local source that does not exist (before any tracking or work)."""
    if not is_remote(cfg.source) and not resolve_local(cfg.source).exists():
        raise PipelineError(f"download.source: {cfg.source} not found (from {Path.cwd()})")


def acquire(cfg: DownloadParams, scratch_parent: Path) -> Acquired:
    """Fetch, verify, extract and read the configured source; scratch space lives in `scratch_parent`
    (the output folder, so the extraction lands on the same disk) and is removed afterwards."""
    scratch_parent.mkdir(parents=True, exist_ok=True)
    for old in scratch_parent.glob(f"{SCRATCH_PREFIX}*"):  # left by a killed run
        shutil.rmtree(old, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(dir=scratch_parent, prefix=SCRATCH_PREFIX))
    try:
        return _fetch_and_read(cfg, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fetch_and_read(cfg: DownloadParams, scratch: Path) -> Acquired:
    source = cfg.source if is_remote(cfg.source) else None
    path = None if source else resolve_local(cfg.source)
    if path is not None and path.is_dir():
        if cfg.checksum:
            raise PipelineError(
                f"download.checksum: {path} is a folder and cannot be checksummed; set download.checksum to ''"
            )
        return Acquired(*load_folder(path, cfg.train_per_class, cfg.test_per_class), "none (folder read in place)")
    name = Path(source.split("?")[0]).name if source else path.name
    archive = scratch / (name or "source")
    try:
        checksum = fetch(str(source or path), archive, cfg.checksum, cfg.retries, cfg.timeout, "download.source",
                         OFFLINE_HINT)
    except PipelineError as exc:
        if "checksum mismatch" in str(exc):
            raise PipelineError(f"{exc} (download.checksum belongs to the source; '' records a new one)") from None
        raise
    safe_extract(archive, scratch / "extracted")
    archive.unlink()  # halves the scratch space needed while decoding
    return Acquired(*load_folder(scratch / "extracted", cfg.train_per_class, cfg.test_per_class), checksum)
