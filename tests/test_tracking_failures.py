"""The tracking server dies mid-run: the model is still written and the stage says what was not logged."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import keras
import pytest

from cifar10.data import dataset
from cifar10.tracking.tracker import Tracker, is_connection_failure
from tests.conftest import REPO, write_params
from tests.servers import free_port, mlflow_server


def test_breaker_skips_calls_after_a_connection_failure():
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    tracker = Tracker(client, "0" * 32, "stage")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        started = time.monotonic()
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.log_metrics({"loss": 0.5}, step=2)
        tracker.log_text("x", "notes.txt")
    finally:
        del os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert time.monotonic() - started < 10
    assert tracker.unreachable is not None
    assert tracker.not_logged[0].startswith("metrics at step 1 (server unreachable")
    assert tracker.not_logged[1:] == ["metrics at step 2 (skipped)", "artifact notes.txt (skipped)"]
    assert not is_connection_failure(ValueError("bad metric name"))


@pytest.mark.slow
@pytest.mark.integration
def test_server_killed_after_first_epoch_keeps_the_model(workdir, tiny_params, tiny_train, tmp_path):
    params = dict(tiny_params)
    params["train"].update(epochs=3, batch_size=16)
    params["train"]["model"].update({"filters": [4, 8], "conv_dropout": [0.1, 0.2], "dense_units": [8]})
    params["train"]["early_stopping"]["patience"] = 10
    write_params(workdir, params)
    dataset.save(workdir / dataset.IMBALANCED_TRAIN, tiny_train)

    lines: list[str] = []
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts") as url:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "stages.train", "--variant", "baseline"], cwd=workdir,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            lines.append(line)
            if "train-baseline: epoch 1:" in line:
                break
        else:
            proc.wait()
            pytest.fail(f"no first epoch line; exit {proc.returncode}:\n{''.join(lines)[-3000:]}")
    killed = time.monotonic()  # leaving the block has stopped the server
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    after_kill = time.monotonic() - killed
    err = "".join(lines) + err
    assert proc.returncode == 0, err[-3000:]
    model = keras.models.load_model(workdir / "models" / "baseline.keras")
    assert model.predict(tiny_train.x[:2], verbose=0).shape == (2, 10)
    assert "train-baseline: epoch 3:" in err  # training went on to the end
    warning = next(line for line in err.splitlines() if "outputs written, but MLflow" in line)
    assert "server unreachable" in warning and "run status (skipped)" in warning
    assert "artifact model_summary.txt" in warning
    print(f"{after_kill:.1f}s after the server died:", warning)
    assert after_kill < 60, f"the stage took {after_kill:.0f}s after the server died"
