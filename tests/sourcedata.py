"""Tiny source datasets for the download stage, and a real HTTP server on 127.0.0.1 to serve them.

Builders write the official binary layout, image-folder trees (with grayscale, RGBA, palette and
odd-sized images), tar/zip archives of them, and hostile archives. The server can be told to fail
the next requests for a path (HTTP status, a dropped connection or silence) to exercise retries.
"""
from __future__ import annotations

import io
import tarfile
import threading
import time
import zipfile
from collections import Counter, defaultdict
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar10.classes import CIFAR10_CLASSES
from cifar10.data.dataset import Dataset
from tests.tinydata import to_cifar_binary


def write_binary_release(folder: Path, train: Dataset, test: Dataset) -> Path:
    """cifar-10-batches-bin/ with the training images spread over five batch files; returns it."""
    root = folder / "cifar-10-batches-bin"
    root.mkdir(parents=True)
    for i, rows in enumerate(np.array_split(np.arange(len(train)), 5), start=1):
        part = Dataset(train.x[rows], train.y[rows])
        (root / f"data_batch_{i}.bin").write_bytes(to_cifar_binary(part))
    (root / "test_batch.bin").write_bytes(to_cifar_binary(test))
    (root / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n")
    return root


def write_image_folder(root: Path, train: Dataset, test: Dataset) -> Path:
    """train/<class>/NNNN.png and test/<class>/NNNN.png, lossless so pixels round-trip exactly."""
    for split, ds in (("train", train), ("test", test)):
        seen: Counter = Counter()
        for img, label in zip(ds.x, ds.y):
            name = CIFAR10_CLASSES[label]
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{seen[name]:04d}.png")
            seen[name] += 1
    return root


def add_odd_images(class_dir: Path) -> dict[str, Image.Image]:
    """Extra images a converter must handle: grayscale, RGBA, palette, non-32x32 sizes (and a JPEG)."""
    rng = np.random.default_rng(7)
    odd = {
        "zz_gray.png": Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), mode="L"),
        "zz_rgba.png": Image.fromarray(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8), mode="RGBA"),
        "zz_palette.png": Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).convert("P"),
        "zz_wide.png": Image.fromarray(rng.integers(0, 256, (20, 45, 3), dtype=np.uint8)),
        "zz_big.jpg": Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
    }
    for name, img in odd.items():
        img.save(class_dir / name)
    return odd


def pack_tar(folder: Path, archive: Path, arcname: str | None = None) -> Path:
    mode = "w:gz" if archive.name.endswith(("gz", "tgz")) else "w"
    with tarfile.open(archive, mode) as tar:
        tar.add(folder, arcname=arcname if arcname is not None else folder.name)
    return archive


def pack_zip(folder: Path, archive: Path, arcname: str | None = None) -> Path:
    prefix = arcname if arcname is not None else folder.name
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            zf.write(path, f"{prefix}/{rel}" if prefix else rel)
    return archive


def hostile_tar(archive: Path, kind: str, target_name: str = "evil.txt") -> Path:
    """A tar.gz with one harmless file and one hostile member of `kind`."""
    with tarfile.open(archive, "w:gz") as tar:
        ok = tarfile.TarInfo("data/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        evil = tarfile.TarInfo(
            {"dotdot": f"data/../../{target_name}", "absolute": f"/tmp/{target_name}"}.get(kind, "data/link")
        )
        if kind == "symlink":
            evil.type, evil.linkname = tarfile.SYMTYPE, "/etc"
        elif kind == "hardlink":
            evil.type, evil.linkname = tarfile.LNKTYPE, "data/ok.txt"
        elif kind == "fifo":
            evil.type = tarfile.FIFOTYPE
        elif kind == "device":
            evil.type, evil.devmajor, evil.devminor = tarfile.CHRTYPE, 1, 3
        payload = b"pwned" if kind in ("dotdot", "absolute") else b""
        evil.size = len(payload)
        tar.addfile(evil, io.BytesIO(payload))
    return archive


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        server = self.server
        server.hits[self.path] += 1
        faults = server.faults.get(self.path)
        fault = faults.pop(0) if faults else None
        if fault == "drop":
            # Promise the whole file, send a few bytes, hang up: a connection lost mid-download.
            data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        if fault == "stall":
            time.sleep(1.0)  # longer than the client's timeout; it has given up by now
            self.close_connection = True
            return
        if isinstance(fault, int):
            self.send_error(fault)
            return
        super().do_GET()


class LoopbackServer:
    """A threading HTTP server on 127.0.0.1 serving `root`, with scripted faults per path."""

    def __init__(self, root: Path):
        self.root = root
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
        self.httpd.hits = Counter()
        self.httpd.faults = defaultdict(list)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def fail_next(self, name: str, *faults) -> None:
        """Make the next requests for `name` fail: an int is an HTTP status, 'drop' a cut
        connection, 'stall' no answer for a second."""
        self.httpd.faults[f"/{name}"].extend(faults)

    def hits(self, name: str) -> int:
        return self.httpd.hits[f"/{name}"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def http_server(tmp_path):
    """A LoopbackServer serving a fresh folder (`server.root`); shut down after the test."""
    root = tmp_path / "served"
    root.mkdir()
    server = LoopbackServer(root)
    yield server
    server.close()
