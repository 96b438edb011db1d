"""The tracking layer against a real SQLite MLflow store: names, tags, grouping, failures."""
from __future__ import annotations

import re
import socket
import time

import pytest
from mlflow.tracking import MlflowClient

from cifar10.errors import PipelineError
from cifar10.schema import Params, flatten_dict
from cifar10.paths import project_root
from cifar10.tracking.pipeline_state import state_tags
from cifar10.tracking.runs import stage_run
from cifar10.tracking.store import tracking_uri


def _runs(uri: str, experiment: str = "cifar10-imbalance"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}


def test_project_root_sees_through_dvc_temporary_workspaces(tmp_path):
    workspace = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "run" / "abc123"
    workspace.mkdir(parents=True)
    assert project_root(workspace) == (tmp_path / "repo").resolve()
    assert project_root(tmp_path / "repo") == (tmp_path / "repo").resolve()


def test_default_store_is_the_sqlite_file_at_the_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workspace = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "run" / "x"
    workspace.mkdir(parents=True)
    monkeypatch.chdir(workspace)
    uri = tracking_uri()
    assert uri.startswith(f"sqlite:///{(tmp_path / 'repo').resolve()}/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking_uri() == "http://tracking.example:5000"


def test_stage_runs_are_named_tagged_grouped_and_log_their_sections(mlflow_uri, monkeypatch):
    monkeypatch.setenv("PIPELINE_RUN_GROUP", "group-1")
    monkeypatch.setenv("DVC_EXP_NAME", "lucid-lamb")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    params = Params()
    with stage_run("download", params, ["download", "tracking"]) as tracker:
        tracker.log_metrics({"count_train_cat": 5}, step=None)
        tracker.log_metrics({"loss": 1.5}, step=1)
        tracker.log_metrics({"loss": 1.0}, step=2)
    with stage_run("imbalance-subsample", params, ["imbalance"]) as tracker:
        # The group ended FINISHED with the download stage and runs again while this stage does.
        parent_now = MlflowClient(mlflow_uri).get_run(tracker.client.get_run(tracker.run_id).data.tags["mlflow.parentRunId"])
        assert parent_now.info.status == "RUNNING"
    runs = _runs(mlflow_uri)
    download, imbalance = runs["download"], runs["imbalance-subsample"]
    assert download.info.status == "FINISHED" and runs["lucid-lamb"].info.status == "FINISHED"
    assert download.data.tags["stage"] == "download"
    assert download.data.tags["dvc_exp_name"] == "lucid-lamb"
    assert download.data.tags["dvc_exp_baseline"] == "abc123"
    assert len(download.data.tags["git_commit"]) in (40, 7) or download.data.tags["git_commit"] == "unknown"
    # The machine kind, which decides speed and float results: model name, family/model, bf16/AMX units.
    assert re.fullmatch(r".+ \(family \w+ model \w+; (no )?avx512_bf16, (no )?amx\)", download.data.tags["cpu"])
    assert download.data.params["download.checksum"] == params.download.checksum
    assert download.data.params["tracking.experiment"] == "cifar10-imbalance"
    assert imbalance.data.params["imbalance.classes"] == '["cat", "dog"]'
    history = MlflowClient(mlflow_uri).get_metric_history(download.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.5), (2, 1.0)]
    # One parent run groups the pipeline execution, named after the DVC experiment, and carries the
    # whole params.yaml under the keys `dvc exp run -S` takes.
    parent = download.data.tags["mlflow.parentRunId"]
    assert imbalance.data.tags["mlflow.parentRunId"] == parent
    assert runs["lucid-lamb"].info.run_id == parent
    state = runs["lucid-lamb"].data.params
    assert set(state) == set(flatten_dict(params.model_dump())) and len(state) > 70
    assert state["train.optimizer.name"] == "adam" and state["train.model.filters"] == "[32, 64, 128]"


def test_the_parent_tags_name_the_precision_each_model_trained_under():
    reports = {
        "baseline": {"training_params": {"precision": "mixed_bfloat16", "train.precision": "auto"}},
        "augmented": {"training_params": {"train.precision": "float32"}},  # a run from before `precision`
        "transfer": {"training_params": {}},  # no training run in this store
    }
    assert state_tags(reports, "efficientnet_lite0") == {
        "backbone": "efficientnet_lite0", "precision.baseline": "mixed_bfloat16", "precision.augmented": "float32"}
    reports["transfer"]["training_params"]["transfer.precision"] = "float32"
    assert state_tags(reports, None)["precision.transfer"] == "float32"


def test_a_failing_stage_leaves_its_run_failed(mlflow_uri, monkeypatch):
    monkeypatch.setenv("PIPELINE_RUN_GROUP", "group-2")
    with pytest.raises(RuntimeError):
        with stage_run("augment", Params(), ["augment"]):
            raise RuntimeError("boom")
    runs = _runs(mlflow_uri)
    assert runs["augment"].info.status == "FAILED"
    parent = runs["augment"].data.tags["mlflow.parentRunId"]
    assert MlflowClient(mlflow_uri).get_run(parent).info.status == "FAILED"


def test_unreachable_server_fails_at_start_naming_the_uri(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with pytest.raises(PipelineError, match=f"MLflow tracking server {uri} is not reachable"):
        with stage_run("train-baseline", Params(), ["train"]):
            pytest.fail("the stage body must not run")
    assert time.monotonic() - started < 30


def test_logging_failures_after_start_are_reported_not_raised(mlflow_uri, capsys, tmp_path):
    with stage_run("evaluate", Params(), ["evaluate"]) as tracker:
        tracker.log_artifact(tmp_path / "missing.png")
        tracker.log_metrics({"test_accuracy": 0.5})
    metrics = _runs(mlflow_uri)["evaluate"].data.metrics
    assert metrics["peak_rss_mb"] > 10 and metrics["stage_wall_time_s"] >= 0
    assert _runs(mlflow_uri)["evaluate"].info.status == "FINISHED"
    assert _runs(mlflow_uri)["evaluate"].data.metrics["test_accuracy"] == 0.5
    err = capsys.readouterr().err
    assert "outputs written, but MLflow" in err and "missing.png" in err
