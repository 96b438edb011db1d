"""predict command: any PNG/JPEG in, top-k classes out (text and JSON); bad input is one line, exit 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar10.classes import CIFAR10_CLASSES
from scripts.predict import main, top_k
from tests.conftest import REPO
from tests.standin_models import pixel_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A stand-in whose top class is the value (0..9) of the image's first pixel."""
    path = tmp_path_factory.mktemp("model") / "pixel.keras"
    pixel_model().save(path)
    return path


def uniform(path: Path, mode: str, size: tuple[int, int], value: int) -> str:
    """An image of one grey level: it stays that level through mode conversion and resizing."""
    fill = {"L": value, "RGB": (value,) * 3, "RGBA": (value, value, value, 128), "P": value}[mode]
    img = Image.new(mode, size, fill)
    if mode == "P":
        img.putpalette([i for v in range(256) for i in (v, v, v)])
    img.save(path)
    return str(path)


@pytest.fixture
def images(tmp_path) -> dict[str, str]:
    """Class label -> a file of odd size and mode whose stand-in prediction is that label."""
    return {
        3: uniform(tmp_path / "gray.png", "L", (50, 17), 3),
        5: uniform(tmp_path / "rgb.jpg", "RGB", (97, 203), 5),
        7: uniform(tmp_path / "rgba.png", "RGBA", (32, 32), 7),
        1: uniform(tmp_path / "palette.png", "P", (5, 640), 1),
    }


def test_top_k_orders_by_probability():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    assert top_k(probs, ["a", "b", "c"], 2) == [[("b", 0.6), ("c", 0.3)], [("a", 0.5), ("c", 0.3)]]


def test_json_top_k_for_odd_sizes_and_modes(model_file, images, capsys):
    main([*images.values(), "--model", str(model_file), "--top", "4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == str(model_file)
    assert [p["image"] for p in out["predictions"]] == list(images.values())
    for label, pred in zip(images, out["predictions"]):
        top = pred["top"]
        assert len(top) == 4 and top[0]["class"] == CIFAR10_CLASSES[label]
        probs = [t["probability"] for t in top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_text_output_by_model_name(model_file, images, tmp_path, monkeypatch, capsys):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "baseline.keras").write_bytes(model_file.read_bytes())
    monkeypatch.chdir(tmp_path)
    main([images[3], images[5], "--model", "baseline", "--top", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "model: models/baseline.keras"
    assert lines[1] == images[3] and lines[2].split()[:2] == ["1.", "cat"]
    assert lines[3] == images[5] and lines[4].split()[:2] == ["1.", "dog"]
    assert len(lines) == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet"], "unknown model 'resnet': use baseline, augmented, frozen, transfer"),
        (["--model", "transfer"], "models/transfer.keras not found"),
        (["--model", "nowhere/m.keras"], "model file nowhere/m.keras not found"),
        (["--top", "11"], "--top must be between 1 and 10 (got 11)"),
    ],
)
def test_bad_options_are_one_line(args, message, images, model_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if "--model" not in args:
        args = [*args, "--model", str(model_file)]
    with pytest.raises(SystemExit) as exc:
        main([images[3], *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_not_an_image_is_one_line_on_stderr(model_file, images, tmp_path):
    """As a real command: the message is the only stderr line, nothing on stdout, exit code 2."""
    fake = tmp_path / "notes.png"
    fake.write_text("this is not a picture")
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.predict", images[3], str(fake), "--model", str(model_file)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {fake}: not a readable PNG/JPEG image")
