"""Stage outputs: written atomically, and removed when a stage fails, so nothing half-made looks like a result."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    The temporary name keeps the suffix, since some writers (Keras' `.keras`, matplotlib) choose
    the format from it. Works for files and for folders.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    tmp = tmp_dir / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def remove_output(path: str | Path) -> None:
    """Delete a stale output so a failed run leaves nothing that looks like a result."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def no_partial_outputs(*paths: str | Path) -> Iterator[None]:
    """Remove every one of `paths` if the block fails (bad input, a bug, Ctrl-C), then re-raise.

    A stage wraps its whole body in this: the outputs of an earlier run must not pass for the
    results of the params that just failed.
    """
    try:
        yield
    except BaseException:
        for path in paths:
            remove_output(path)
        raise
