"""Where a training's resume backup lives, what it is keyed to, and when it is deleted.

The folder is keyed to everything that shapes training (params and the training data's bytes), so
a run with other params or data never resumes from it. It lives at the project root, outside every
DVC output, so a DVC experiment killed in its temporary workspace resumes when it is run again.

A finished training deletes its backup, except when KEEP_FINISHED_ENV is set: the studies runner sets
it, because its experiments rerun every stage (`dvc exp run --force`) when resumed, and a finished
stage then restores its model from the backup instead of training again; the runner deletes the
experiment's backups once the whole experiment, and any that adopts its training (below), has finished.

A setting that acts only once training has ended (AFTER_TRAINING: logit adjustment) is left out of the
key, so two experiments that differ only there train the same model: an experiment may adopt the
other's backup (SHARED_TRAINING_ENV names that experiment) and restore its training instead of
running it again. Light to import (no TensorFlow).
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
SHARED_TRAINING_ENV = "PIPELINE_TRAINING_FROM"  # another DVC experiment whose training of the same key to adopt
AFTER_TRAINING = ("logit_adjustment",)  # `train` keys that act on the trained model, not on its training
STATE_FILE = "state.npz"  # the training state in a backup folder (cifar10.training.backup)
_ADOPTED_FILE = "adopted_from"  # the experiment a folder's state was copied from
ADOPTED_TAG = "training_adopted_from"  # on the MLflow run of a training that adopted one


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

    def folder_of(exp: str) -> Path:
        return root / f"{name}-{_experiment_slug(exp)}-{digest.hexdigest()[:16]}"

    folder = folder_of(experiment)
    for stale in _folders(root, (name,), experiment):
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    source = os.environ.get(SHARED_TRAINING_ENV, "")
    shared = folder_of(source)
    if source and source != experiment and not (folder / STATE_FILE).exists() and (shared / STATE_FILE).exists():
        # A copy, not the folder itself: the source experiment may still resume from its own. The state
        # file is replaced atomically, so the copy is one whole epoch's state.
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / STATE_FILE, folder / f".{STATE_FILE}.adopt")
        (folder / _ADOPTED_FILE).write_text(source)
        os.replace(folder / f".{STATE_FILE}.adopt", folder / STATE_FILE)
    return folder


def adopted_from(folder: Path | None) -> str | None:
    """The experiment whose training state this backup folder adopted, or None."""
    try:
        return (folder / _ADOPTED_FILE).read_text() if folder is not None else None
    except OSError:
        return None


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
