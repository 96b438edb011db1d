"""The download stage's helpers on generated data: decoding, both parsers, safe extraction, fetching over real HTTP."""
from __future__ import annotations

import hashlib
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from cifar10.errors import PipelineError
from cifar10.data.sources import cifar_binary, fetch as fetch_mod, image_folder
from cifar10.data.sources.fetch import fetch
from cifar10.data.sources.images import read_image, to_rgb32
from cifar10.data.sources.safe_extract import safe_extract
from tests.sourcedata import (
    add_odd_images,
    hostile_tar,
    pack_tar,
    pack_zip,
    write_binary_release,
    write_image_folder,
)
from tests.tinydata import make_images, to_cifar_binary


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(fetch_mod, "BACKOFF_SECONDS", 0.01)


# --- images ---------------------------------------------------------------------------------------


def test_to_rgb32_converts_modes_and_sizes_and_keeps_32x32_rgb_exact():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb32(Image.fromarray(rgb)), rgb)
    gray = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    out = to_rgb32(Image.fromarray(gray, mode="L"))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], gray) and np.array_equal(out[..., 2], gray)
    rgba = np.dstack([rgb, np.full((32, 32), 7, np.uint8)])
    assert np.array_equal(to_rgb32(Image.fromarray(rgba, mode="RGBA")), rgb)
    for img in (Image.new("LA", (7, 50)), Image.new("P", (100, 3)), Image.new("I;16", (40, 40), 65535)):
        out = to_rgb32(img)
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert to_rgb32(Image.new("I;16", (40, 40), 65535)).min() == 255


def test_read_image_rejects_a_non_image_naming_the_file(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(PipelineError, match=r"notes\.png: not a readable PNG/JPEG image"):
        read_image(bad)


# --- official binary release ----------------------------------------------------------------------


def test_binary_parser_round_trips_the_records(tmp_path):
    train, test = make_images(3, seed=1), make_images(2, seed=2)
    root = write_binary_release(tmp_path, train, test)
    assert cifar_binary.find_root(tmp_path) == root
    got_train, got_test = cifar_binary.load_binary(root)
    assert np.array_equal(got_train.x, train.x) and np.array_equal(got_train.y, train.y)
    assert np.array_equal(got_test.x, test.x) and got_test.y.dtype == np.int64
    # Channel planes, not interleaved pixels: the first record's bytes 1..1024 are the red plane.
    record = np.frombuffer(to_cifar_binary(train)[: cifar_binary.RECORD], np.uint8)
    assert np.array_equal(record[1:1025].reshape(32, 32), got_train.x[0, :, :, 0])


def test_binary_parser_rejects_wrong_sizes_and_missing_batches(tmp_path):
    root = write_binary_release(tmp_path, make_images(1), make_images(1))
    (root / "test_batch.bin").write_bytes((root / "test_batch.bin").read_bytes()[:-5])
    with pytest.raises(PipelineError, match=r"test_batch\.bin: \d+ bytes is not a whole number of 3073-byte"):
        cifar_binary.load_binary(root)
    (root / "data_batch_4.bin").unlink()
    with pytest.raises(PipelineError, match=r"missing batch files data_batch_4\.bin"):
        cifar_binary.load_binary(root)


# --- image folders --------------------------------------------------------------------------------


def test_image_folder_maps_classes_to_label_order_and_converts_odd_images(tmp_path):
    train, test = make_images(2, seed=3), make_images(1, seed=4)
    root = write_image_folder(tmp_path / "outer" / "cifar-png", train, test)
    odd = add_odd_images(root / "train" / "frog")
    assert image_folder.find_root(tmp_path / "outer") == root
    got_train, got_test = image_folder.load_image_folder(root)
    assert np.array_equal(got_test.x, test.x) and np.array_equal(got_test.y, test.y)
    frog = 6
    assert got_train.counts()["frog"] == 2 + len(odd) and got_train.counts()["cat"] == 2
    plain = got_train.y != frog
    assert np.array_equal(got_train.x[plain], train.x[train.y != frog])
    # Name order within a class: the generated 0000/0001 first, then the zz_* extras alphabetically.
    frog_rows = got_train.x[got_train.y == frog]
    assert np.array_equal(frog_rows[:2], train.x[train.y == frog])
    assert np.array_equal(frog_rows[3], np.asarray(odd["zz_gray.png"].convert("RGB")))
    assert np.array_equal(frog_rows[5], np.asarray(odd["zz_rgba.png"].convert("RGB")))
    assert frog_rows.dtype == np.uint8 and frog_rows.shape[1:] == (32, 32, 3)
    limited, _ = image_folder.load_image_folder(root, train_per_class=1)
    assert len(limited) == 10 and np.array_equal(limited.x, train.x[::2])


def test_image_folder_names_missing_and_extra_class_folders(tmp_path):
    root = write_image_folder(tmp_path, make_images(1), make_images(1))
    shutil.rmtree(root / "test" / "dog")
    (root / "test" / "kitten").mkdir()
    with pytest.raises(PipelineError, match=r"test: missing class folders: dog; unexpected folders: kitten"):
        image_folder.load_image_folder(root)


# --- safe extraction ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "fifo", "device"])
def test_hostile_tar_members_are_refused_and_nothing_is_written(tmp_path, kind):
    outside = f"evil-{tmp_path.name}.txt"
    archive = hostile_tar(tmp_path / "evil.tar.gz", kind, outside)
    target = tmp_path / "deep" / "extract"
    with pytest.raises(PipelineError, match=r"evil\.tar\.gz: refusing member '.*'"):
        safe_extract(archive, target)
    assert not target.exists()  # checked before anything was extracted, not even data/ok.txt
    assert not (tmp_path / outside).exists() and not (tmp_path / "deep" / outside).exists()
    assert not (tmp_path.parent / outside).exists()


def test_hostile_zip_members_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "ok")
        zf.writestr("../escaped.txt", "pwned")
    with pytest.raises(PipelineError, match=r"evil\.zip: refusing member '\.\./escaped\.txt': '\.\.' in path"):
        safe_extract(archive, tmp_path / "out")
    link = zipfile.ZipInfo("link")
    link.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(PipelineError, match=r"refusing member 'link': symbolic link"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out").exists()


def test_truncated_or_corrupt_archives_name_the_archive(tmp_path):
    folder = write_image_folder(tmp_path / "ds", make_images(2), make_images(1))
    good_tar = pack_tar(folder, tmp_path / "ds.tar.gz")
    good_zip = pack_zip(folder, tmp_path / "ds.zip")
    safe_extract(good_tar, tmp_path / "ok")
    assert (tmp_path / "ok" / "ds" / "train" / "cat" / "0000.png").is_file()

    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good_tar.read_bytes()[: good_tar.stat().st_size // 2])
    with pytest.raises(PipelineError, match=r"cut\.tar\.gz: corrupt or truncated tar archive"):
        safe_extract(cut, tmp_path / "x1")
    assert not (tmp_path / "x1").exists()

    bad_zip = tmp_path / "bad.zip"
    data = bytearray(good_zip.read_bytes())
    bad_zip.write_bytes(bytes(data[: len(data) - 30]))  # central directory end record cut off
    with pytest.raises(PipelineError, match=r"bad\.zip: corrupt or truncated zip archive"):
        safe_extract(bad_zip, tmp_path / "x2")

    garbage = tmp_path / "data.tgz"
    garbage.write_bytes(b"\x00" * 2000)
    with pytest.raises(PipelineError, match=r"data\.tgz: not a \.tar\.gz/\.tgz/\.tar/\.zip archive"):
        safe_extract(garbage, tmp_path / "x3")


# --- fetching -------------------------------------------------------------------------------------


def _served_file(server, name="blob.bin", size=300_000) -> bytes:
    data = np.random.default_rng(5).integers(0, 256, size, dtype=np.uint8).tobytes()
    (server.root / name).write_bytes(data)
    return data


def test_fetch_records_sha256_or_verifies_md5(http_server, tmp_path):
    data = _served_file(http_server)
    dest = tmp_path / "dl" / "blob.bin"
    recorded = fetch(http_server.url("blob.bin"), dest, checksum="")
    assert recorded == "sha256:" + hashlib.sha256(data).hexdigest()
    assert dest.read_bytes() == data
    md5 = hashlib.md5(data).hexdigest()
    assert fetch(http_server.url("blob.bin"), dest, checksum=f"md5:{md5}") == f"md5:{md5}"
    assert fetch(http_server.url("blob.bin"), dest, checksum=md5) == f"md5:{md5}"  # bare hex
    assert [p.name for p in dest.parent.iterdir()] == ["blob.bin"]  # no temporary leftovers


def test_checksum_mismatch_leaves_nothing_at_dest(http_server, tmp_path):
    data = _served_file(http_server)
    dest = tmp_path / "dl" / "blob.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"stale copy from an earlier run")
    wrong = "sha256:" + "0" * 64
    with pytest.raises(PipelineError) as err:
        fetch(http_server.url("blob.bin"), dest, checksum=wrong, label="download.source")
    msg = str(err.value)
    assert msg.startswith("download.source: checksum mismatch") and "\n" not in msg
    assert f"expected {wrong}" in msg and hashlib.sha256(data).hexdigest() in msg
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize("fault", [500, 429, "drop", "stall"])
def test_transient_failures_are_retried(http_server, tmp_path, fault):
    data = _served_file(http_server)
    http_server.fail_next("blob.bin", fault)
    dest = tmp_path / "blob.bin"
    fetch(http_server.url("blob.bin"), dest, retries=2, timeout=0.3)
    assert http_server.hits("blob.bin") == 2 and dest.read_bytes() == data


def test_client_errors_are_final_and_persistent_errors_give_up(http_server, tmp_path):
    dest = tmp_path / "blob.bin"
    with pytest.raises(PipelineError, match=r"GET http://127\.0\.0\.1:\d+/missing\.bin: HTTP 404 .*not retried"):
        fetch(http_server.url("missing.bin"), dest, retries=3)
    assert http_server.hits("missing.bin") == 1
    _served_file(http_server)
    http_server.fail_next("blob.bin", 503, 503, 503)
    with pytest.raises(PipelineError, match=r"blob\.bin failed after 3 attempts: HTTP 503"):
        fetch(http_server.url("blob.bin"), dest, retries=2)
    assert http_server.hits("blob.bin") == 3 and not dest.exists()


def test_fetch_copies_local_paths_and_file_urls(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 1000)
    digest = hashlib.sha256(b"x" * 1000).hexdigest()
    assert fetch(str(src), tmp_path / "a" / "copy.bin") == f"sha256:{digest}"
    assert fetch(src.as_uri(), tmp_path / "b" / "copy.bin", checksum=digest) == f"sha256:{digest}"
    with pytest.raises(PipelineError, match=r"nope\.tar\.gz: no such file"):
        fetch(str(tmp_path / "nope.tar.gz"), tmp_path / "c" / "copy.bin")
