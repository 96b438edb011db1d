"""The download stage end to end: real HTTP on 127.0.0.1, real archives, a real MLflow SQLite store."""
from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from cifar10.data import dataset
from cifar10.paths import RAW_SOURCE_INFO
from stages import download
from cifar10.data.sources import fetch as fetch_mod
from tests.conftest import write_params
from tests.sourcedata import (
    hostile_tar,
    pack_tar,
    pack_zip,
    write_binary_release,
    write_image_folder,
)
from tests.servers import free_port
from tests.tinydata import make_images

RAW_DIR = RAW_SOURCE_INFO.parent
OUTPUTS = (dataset.RAW_TRAIN, dataset.RAW_TEST, RAW_SOURCE_INFO)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(fetch_mod, "BACKOFF_SECONDS", 0.01)


@pytest.fixture
def data():
    return make_images(4, seed=11), make_images(2, seed=12)


@pytest.fixture
def binary_release(tmp_path, data):
    """cifar-10-binary.tar.gz built from the tiny data, and its md5."""
    src = tmp_path / "build"
    write_binary_release(src, *data)
    archive = pack_tar(src / "cifar-10-batches-bin", tmp_path / "cifar-10-binary.tar.gz")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


class Project:
    def __init__(self, root, params):
        self.root, self.params = root, params

    def configure(self, **download_params) -> None:
        """Write params.yaml with these `download` keys changed."""
        self.params["download"].update(download_params)
        write_params(self.root, self.params)


@pytest.fixture
def project(tmp_path, tiny_params, mlflow_uri, monkeypatch) -> Project:
    """An empty project folder, the cwd, whose params.yaml `configure()` writes."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return Project(root, tiny_params)


def _run_of(uri: str, stage: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cifar10-imbalance")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.stage = '{stage}'")
    assert len(runs) == 1
    return client, runs[0]


def _fails(capsys, pattern: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        download.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and re.search(pattern, err), err
    for path in OUTPUTS:
        assert not path.exists()
    if RAW_DIR.exists():
        assert not list(RAW_DIR.iterdir())  # no scratch or temporary files left


def test_binary_release_over_http_with_md5_is_parsed_and_logged(project, http_server, binary_release, data, mlflow_uri):
    archive, md5 = binary_release
    (http_server.root / archive.name).write_bytes(archive.read_bytes())
    project.configure(source=http_server.url(archive.name), checksum=f"md5:{md5}")
    download.main()
    train, test = dataset.load(dataset.RAW_TRAIN), dataset.load(dataset.RAW_TEST)
    assert np.array_equal(train.x, data[0].x) and np.array_equal(train.y, data[0].y)
    assert np.array_equal(test.x, data[1].x)
    info = json.loads(RAW_SOURCE_INFO.read_text())
    assert info["checksum"] == f"md5:{md5}" and info["format"] == "cifar-10-binary"
    assert sorted(p.name for p in RAW_DIR.iterdir()) == ["source.json", "test.npz", "train.npz"]

    client, run_ = _run_of(mlflow_uri, "download")
    assert run_.info.status == "FINISHED" and run_.info.run_name == "download"
    assert run_.data.tags["source_checksum"] == f"md5:{md5}"
    assert run_.data.params["download.source"] == http_server.url(archive.name)
    assert run_.data.metrics["count_train_cat"] == 4 and run_.data.metrics["count_test_truck"] == 2
    assert run_.data.metrics["count_train"] == 40
    artifacts = {a.path for a in client.list_artifacts(run_.info.run_id, "samples")}
    assert "samples/train_grid.png" in artifacts


def test_image_folder_zip_records_sha256_and_keeps_first_n_per_class(project, tmp_path, data, mlflow_uri):
    folder = write_image_folder(tmp_path / "build" / "cifar-png", *data)
    archive = pack_zip(folder, tmp_path / "cifar-png.zip")
    project.configure(source=str(archive), checksum="", train_per_class=3, test_per_class=1)
    download.main()
    train, test = dataset.load(dataset.RAW_TRAIN), dataset.load(dataset.RAW_TEST)
    assert set(train.counts().values()) == {3} and set(test.counts().values()) == {1}
    first3 = np.concatenate([np.flatnonzero(data[0].y == c)[:3] for c in range(10)])
    assert np.array_equal(train.x, data[0].x[first3])
    sha = "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    _, run_ = _run_of(mlflow_uri, "download")
    assert run_.data.tags["source_checksum"] == sha and run_.data.params["source_checksum"] == sha
    assert run_.data.tags["source_format"] == "image-folder"


def test_folder_source_is_read_in_place(project, tmp_path, data):
    folder = write_image_folder(tmp_path / "plain", *data)
    project.configure(source=str(folder), checksum="")
    download.main()
    assert np.array_equal(dataset.load(dataset.RAW_TEST).x, data[1].x)
    assert (folder / "train" / "cat" / "0000.png").exists()  # source untouched


def test_checksum_mismatch_fails_with_no_output(project, http_server, binary_release, capsys, mlflow_uri):
    archive, md5 = binary_release
    (http_server.root / archive.name).write_bytes(archive.read_bytes())
    project.configure(source=http_server.url(archive.name), checksum="md5:" + "f" * 32)
    dataset.save(dataset.RAW_TRAIN, make_images(1))  # a stale output of an earlier run
    _fails(capsys, rf"download\.source: checksum mismatch .* expected md5:f{{32}}, got md5:{md5}")
    _, run_ = _run_of(mlflow_uri, "download")
    assert run_.info.status == "FAILED"


@pytest.mark.parametrize("kind", ["dotdot", "symlink"])
def test_hostile_archive_fails_with_nothing_written_outside(project, tmp_path, kind, capsys):
    outside = f"escaped-{kind}.txt"
    archive = hostile_tar(tmp_path / "evil.tar.gz", kind, outside)
    project.configure(source=str(archive), checksum="")
    _fails(capsys, r"evil\.tar\.gz: refusing member")
    assert not list(tmp_path.rglob(outside))


def test_truncated_archive_fails_naming_it(project, tmp_path, binary_release, capsys):
    archive, _ = binary_release
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[:-200])
    project.configure(source=str(cut), checksum="")
    _fails(capsys, r"cut\.tar\.gz: corrupt or truncated tar archive")


def test_wrong_class_folders_and_unknown_layouts_fail(project, tmp_path, data, capsys):
    folder = write_image_folder(tmp_path / "ds", *data)
    (folder / "train" / "horse").rename(folder / "train" / "pony")
    project.configure(source=str(pack_tar(folder, tmp_path / "ds.tgz")), checksum="")
    _fails(capsys, r"train: missing class folders: horse; unexpected folders: pony")
    other = tmp_path / "other"
    (other / "images").mkdir(parents=True)
    project.configure(source=str(pack_tar(other, tmp_path / "other.tar")), checksum="")
    _fails(capsys, r"found neither cifar-10-batches-bin/ nor train/ and test/ folders")


def test_unreachable_source_fails_after_retries(project, http_server, capsys):
    project.configure(source=http_server.url("gone.tar.gz"), checksum="", retries=1)
    _fails(capsys, r"gone\.tar\.gz: HTTP 404 [^:]* on attempt 1 of 2 \(client error, not retried\)")
    project.configure(source=str(project.root / "nowhere.tar.gz"))
    _fails(capsys, r"download\.source: .*nowhere\.tar\.gz not found")
    # A host that cannot be reached: the one line names the way to run without the network.
    project.configure(source=f"http://127.0.0.1:{free_port()}/cifar-10-binary.tar.gz", retries=0)
    _fails(capsys, r"connection failed \(ConnectionError\); offline\? set download\.source to a local copy")
