"""train.distribution: two real MultiWorkerMirroredStrategy workers on 127.0.0.1, and MirroredStrategy here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from cifar10.data import dataset
from cifar10.data.splits import split_rows
from cifar10.errors import PipelineError
from cifar10.schema import load_params
from cifar10.training.devices import local_gpus
from cifar10.training.distribution import rows_digest, task_role
from stages.train import main
from tests.conftest import REPO, write_params
from tests.servers import free_port

SMALL_MODEL = {"filters": [4, 8], "conv_dropout": [0.1, 0.2], "dense_units": [8]}


def _project(root: Path, tiny_params: dict, tiny_train, distribution: str) -> None:
    params = dict(tiny_params)
    params["train"].update(distribution=distribution, epochs=1, batch_size=16)
    params["train"]["model"].update(SMALL_MODEL)
    write_params(root, params)
    dataset.save(root / dataset.IMBALANCED_TRAIN, tiny_train)


def _stage_runs(uri: str, stage: str):
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.stage = '{stage}'")


def test_chief_is_task_chief_or_else_worker_0():
    two = {"worker": ["a:1", "b:2"]}
    assert task_role(json.dumps({"cluster": two, "task": {"type": "worker", "index": 0}}))[2]
    assert not task_role(json.dumps({"cluster": two, "task": {"type": "worker", "index": 1}}))[2]
    with_chief = {"chief": ["c:3"], **two}
    assert task_role(json.dumps({"cluster": with_chief, "task": {"type": "chief", "index": 0}}))[2]
    assert not task_role(json.dumps({"cluster": with_chief, "task": {"type": "worker", "index": 0}}))[2]
    with pytest.raises(PipelineError, match="TF_CONFIG environment variable"):
        task_role(None)
    with pytest.raises(PipelineError, match="not in the cluster"):
        task_role(json.dumps({"cluster": two, "task": {"type": "worker", "index": 2}}))


@pytest.mark.slow
def test_two_workers_train_one_model_one_run_on_disjoint_shards(workdir, tiny_params, tiny_train, mlflow_uri,
                                                                 tmp_path):
    _project(workdir, tiny_params, tiny_train, "multi_worker")
    shards, scratch = tmp_path / "shards", tmp_path / "worker-tmp"
    scratch.mkdir()
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TRAIN_SHARD_REPORT_DIR": str(shards), "TMPDIR": str(scratch), "CUDA_VISIBLE_DEVICES": "-1",
               "PYTHONPATH": str(REPO)}
        procs.append(subprocess.Popen([sys.executable, "-m", "stages.train", "--variant", "baseline"], cwd=workdir,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, f"worker exited {p.returncode}:\n{out[-2000:]}\n{err[:3000]}\n...\n{err[-1000:]}"

    # One model, written by the chief; the other worker's save went to a temp folder that is gone.
    assert sorted(p.name for p in (workdir / "models").iterdir()) == ["baseline.keras"]
    assert keras.models.load_model(workdir / "models" / "baseline.keras").predict(tiny_train.x[:2], verbose=0).shape == (2, 10)
    assert list(scratch.iterdir()) == []
    assert (workdir / "plots" / "baseline" / "history.csv").is_file()

    runs = _stage_runs(mlflow_uri, "train-baseline")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["train.distribution"] == "multi_worker"
    assert run.data.params["shard_workers"] == "2" and run.data.params["replicas"] == "2"
    assert "loss" in run.data.metrics and "model_sha256" in run.data.tags

    # Each worker read its own shard; together the shards are exactly the training rows.
    reports = [json.loads((shards / f"train-baseline-worker{i}.json").read_text()) for i in range(2)]
    params = load_params(workdir / "params.yaml")
    train_rows, _ = split_rows(tiny_train.y, params.train.validation_split, params.base.seed)
    seen = [set(r["rows"]) for r in reports]
    assert [r["worker"] for r in reports] == [0, 1] and [r["is_chief"] for r in reports] == [True, False]
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(train_rows.tolist())
    for r in reports:
        assert r["examples"] == len(r["rows"]) and r["rows_sha256"] == rows_digest(np.array(r["rows"]))
        assert r["per_replica_batch"] == 8  # train.batch_size 16 is the global batch over 2 replicas
    assert run.data.params["shard_rows_sha256"] == reports[0]["rows_sha256"]
    assert run.data.params["shard_examples"] == str(reports[0]["examples"])
    assert "worker 1 of 2 trained on" in outputs[1][1]


@pytest.mark.slow
def test_mirrored_trains_on_this_machine(workdir, tiny_params, tiny_train, mlflow_uri):
    _project(workdir, tiny_params, tiny_train, "mirrored")
    main(["--variant", "baseline"])
    model = keras.models.load_model(workdir / "models" / "baseline.keras")
    assert model.predict(tiny_train.x[:3], verbose=0).shape == (3, 10)
    (run,) = _stage_runs(mlflow_uri, "train-baseline")
    assert run.data.params["train.distribution"] == "mirrored"
    # One replica per GPU TensorFlow sees (the CPU when it sees none): every local GPU trains.
    assert run.data.params["shard_workers"] == "1" and run.data.params["replicas"] == str(max(len(local_gpus()), 1))
    assert run.data.params["shard_examples"] == run.data.params["train_images"]
    assert "val_loss" in run.data.metrics
