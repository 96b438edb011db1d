"""An image-folder dataset: train/<class>/* and test/<class>/* holding PNG or JPEG files.

Class folders are matched to the CIFAR-10 names and mapped to their label order. Files are read in
name order, so the same folder always yields the same arrays. Decoding runs in a thread pool:
Pillow releases the GIL while it decodes.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cifar10.classes import CIFAR10_CLASSES
from cifar10.data.dataset import Dataset
from cifar10.errors import PipelineError
from cifar10.data.sources.images import read_image

SPLITS = ("train", "test")
_CHUNK = 256  # images per pool task: few enough tasks to keep scheduling cheap


def _visible(path: Path) -> bool:
    return not path.name.startswith((".", "__MACOSX"))


def find_root(base: Path) -> Path | None:
    """The folder holding train/ and test/: `base` itself or one of its sub-folders."""
    candidates = [base, *(p for p in sorted(base.iterdir()) if p.is_dir() and _visible(p))]
    for candidate in candidates:
        if all((candidate / split).is_dir() for split in SPLITS):
            return candidate
    return None


def list_split(split_dir: Path, per_class: int | None = None) -> tuple[list[Path], np.ndarray]:
    """The image files of one split in label order (name order within a class), and their labels."""
    folders = {p.name for p in split_dir.iterdir() if p.is_dir() and _visible(p)}
    missing = [c for c in CIFAR10_CLASSES if c not in folders]
    extra = sorted(folders - set(CIFAR10_CLASSES))
    if missing or extra:
        problems = ([f"missing class folders: {', '.join(missing)}"] if missing else []) + (
            [f"unexpected folders: {', '.join(extra)}"] if extra else []
        )
        raise PipelineError(f"{split_dir}: {'; '.join(problems)} (expected exactly the CIFAR-10 class names)")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(CIFAR10_CLASSES):
        files = sorted(p for p in (split_dir / name).iterdir() if p.is_file() and _visible(p))
        if not files:
            raise PipelineError(f"{split_dir / name}: no image files")
        files = files[:per_class] if per_class else files
        paths += files
        labels += [label] * len(files)
    return paths, np.array(labels, dtype=np.int64)


def decode_all(paths: list[Path], workers: int | None = None) -> np.ndarray:
    """Decode image files into one (N, 32, 32, 3) uint8 array, in the given order."""
    x = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)

    def work(start: int) -> None:
        for i, path in enumerate(paths[start : start + _CHUNK], start):
            x[i] = read_image(path)

    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # list() re-raises the first PipelineError from a worker here.
        list(pool.map(work, range(0, len(paths), _CHUNK)))
    return x


def load_split(root: Path, split: str, per_class: int | None = None) -> Dataset:
    paths, y = list_split(root / split, per_class)
    return Dataset(decode_all(paths), y, CIFAR10_CLASSES)


def load_image_folder(
    root: Path, train_per_class: int | None = None, test_per_class: int | None = None
) -> tuple[Dataset, Dataset]:
    """(train, test) from a folder holding train/<class>/* and test/<class>/*."""
    # Check both splits' folders before decoding anything: a bad layout fails in a second.
    for split in SPLITS:
        list_split(root / split, 1)
    return load_split(root, "train", train_per_class), load_split(root, "test", test_per_class)
