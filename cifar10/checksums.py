"""File checksums in the 'algo:hex' form that params, manifests and MLflow datasets share."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_checksum(path: Path, algo: str = "sha256") -> str:
    """The checksum of a file on disk as 'algo:hex'."""
    with open(path, "rb") as fh:
        return f"{algo}:{hashlib.file_digest(fh, algo).hexdigest()}"
