"""fetch-weights: the backbone weights as a checksummed input, fetched from a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from cifar10.paths import WEIGHTS_DIR
from cifar10.weights.manifest import B0_FILE as IMAGENET_FILE
from tests.conftest import write_params
from tests.tinydata import make_images
from tests.weightfiles import write_backbone_weights


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An http.server thread serving a real EfficientNet-B0 no-top weights file (Keras' legacy HDF5 layout)."""
    root = tmp_path_factory.mktemp("mirror")
    write_backbone_weights(root / IMAGENET_FILE, make_images(4, seed=7).x, 32)
    (root / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 64)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _digest(path: Path, algo: str) -> str:
    return f"{algo}:{hashlib.new(algo, path.read_bytes()).hexdigest()}"


def _main_error(capfd) -> str:
    from stages import fetch_weights

    with pytest.raises(SystemExit) as exc:
        fetch_weights.main()
    assert exc.value.code == 2
    lines = capfd.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: ")
    return lines[-1]


def _nothing_left(root: Path) -> None:
    assert not (root / WEIGHTS_DIR).exists()
    assert not [p.name for p in (root / "data").iterdir() if "weights" in p.name]  # no temp folders


@pytest.mark.slow
def test_imagenet_weights_fetched_over_http_verified_and_loadable(workdir, tiny_params, served, capfd):
    from cifar10.models.transfer import build_backbone
    from cifar10.schema import load_params
    from cifar10.weights.manifest import read_manifest
    from stages import fetch_weights

    mirror, url = served
    tiny_params["transfer"].update(weights="imagenet", weights_url=f"{url}/{IMAGENET_FILE}",
                                   weights_checksum=_digest(mirror / IMAGENET_FILE, "md5"))
    write_params(workdir, tiny_params)
    fetch_weights.main()
    got = WEIGHTS_DIR / IMAGENET_FILE
    assert got.read_bytes() == (mirror / IMAGENET_FILE).read_bytes()
    manifest = json.loads((WEIGHTS_DIR / "weights.json").read_text())
    assert manifest == {"backbone": "efficientnet_b0", "kind": "imagenet", "source": f"{url}/{IMAGENET_FILE}",
                        "checksum": _digest(got, "md5"), "file": IMAGENET_FILE, "file_sha256": _digest(got, "sha256")}
    assert read_manifest(load_params().transfer)[1] == got

    # The real loading path: keras.applications.EfficientNetB0(weights=<file>), here at another size.
    backbone = build_backbone("efficientnet_b0", 48, got)
    variance = backbone.get_layer("top_bn").moving_variance.numpy()
    assert not np.allclose(variance, 1.0), "the calibrated statistics were loaded, not a fresh init"

    # An empty checksum is computed (sha256) and recorded.
    tiny_params["transfer"]["weights_checksum"] = ""
    write_params(workdir, tiny_params)
    fetch_weights.main()
    assert json.loads((WEIGHTS_DIR / "weights.json").read_text())["checksum"] == _digest(got, "sha256")
    assert "recorded" in capfd.readouterr().err


def test_checksum_mismatch_leaves_nothing(workdir, tiny_params, served, capfd):
    _, url = served
    Path(WEIGHTS_DIR).mkdir(parents=True)
    (WEIGHTS_DIR / "weights.json").write_text("{}")  # a stale result of other params
    tiny_params["transfer"].update(weights="imagenet", weights_url=f"{url}/{IMAGENET_FILE}",
                                   weights_checksum="md5:" + "0" * 32)
    write_params(workdir, tiny_params)
    line = _main_error(capfd)
    assert "checksum mismatch" in line and "transfer.weights_url" in line and "md5:" + "0" * 32 in line
    _nothing_left(workdir)


def test_missing_url_and_corrupt_file_leave_nothing(workdir, tiny_params, served, capfd):
    mirror, url = served
    tiny_params["transfer"].update(weights="imagenet", weights_url=f"{url}/nothing-here.h5", weights_checksum="")
    write_params(workdir, tiny_params)
    line = _main_error(capfd)
    assert "HTTP 404" in line and "nothing-here.h5" in line
    _nothing_left(workdir)

    tiny_params["transfer"].update(weights=str(mirror / "broken.h5"))  # a local path: copied, then loaded
    write_params(workdir, tiny_params)
    line = _main_error(capfd)
    assert "broken.h5: not loadable as EfficientNet-B0 weights" in line
    _nothing_left(workdir)

    tiny_params["transfer"].update(weights=str(mirror / "absent.h5"))
    write_params(workdir, tiny_params)
    assert "absent.h5: no such file" in _main_error(capfd)
    _nothing_left(workdir)


@pytest.mark.slow
def test_local_copy_and_random_weights(workdir, tiny_params, served, capfd):
    from stages import fetch_weights

    mirror, _ = served
    tiny_params["transfer"].update(weights=str(mirror / IMAGENET_FILE), weights_checksum="")
    write_params(workdir, tiny_params)
    fetch_weights.main()
    manifest = json.loads((WEIGHTS_DIR / "weights.json").read_text())
    assert manifest["kind"] == "file" and manifest["source"] == str(mirror / IMAGENET_FILE)
    assert (WEIGHTS_DIR / IMAGENET_FILE).read_bytes() == (mirror / IMAGENET_FILE).read_bytes()

    tiny_params["transfer"]["weights"] = "none"
    write_params(workdir, tiny_params)
    fetch_weights.main()
    assert sorted(p.name for p in WEIGHTS_DIR.iterdir()) == ["weights.json"]
    assert json.loads((WEIGHTS_DIR / "weights.json").read_text())["kind"] == "none"
    assert "random backbone" in capfd.readouterr().err


def test_weights_param_must_name_a_keras_weights_file(tiny_params):
    from cifar10.errors import PipelineError
    from cifar10.schema import parse_params

    tiny_params["transfer"]["weights"] = "weights.bin"
    with pytest.raises(PipelineError, match=r"transfer\.weights: must be imagenet, none or the path"):
        parse_params(tiny_params)
    tiny_params["transfer"].update(weights="imagenet", weights_checksum="md5:xyz")
    with pytest.raises(PipelineError, match=r"transfer\.weights_checksum: .*is not a checksum"):
        parse_params(tiny_params)
