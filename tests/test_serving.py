"""Served predictions: the registry's champion answers REST requests from `mlflow models serve`, as
`python -m scripts.predict` answers for the same JPEG."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from benchmarks.realdata import ARCHIVE
from cifar10.data import dataset
from cifar10.data.sources.images import read_image
from tests.conftest import REPO, run, write_params
from tests.servers import free_port
from tests.tinydata import make_images

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHAMPION = "models:/cifar10-classifier@champion"


def a_cifar10_jpeg(folder: Path) -> Path:
    """A real CIFAR-10 test image from the local archive where it exists, else a generated one as JPEG."""
    path = folder / "image.jpg"
    if ARCHIVE.exists():
        with tarfile.open(ARCHIVE) as tar:
            path.write_bytes(tar.extractfile("cifar10-jpeg/test/cat/0000.jpg").read())
    else:
        Image.fromarray(make_images(1, seed=5).x[3]).save(path, quality=75)
    return path


@pytest.fixture
def champion(workdir, tiny_params, tiny_train, mlflow_uri):
    """A trained baseline, evaluated, so the registry holds it as the champion."""
    tiny_params["train"]["model"].update({"filters": [4, 8], "conv_dropout": [0.1, 0.2], "dense_units": [8]})
    tiny_params["evaluate"]["models"] = ["baseline"]
    write_params(workdir, tiny_params)
    dataset.save(dataset.IMBALANCED_TRAIN, tiny_train)
    env = {"PYTHONPATH": str(REPO)}
    run([sys.executable, "-m", "stages.train", "--variant", "baseline"], workdir, env)
    run([sys.executable, "-m", "stages.evaluate", "--model", "baseline"], workdir, env)
    run([sys.executable, "-m", "stages.compare"], workdir, env)
    return mlflow_uri


def test_served_champion_agrees_with_the_predict_command(champion, workdir, tmp_path):
    image = a_cifar10_jpeg(tmp_path)
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "MLFLOW_TRACKING_URI": champion}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", CHAMPION, "--env-manager", "local",
                                   "-h", "127.0.0.1", "-p", str(port), "-w", "1"], cwd=workdir, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "mlflow models serve did not answer /ping:\n" + log.read_text()[-3000:]
            time.sleep(1)
        pixels = read_image(image)  # the decoding the predict command applies to a file
        reply = requests.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": pixels[None].tolist()}, timeout=120)
        assert reply.status_code == 200, reply.text
        served = np.asarray(reply.json()["predictions"][0])
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)

    out = run([sys.executable, "-m", "scripts.predict", str(image), "--model", CHAMPION, "--top", "10", "--json"],
              workdir, {"PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": champion})
    top = json.loads(out.stdout)["predictions"][0]["top"]
    by_class = {t["class"]: t["probability"] for t in top}
    from cifar10.classes import CIFAR10_CLASSES

    assert served.shape == (10,) and abs(served.sum() - 1) < 1e-5
    assert top[0]["class"] == CIFAR10_CLASSES[int(served.argmax())]
    # predict folds batch norm into the convolutions; the served file computes it apart: the same maths to the
    # rounding of the precision the model trained in (auto: bfloat16 on AMX, whose 8 significant bits show).
    from cifar10.training.precision import resolve

    bf16 = resolve("auto")[0] == "mixed_bfloat16"
    np.testing.assert_allclose([by_class[c] for c in CIFAR10_CLASSES], served, atol=1e-3 if bf16 else 1e-6)
