"""STUDIES.json: the finished experiments' MLflow records, committed beside the page they make.

An MLflow store lives on one machine; the experiments take hours of CPU. The runner writes each
finished experiment's trained models (metrics, params, tags, per-epoch curves, exactly as MLflow
holds them) into this file, so the page can be written again on any machine, also one whose store
never saw those runs, and the runner does not repeat an experiment the file already holds.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from cifar10.errors import PipelineError
from writeup.studies.records import Trained

RECORD_FILE = Path("STUDIES.json")
FORMAT = 1
Records = dict[str, dict[str, Trained]]  # experiment -> model -> its finished, evaluated training run


def load(path: Path = RECORD_FILE) -> Records:
    """The records a file holds; none when it does not exist. A file that cannot be read raises one line."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        return {name: {model: Trained(**run) for model, run in models.items()}
                for name, models in data["experiments"].items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PipelineError(f"{path}: not a studies record file ({exc}); restore it from git "
                          "(`git checkout -- STUDIES.json`) or delete it to start from the MLflow store alone") from None


def _portable(run: Trained) -> dict:
    """A run without MLflow's own tags (user, source file, logged-model history): they say nothing of the
    experiment and would make the file depend on who ran it where."""
    out = asdict(run)
    out["tags"] = {k: v for k, v in sorted(run.tags.items()) if not k.startswith("mlflow.")}
    out["params"] = dict(sorted(run.params.items()))
    out["metrics"] = dict(sorted(run.metrics.items()))
    out["inputs"] = dict(sorted(run.inputs.items()))
    if run.confusion is None:  # most runs: the file stays as it was before runs could keep one
        del out["confusion"]
    return out


def save(records: Records, path: Path = RECORD_FILE) -> None:
    """Write the file whole (through a temporary file, so a stop midway leaves the old one)."""
    data = {"format": FORMAT, "experiments": {name: {model: _portable(run) for model, run in sorted(models.items())}
                                              for name, models in sorted(records.items()) if models}}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def merged(saved: Records, live: Records) -> Records:
    """The file's records updated with the store's: a model the store holds a run of takes that run (the
    store's is the latest); experiments and models only the file holds stay as they are."""
    out = {name: dict(models) for name, models in saved.items()}
    for name, models in live.items():
        out.setdefault(name, {}).update(models)
    return {name: models for name, models in out.items() if models}
