"""The augment stage writes the same bytes on every x86-64 CPU, so a team's shared DVC cache serves all.

oneDNN picks its kernels at run time from the CPU (AVX-512, AVX2, or none with its optimisations off);
ONEDNN_MAX_CPU_ISA and TF_ENABLE_ONEDNN_OPTS make this one machine behave like those others. Training
is not among them: its convolutions are oneDNN's, so a trained model repeats bit for bit on one CPU
kind only (README, Reproducibility).
"""
from __future__ import annotations

import hashlib
import re
import sys

import pytest
import yaml

from tests.conftest import REPO, run, write_params

# tests/isa_digest.py's fixed input through the committed augment params (seed 42). It changes only
# when the augmentation's maths, its params or a pinned package changes: then every cached augmented
# set changes too, and this digest is updated on purpose.
AUGMENTED_SHA256 = "f1dd0d93b3c2756eb027869d892317071b5f48f893e14032d529f958b4f4a9e6"
ISA_SETTINGS = {
    "default": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "onednn-off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
}


@pytest.mark.parametrize("setting", sorted(ISA_SETTINGS))
def test_augment_output_has_the_pinned_digest_under_every_instruction_set(setting):
    out = run([sys.executable, "-m", "tests.isa_digest"], REPO, ISA_SETTINGS[setting]).stdout.split()
    assert out[-1] == AUGMENTED_SHA256, f"augment's bytes under {setting}: {out[-1]}"


def ran(proc) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", proc.stdout))


def files_digest(root, paths) -> dict[str, str]:
    return {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in paths}


@pytest.mark.slow
def test_a_shared_remote_serves_a_clone_on_another_instruction_set(dvc_repo, served_release, tmp_path):
    url, md5 = served_release
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    params["download"].update(source=url, checksum=f"md5:{md5}")
    params["augment"]["target"] = 40  # 35 synthetic cats and dogs each: enough pixels for a rounding flip to show
    write_params(dvc_repo, params)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    run(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], dvc_repo)
    run(git + ["commit", "-qam", "shared remote"], dvc_repo)
    a, b = tmp_path / "a", tmp_path / "b"
    for clone in (a, b):
        run(["git", "clone", "-q", str(dvc_repo), str(clone)], tmp_path)

    first = run(["dvc", "repro"], a)
    assert "augment" in ran(first) and "compare" in ran(first)
    run(["dvc", "push", "--run-cache"], a)
    outputs = ["data/raw/train.npz", "data/imbalanced/train.npz", "data/augmented/train.npz",
               "models/baseline.keras", "models/augmented.keras", "models/transfer.keras"]

    # Clone B has A's code and params but not A's dvc.lock: each stage is looked up in the run cache.
    other_cpu = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    run(["dvc", "fetch", "--run-cache"], b, other_cpu)
    served = run(["dvc", "repro", "--pull"], b, other_cpu)
    assert ran(served) == set(), served.stdout
    assert served.stdout.count("is cached - skipping run") == len(ran(first))
    assert files_digest(b, outputs) == files_digest(a, outputs)

    # What B computes itself is what the cache holds: augment rerun on B's instruction set writes the
    # same bytes, so nothing downstream of it goes stale.
    again = run(["dvc", "repro", "--force", "--single-item", "augment"], b, other_cpu)
    assert ran(again) == {"augment"}
    assert ran(run(["dvc", "repro"], b, other_cpu)) == set()
    assert files_digest(b, ["data/augmented/train.npz"]) == files_digest(a, ["data/augmented/train.npz"])
