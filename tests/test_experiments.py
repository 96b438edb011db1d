"""DVC experiments as users run them: queued runs in parallel workers, all logging to the project's store."""
from __future__ import annotations

import json
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run


def _queue_done(repo) -> bool:
    status = run(["dvc", "queue", "status"], repo).stdout
    return not any(state in status for state in ("Queued", "Running"))


@pytest.mark.slow
def test_two_queue_workers_log_every_stage_to_the_project_database(pipeline_repo, monkeypatch):
    repo = pipeline_repo
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the default store: mlflow.db at the repository root
    names = ("q-lr-high", "q-lr-low")
    for name, lr in zip(names, (0.01, 0.002)):
        run(["dvc", "exp", "run", "--queue", "--name", name,
             "-S", f"train.optimizer.learning_rate={lr}", "train-baseline"], repo)
    run(["dvc", "queue", "start", "-j", "2"], repo)
    try:
        deadline = time.monotonic() + 600
        while not _queue_done(repo):
            assert time.monotonic() < deadline, run(["dvc", "queue", "status"], repo).stdout
            time.sleep(3)
    finally:
        run(["dvc", "queue", "stop"], repo)
    status = run(["dvc", "queue", "status"], repo).stdout
    logs = {name: run(["dvc", "queue", "logs", name], repo).stdout for name in names}
    assert status.count("Success") == 2, status + "\n".join(v[-3000:] for v in logs.values())
    assert not any("database is locked" in text for text in logs.values())

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    assert all(name in json.dumps(shown) for name in names)

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cifar10-imbalance")
    runs = client.search_runs([exp.experiment_id], "tags.stage != ''")
    seen = {(r.data.tags.get("dvc_exp_name"), r.data.tags["stage"]) for r in runs}
    expected = {(n, s) for n in names for s in ("download", "imbalance-subsample", "train-baseline")}
    assert seen == expected and len(runs) == len(expected)
    assert all(r.info.status == "FINISHED" for r in runs)
    parents = {client.get_run(r.data.tags["mlflow.parentRunId"]).info.run_name for r in runs}
    assert parents == set(names)
    # Artifacts land beside the database, not in the deleted temporary workspaces.
    assert exp.artifact_location.startswith((repo / "mlruns").resolve().as_uri())
    trained = [r for r in runs if r.data.tags["stage"] == "train-baseline"]
    assert all(client.list_artifacts(r.info.run_id) for r in trained)
