"""Links between runs: the training run that produced a model file, found by the file's content hash.

A training stage tags its run with the SHA-256 of the model it saved; the evaluate stage hashes the
model it scores and finds that run, whether the stage ran in this `dvc repro`, an earlier one (a
cached stage), or a DVC experiment. The transfer stage saves two models, the frozen one (after its
head phase) and the fine-tuned one: the frozen model's digest has a tag of its own, and its test
figures go onto that run under names of their own (`frozen_test_accuracy`, ...), beside the
fine-tuned model's `test_accuracy`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cifar10.checksums import file_checksum

MODEL_DIGEST_TAG = "model_sha256"
# Models that share their training run with another model: the prefix of their tag and test figures there.
_SECOND_MODEL = {"frozen": "frozen_"}


def model_digest(path: str | Path) -> str:
    return file_checksum(Path(path), "sha256").split(":", 1)[1]


def run_prefix(model: str) -> str:
    """What `model`'s names on its training run start with: '' or, for the frozen model, 'frozen_'."""
    return _SECOND_MODEL.get(model, "")


def digest_tag(model: str) -> str:
    """The tag of the training run that holds `model`'s digest: `model_sha256`, `frozen_model_sha256`."""
    return run_prefix(model) + MODEL_DIGEST_TAG


def training_run_of(client: Any, experiment_id: str, model_file: str | Path, model: str = ""):
    """The latest FINISHED run that saved exactly these bytes as `model` (digest_tag), or None."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.{digest_tag(model)} = '{model_digest(model_file)}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None
