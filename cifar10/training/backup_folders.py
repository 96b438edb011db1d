"""Where a training's resume backup lives, what it is keyed to, and when it is deleted.

The folder is keyed to everything that shapes training (params and the training data's bytes), so
a run with other params or data never resumes from it. It lives at the project root, outside every
DVC output, so a DVC experiment killed in its temporary workspace resumes when it is run again.

A finished training deletes its backup, except when KEEP_FINISHED_ENV is set: the studies runner sets
it, because its experiments rerun every stage (`dvc exp run --force`) when resumed, and a finished
stage then restores its model from the backup instead of training again; the runner deletes the
experiment's backups once the whole experiment has finished. Light to import (no TensorFlow).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from cifar10.checksums import file_checksum
from cifar10.paths import CNN_TRAIN_SET, project_root

KEEP_FINISHED_ENV = "PIPELINE_KEEP_TRAIN_BACKUP"


def backup_root() -> Path:
    return project_root() / ".train_backup"


def _experiment_slug(experiment: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", experiment) or "workspace"


def _folders(root: Path, variants: tuple[str, ...], experiment: str) -> list[Path]:
    pattern = re.compile(rf"({'|'.join(map(re.escape, variants))})-{re.escape(_experiment_slug(experiment))}"
                         r"-[0-9a-f]{16}")
    return sorted(p for p in root.glob("*") if pattern.fullmatch(p.name))


def backup_folder(name: str, key: object, data_path: Path, root: Path | None = None) -> Path:
    """The resume folder of `name` (in a DVC experiment: of that experiment) for this training key
    (JSON-able params) and data file; its folders for other keys (left by runs with other params or
    data) are deleted. Parallel queue workers run different experiments, so they never share one."""
    root = root or backup_root()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    digest.update(file_checksum(data_path, "sha256").encode())
    experiment = os.environ.get("DVC_EXP_NAME", "")
    folder = root / f"{name}-{_experiment_slug(experiment)}-{digest.hexdigest()[:16]}"
    for stale in _folders(root, (name,), experiment):
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return folder


def experiment_backups(experiment: str, root: Path | None = None) -> list[Path]:
    """The backup folders of the DVC experiment named `experiment` (of every variant and key)."""
    return _folders(root or backup_root(), tuple(CNN_TRAIN_SET), experiment)  # the trainings that back up


def delete_backup(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def finish_backup(folder: Path | None) -> None:
    """Called once a training's outputs are written: deletes its backup unless KEEP_FINISHED_ENV is set."""
    if not os.environ.get(KEEP_FINISHED_ENV):
        delete_backup(folder)
