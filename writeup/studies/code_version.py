"""Which code a recorded training ran: the train stage's import closure at the run's commit, as one digest.

Two runs recorded at different commits ran the same training code when every file `python -m stages.train`
imports was the same at both commits: a commit that changed only pages, tests or other stages changes
nothing the runs compare. This is DVC's own notion of a stage's code (its code deps), read from git, so a
pair across such commits is like for like.
"""
from __future__ import annotations

import functools
import hashlib
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from scripts.code_deps import closure

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def train_code(commit: str, root: Path = ROOT) -> str:
    """A short digest of the train stage's code at `commit`; the commit itself when git cannot say (a run
    restored across commits records 'a + b', an unknown or unreachable commit)."""
    if not commit or " " in commit or commit == "unknown":
        return commit
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", commit, "cifar10", "stages"],
                             capture_output=True)
    if archive.returncode != 0:
        return commit
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        files = sorted(closure("stages.train", Path(tmp)))
        digest = hashlib.sha256()
        for path in files:
            digest.update(str(path).encode() + b"\0" + (Path(tmp) / path).read_bytes() + b"\0")
    return digest.hexdigest()[:10]


def same_training_code(a: str, b: str) -> bool:
    """Whether runs recorded at commits `a` and `b` ran the same train-stage code."""
    return a == b or train_code(a) == train_code(b)
