"""Links between runs: the training run that produced a model file, found by the file's content hash.

A training stage tags its run with the SHA-256 of the model it saved; the evaluate stage hashes the
model it scores and finds that run, whether the stage ran in this `dvc repro`, an earlier one (a
cached stage), or a DVC experiment.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cifar10.checksums import file_checksum

MODEL_DIGEST_TAG = "model_sha256"


def model_digest(path: str | Path) -> str:
    return file_checksum(Path(path), "sha256").split(":", 1)[1]


def training_run_of(client: Any, experiment_id: str, model_file: str | Path):
    """The latest FINISHED run that saved exactly these bytes, or None."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.{MODEL_DIGEST_TAG} = '{model_digest(model_file)}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None
