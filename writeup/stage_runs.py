"""Reading a reproduced project's own records back from MLflow: each stage's latest `dvc repro` run.

RESULTS.md and the whole-pipeline benchmark are written from these, so every figure they print is
one a stage logged.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mlflow is imported where it is used: importing it costs seconds
    import mlflow

STAGES = ("download", "imbalance-subsample", "augment", "train-baseline", "train-augmented", "fetch-weights",
          "transfer", "evaluate@baseline", "evaluate@augmented", "evaluate@frozen", "evaluate@transfer", "compare")


def latest_stage_runs(project: Path) -> dict[str, "mlflow.entities.Run"]:
    """Each stage's latest finished `dvc repro` run in the project's MLflow store.

    Runs of DVC experiments (tagged dvc_exp_name, e.g. the quick demo or a sweep) are skipped: they
    ran other params than the workspace's.
    """
    from mlflow.tracking import MlflowClient

    from cifar10.schema import load_params

    cwd = Path.cwd()
    os.chdir(project)
    try:
        from cifar10.tracking.store import tracking_uri

        client = MlflowClient(tracking_uri())
        experiment = client.get_experiment_by_name(load_params().tracking.experiment)
    finally:
        os.chdir(cwd)
    out = {}
    for stage in STAGES if experiment else ():
        token = None
        while stage not in out:
            page = client.search_runs([experiment.experiment_id],
                                      f"tags.stage = '{stage}' and attributes.status = 'FINISHED'",
                                      order_by=["attributes.start_time DESC"], max_results=100, page_token=token)
            found = [r for r in page if "dvc_exp_name" not in r.data.tags]
            if found:
                out[stage] = found[0]
            if not page.token:
                break
            token = page.token
    return out


def duration(seconds: float) -> str:
    """Seconds as "12.3 s" below a minute, else "4.5 min"."""
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def precision_used(params: dict[str, str]) -> str:
    """The precision a stage's run computed in: `precision` (and the transfer stage's `precision_training`)."""
    used, training = params.get("precision"), params.get("precision_training")
    if used and training and training != used:
        return f"{used} / {training}"
    return used or ""
