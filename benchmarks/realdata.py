"""A few real CIFAR-10 images from the local JPEG archive, for benchmarks and slow tests.

`../shared/data/cifar10-jpeg.tar.gz` (image-folder layout) exists on this project's machines only; the
callers skip, naming it, where it does not.
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

from cifar10.classes import CIFAR10_CLASSES
from cifar10.data.dataset import Dataset

ARCHIVE = Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg.tar.gz"


def read_real(train_per_class: int, test_per_class: int, archive: Path = ARCHIVE) -> tuple[Dataset, Dataset] | None:
    """The first N training and M test images of each class (file order), or None without the archive."""
    if not archive.exists():
        return None
    from PIL import Image

    want = {"train": train_per_class, "test": test_per_class}
    found: dict[str, dict[int, list]] = {split: {c: [] for c in range(len(CIFAR10_CLASSES))} for split in want}
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 4 or parts[1] not in want or parts[2] not in CIFAR10_CLASSES:
                continue
            bucket = found[parts[1]][CIFAR10_CLASSES.index(parts[2])]
            if len(bucket) < want[parts[1]]:
                img = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                bucket.append(np.asarray(img, dtype=np.uint8))
    out = []
    for split in ("train", "test"):
        x = np.stack([img for label in sorted(found[split]) for img in found[split][label]])
        y = np.concatenate([np.full(len(found[split][c]), c, dtype=np.int64) for c in sorted(found[split])])
        out.append(Dataset(x, y))
    return out[0], out[1]
