"""Every device used: a stage's start leaves the environment TensorFlow reads as the user set it, and
TensorFlow then sees the very devices it sees without this project, with its start-up banners filtered;
`make install CUDA=1` adds TensorFlow's pinned NVIDIA libraries to the CPU-only default."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cifar10.data import dataset
from tests.conftest import REPO

# stages/train.py run as a stage runs, up to its first TensorFlow work (the strategy): there it prints
# what TensorFlow reads and sees, and stops.
STAGE_START = """
import json, os
import cifar10.training.distribution as distribution

def stop_here(name):
    import tensorflow as tf
    seen = [[d.name, d.device_type] for d in tf.config.list_physical_devices()]
    env = {k: v for k, v in os.environ.items() if k.startswith(("TF_", "CUDA_"))}
    print(json.dumps({"env": env, "devices": seen}), flush=True)
    os._exit(0)

distribution.make_cluster = stop_here
from stages.train import main
main(["--variant", "baseline"])
"""
WITHOUT_PROJECT = """
import json, tensorflow as tf
print(json.dumps([[d.name, d.device_type] for d in tf.config.list_physical_devices()]))
"""
BANNERS = ("cuInit", "absl::InitializeLog", "cuda drivers", "oneDNN custom operations", "cpu_feature_guard")


@pytest.mark.slow
def test_a_stage_start_restricts_no_device_type_and_shows_no_banner(workdir, tiny_train):
    dataset.save(dataset.IMBALANCED_TRAIN, tiny_train)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLED_DEVICE_TYPES", "TF_CPP_MIN_LOG_LEVEL")}
    env.update(PYTHONPATH=str(REPO), TF_NUM_INTEROP_THREADS="2")  # a setting of the user's, to be kept
    started = subprocess.run([sys.executable, "-c", STAGE_START], cwd=workdir, env=env, capture_output=True,
                             text=True, timeout=300)
    assert started.returncode == 0, started.stderr[-3000:]
    seen = json.loads(started.stdout.strip().splitlines()[-1])
    bare = subprocess.run([sys.executable, "-c", WITHOUT_PROJECT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert bare.returncode == 0, bare.stderr[-3000:]
    assert seen["env"] == {k: v for k, v in env.items() if k.startswith(("TF_", "CUDA_"))}
    assert "TF_ENABLED_DEVICE_TYPES" not in seen["env"]
    assert seen["devices"] == json.loads(bare.stdout.strip().splitlines()[-1])
    assert ["/physical_device:CPU:0", "CPU"] in seen["devices"]
    # With no log level set, TensorFlow printed its banners in the bare process, and the stage filtered them.
    assert not [line for line in started.stderr.splitlines() if any(b in line for b in BANNERS)], started.stderr


def _pins(path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {name.lower(): version for name, version in (line.split("==") for line in lines if line)}


def test_make_install_cuda_adds_tensorflows_gpu_lock_and_the_default_stays_cpu_only(tmp_path):
    def recipe(*args: str) -> str:
        proc = subprocess.run(["make", "-n", "-B", "install", f"VENV={tmp_path / 'venv'}", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "pip install --quiet -r requirements.txt -r requirements-cuda.txt" in recipe("CUDA=1")
    default = recipe()
    assert "pip install --quiet -r requirements.txt\n" in default and "-cuda" not in default
    cuda, cpu = _pins(REPO / "requirements-cuda.txt"), _pins(REPO / "requirements.txt")
    assert cuda.pop("tensorflow[and-cuda]") == cpu["tensorflow"] == "2.21.0"
    assert cuda and all(name.startswith("nvidia-") and name.endswith("-cu12") for name in cuda)
    assert not any(name.startswith("nvidia-") for name in cpu)  # the default install fetches no CUDA library
