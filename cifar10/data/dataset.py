"""The dataset contract between stages: a few large .npz files, written atomically and byte-reproducibly.

Each file holds `x` (N, 32, 32, 3) uint8, `y` (N,) int64 and `classes` (10,) str in CIFAR-10 label
order; a stage may add arrays of its own (the augment stage adds `synthetic` and `source`). Nothing is
pickled.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cifar10 import paths
from cifar10.classes import CIFAR10_CLASSES
from cifar10.errors import PipelineError
from cifar10.outputs import atomic_output

# Re-exported: the dataset files are addressed as dataset.RAW_TRAIN etc. throughout.
RAW_TRAIN, RAW_TEST = paths.RAW_TRAIN, paths.RAW_TEST
IMBALANCED_TRAIN, AUGMENTED_TRAIN = paths.IMBALANCED_TRAIN, paths.AUGMENTED_TRAIN
# A fixed member timestamp: np.savez stamps the current time, so the same arrays saved twice
# would differ in bytes, and DVC would rerun every stage downstream of a rerun that changed nothing.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...] = CIFAR10_CLASSES
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        """Images per class, by class name, in label order."""
        bins = np.bincount(self.y, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, bins)}

    def take(self, rows: np.ndarray) -> "Dataset":
        """The given rows, extra arrays included."""
        return Dataset(self.x[rows], self.y[rows], self.classes, {k: v[rows] for k, v in self.extra.items()})


def validate(ds: Dataset, where: str) -> Dataset:
    """Check the contract; raise PipelineError naming the file and the broken array."""
    if ds.x.dtype != np.uint8 or ds.x.ndim != 4 or ds.x.shape[1:] != (32, 32, 3):
        raise PipelineError(f"{where}: x must be uint8 (N, 32, 32, 3), got {ds.x.dtype} {ds.x.shape}")
    if ds.y.dtype != np.int64 or ds.y.shape != (len(ds.x),):
        raise PipelineError(f"{where}: y must be int64 ({len(ds.x)},), got {ds.y.dtype} {ds.y.shape}")
    if tuple(ds.classes) != CIFAR10_CLASSES:
        raise PipelineError(f"{where}: classes must be the CIFAR-10 names in label order")
    if len(ds.y) and (ds.y.min() < 0 or ds.y.max() >= len(CIFAR10_CLASSES)):
        raise PipelineError(f"{where}: labels outside 0..{len(CIFAR10_CLASSES) - 1}")
    for name, arr in ds.extra.items():
        if len(arr) != len(ds.y):
            raise PipelineError(f"{where}: {name} has {len(arr)} rows, x has {len(ds.y)}")
    return ds


def load(path: str | Path) -> Dataset:
    """Load and validate a dataset file; a missing file names the stage that writes it."""
    path = Path(path)
    if not path.exists():
        raise paths.missing(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise PipelineError(f"{path}: not a readable .npz file ({exc})") from None
    missing = {"x", "y", "classes"} - set(arrays)
    if missing:
        raise PipelineError(f"{path}: missing arrays {sorted(missing)}")
    x, y, classes = arrays.pop("x"), arrays.pop("y"), arrays.pop("classes")
    return validate(Dataset(x, y, tuple(str(c) for c in classes), arrays), str(path))


def save(path: str | Path, ds: Dataset) -> None:
    """Write a dataset atomically (readers see the old file or the whole new one) and reproducibly
    (the same arrays give the same bytes, as np.savez would except for its timestamps)."""
    validate(ds, str(path))
    arrays = {"x": ds.x, "y": ds.y, "classes": np.array(ds.classes, dtype=str), **ds.extra}
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
