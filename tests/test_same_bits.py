"""The augment stage writes the same bytes on every x86-64 CPU, so a team's shared DVC cache serves all
(the round trip through a shared remote's run cache: tests/test_pipeline.py).

oneDNN picks its kernels at run time from the CPU (AVX-512, AVX2, or none with its optimisations off);
ONEDNN_MAX_CPU_ISA and TF_ENABLE_ONEDNN_OPTS make this one machine behave like those others. Training
is not among them: its convolutions are oneDNN's, so a trained model repeats bit for bit on one CPU
kind only (README, Reproducibility).
"""
from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO, run

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
