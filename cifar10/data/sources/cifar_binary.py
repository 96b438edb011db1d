"""The official CIFAR-10 binary release, parsed from its fixed-size records (never a pickle).

Each of cifar-10-batches-bin/data_batch_1..5.bin and test_batch.bin holds records of one label
byte followed by 3072 pixel bytes: the 32x32 red plane, then green, then blue, row-major.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cifar10.classes import CIFAR10_CLASSES
from cifar10.data.dataset import Dataset
from cifar10.errors import PipelineError

FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
RECORD = 1 + 3 * 32 * 32


def find_root(base: Path) -> Path | None:
    """The cifar-10-batches-bin folder at `base`, inside it, or one level further down."""
    for candidate in (base, base / FOLDER, *(p / FOLDER for p in sorted(base.iterdir()) if p.is_dir())):
        if candidate.name == FOLDER and candidate.is_dir():
            return candidate
    return None


def parse_records(raw: bytes | np.ndarray, where: str) -> Dataset:
    """Turn the bytes of one batch file into a Dataset (vectorised; no per-image loop)."""
    buf = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray)) else raw
    if buf.size == 0 or buf.size % RECORD:
        raise PipelineError(
            f"{where}: {buf.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
            "(truncated or not a CIFAR-10 binary batch)"
        )
    records = buf.reshape(-1, RECORD)
    y = records[:, 0].astype(np.int64)
    if y.max() >= len(CIFAR10_CLASSES):
        raise PipelineError(f"{where}: label {int(y.max())} outside 0..{len(CIFAR10_CLASSES) - 1}")
    x = np.ascontiguousarray(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return Dataset(x, y, CIFAR10_CLASSES)


def read_split(root: Path, files: tuple[str, ...]) -> Dataset:
    """Read and concatenate the batch files of one split, in the release's order."""
    missing = [name for name in files if not (root / name).is_file()]
    if missing:
        raise PipelineError(f"{root}: missing batch files {', '.join(missing)}")
    parts = [parse_records(np.fromfile(root / name, dtype=np.uint8), str(root / name)) for name in files]
    return Dataset(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]), CIFAR10_CLASSES)


def load_binary(root: Path) -> tuple[Dataset, Dataset]:
    """(train, test) from a cifar-10-batches-bin folder."""
    return read_split(root, TRAIN_FILES), read_split(root, TEST_FILES)
