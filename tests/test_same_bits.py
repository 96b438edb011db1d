"""The augment stage writes the same bytes on every x86-64 CPU, so a team's shared DVC cache serves all
(the round trip through a shared remote's run cache: tests/test_pipeline.py).

Pinned here: each step of the study's transform on a fixed input and the .npz the stage writes, computed by
the stage's TensorFlow code and by its NumPy twin, under this CPU's own kernels and under the settings that
make it imitate other CPU kinds: oneDNN capped at AVX2 or switched off (TensorFlow), every run-time
dispatched NumPy target off (baseline SSE4.2 kernels instead of AVX2 or AVX-512). The digests were pinned
on an AMD EPYC (family 25 model 1, AVX2 only); on another CPU kind a mismatch names the first step that
differs. Why no step can differ: cifar10/augmentation/exact.py, and tests/test_exact_augment.py, which holds
the graph to CPU-independent ops. Training is not among them: its convolutions are oneDNN's, so a trained
model repeats bit for bit on one CPU kind only (docs on reproducibility).
"""
from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO, run

# tests/isa_digest.py's fixed input through the committed augment params (seed 42). They change only when
# the augmentation's maths, its params or a pinned package changes: then every cached augmented set changes
# too, and these digests are updated on purpose.
STEP_DIGESTS = {
    "draw angles": "9a7b958787e55667",
    "draw shifts": "07963eb66cdc15e4",
    "draw scales": "bbdd2520c8e60225",
    "draw brightness": "10038e875c3e3a8d",
    "sin": "3bc61e29c91d0f23",
    "cos": "ff4eeaeda6fa8539",
    "sample x": "67d3e7cbfeb44281",
    "sample y": "bb2af9f415242c66",
    "resampled float32": "e1430d0a72e3302b",
    "brightened float32": "6bbfb4d8987fc7c5",
    "final uint8": "ea53faeaa56cbe31",
    "stage's augmenter": "ea53faeaa56cbe31",
}
AUGMENTED_SHA256 = "2cd95a1c5ac459fd660305cedc5c47d9e4cc54677db1ab907064dd0a7579b308"
SETTINGS = {
    "default": {},
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "onednn-off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    # NumPy's dispatch targets above its x86-64-v2 baseline; one the CPU lacks is ignored
    "numpy-baseline": {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"},
}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_every_step_and_the_output_have_the_pinned_digests_under_every_setting(setting):
    lines = run([sys.executable, "-m", "tests.isa_digest", "--steps"], REPO, SETTINGS[setting]).stdout.splitlines()
    *rows, npz = [line for line in lines if line.strip()]
    found = {}
    for row in rows:
        name, ours, twin = row.rsplit(maxsplit=2)
        assert ours == twin, f"{name}: TensorFlow {ours} but the NumPy twin {twin} under {setting}"
        found[name.strip()] = ours
    assert list(found) == list(STEP_DIGESTS)
    differ = [name for name in STEP_DIGESTS if found[name] != STEP_DIGESTS[name]]
    assert not differ, f"first step that differs under {setting}: {differ[0]} ({found[differ[0]]})"
    assert npz == AUGMENTED_SHA256, f"augment's bytes under {setting}: {npz}"
