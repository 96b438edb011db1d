"""An experiment's MLflow records: its finished training runs, their curves and test figures.

Runs of a DVC experiment carry its name (tag `dvc_exp_name`); the evaluate stage wrote each model's
test figures onto its training run, so a training run holds everything a study table shows. Where it
also wrote the test set's confusion matrix (artifact CONFUSION_ARTIFACT), the record keeps it: macro F1
gets a test-set interval from it (cifar10.reporting.intervals), which per-class counts alone cannot give.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifar10.errors import PipelineError

MODEL_STAGES = {"baseline": "train-baseline", "augmented": "train-augmented"}
# On the training run, beside test_report.json: {"classes": [names], "matrix": [[counts]]}, rows the true
# class, columns the predicted one, both in `classes` order.
CONFUSION_ARTIFACT = "confusion_matrix.json"


@dataclass
class Trained:
    """One trained CNN of an experiment, as MLflow recorded it."""

    experiment: str
    model: str
    run_id: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    curves: dict[str, list[float]]  # val_accuracy, val_loss, accuracy, loss, val_balanced_accuracy by epoch (1..n)
    # Dataset name -> MD5 (as dvc.lock records it): two runs that diverge trained on the same bytes or not.
    inputs: dict[str, str] = field(default_factory=dict)
    confusion: dict | None = None  # the test set's confusion matrix, as CONFUSION_ARTIFACT holds it, if logged

    @property
    def seed(self) -> str:
        return self.params.get("base.seed", "?")

    @property
    def precision(self) -> str:
        """The policy it trained in (`precision`, logged since `auto` exists), else the one it asked for."""
        return self.params.get("precision") or self.params.get("train.precision", "?")

    @property
    def restored(self) -> bool:
        """Whether some of its epochs were trained by an earlier sitting and restored from a backup."""
        return self.params.get("resumed_from_epoch", "0") != "0"

    @property
    def commit(self) -> str:
        return self.tags.get("git_commit", "unknown")[:10]

    @property
    def cpu(self) -> str:
        return self.tags.get("cpu", "unknown CPU")

    @property
    def training_data(self) -> str:
        """The first 8 hex digits of the MD5 of the training set it read, or "–" if it was not recorded."""
        return next((d[:8] for name, d in sorted(self.inputs.items()) if name.endswith("/train")), "–")


def finished(client: Any, experiment_id: str, name: str, stage: str) -> bool:
    """Whether experiment `name` got as far as a FINISHED run of `stage`."""
    return bool(client.search_runs([experiment_id], f"tags.dvc_exp_name = '{name}' and tags.stage = '{stage}' "
                                                     "and attributes.status = 'FINISHED'", max_results=1))


def close_stale_runs(client: Any, experiment_id: str, name: str) -> int:
    """Mark KILLED the runs of experiment `name` still RUNNING, and return how many there were. The runner
    calls it before it runs anything, so such a run was left by a process that died without closing it
    (SIGKILL, a machine that went down): the UI should not show it as running."""
    runs = client.search_runs([experiment_id], f"tags.dvc_exp_name = '{name}' and attributes.status = 'RUNNING'")
    for run in runs:
        client.set_terminated(run.info.run_id, "KILLED")
    return len(runs)


def retire_superseded(client: Any, experiment_id: str, name: str) -> int:
    """Take the `studies` tag off the runs of experiment `name` that a later FINISHED run of the same stage
    (or group run) replaced, and return how many: a stopped sitting's runs, a finished training rerun
    when the experiment resumed. Each keeps its study under `studies_superseded` and names its successor
    in `superseded_by`, so the UI filter on `tags.studies` shows one run per stage and experiment: the
    one the page reports. Call it once the experiment has finished."""
    runs = client.search_runs([experiment_id], f"tags.dvc_exp_name = '{name}' and tags.studies IS NOT NULL",
                              order_by=["attributes.start_time DESC"])
    latest: dict[str, Any] = {}
    for run in runs:
        key = run.data.tags.get("stage", "group")
        if run.info.status == "FINISHED" and key not in latest:
            latest[key] = run
    retired = 0
    for run in runs:
        successor = latest.get(run.data.tags.get("stage", "group"))
        if successor is not None and run.info.start_time < successor.info.start_time:
            client.set_tag(run.info.run_id, "studies_superseded", run.data.tags["studies"])
            client.set_tag(run.info.run_id, "superseded_by", successor.info.run_id)
            client.delete_tag(run.info.run_id, "studies")
            retired += 1
    return retired


def trained_models(client: Any, experiment_id: str, name: str, scored: bool = True) -> dict[str, Trained]:
    """model -> its latest finished training run in experiment `name` that has test figures (`scored`), or
    any (an experiment that reproduces training stages only)."""
    out = {}
    for model, stage in MODEL_STAGES.items():
        runs = client.search_runs([experiment_id], f"tags.dvc_exp_name = '{name}' and tags.stage = '{stage}' "
                                                    "and attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time DESC"])
        run = next((r for r in runs if not scored or "test_accuracy" in r.data.metrics), None)
        if run is None:
            continue
        curves = {key: [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]
                  for key in ("val_accuracy", "val_loss", "accuracy", "loss", "val_balanced_accuracy")}
        out[model] = Trained(name, model, run.info.run_id, dict(run.data.metrics), dict(run.data.params),
                             dict(run.data.tags), curves,
                             {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs},
                             confusion_of(client, run.info.run_id))
    return out


def confusion_of(client: Any, run_id: str) -> dict | None:
    """The run's CONFUSION_ARTIFACT, checked (square, one row per class, whole counts), or None if it has none."""
    if CONFUSION_ARTIFACT not in {a.path for a in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data = json.loads(Path(client.download_artifacts(run_id, CONFUSION_ARTIFACT, tmp)).read_text())
    try:
        classes, matrix = [str(c) for c in data["classes"]], [[int(v) for v in row] for row in data["matrix"]]
        if len(matrix) != len(classes) or any(len(row) != len(classes) for row in matrix):
            raise ValueError(f"{len(classes)} classes, matrix rows of lengths {[len(r) for r in matrix]}")
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"run {run_id}: {CONFUSION_ARTIFACT} is not a confusion matrix ({exc}); expected "
                            '{"classes": [names], "matrix": [[counts]]}, one row and column per class') from None
    return {"classes": classes, "matrix": matrix}
