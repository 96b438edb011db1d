"""BENCHMARKS.md assembly, and the whole-pipeline benchmark's refusal to run a pipeline."""
from __future__ import annotations

import subprocess
import sys

from benchmarks.run import merge, split_sections
from tests.conftest import REPO

OLD = """# Benchmarks

Header text.

## Augment stage

*Measured on 2026-01-01.*

| a | 1 |

## Training stage

### fp32 vs bf16

old training figures
"""


def test_sections_split_on_second_level_headings_only():
    sections = split_sections(OLD)
    assert list(sections) == ["## Augment stage", "## Training stage"]
    assert "### fp32 vs bf16\n\nold training figures" in sections["## Training stage"]
    assert "Header text" not in "".join(sections.values())


def test_rerun_sections_replace_their_namesakes_and_others_are_kept_in_place():
    new = {"## Training stage": "## Training stage\n\nnew figures", "## Whole pipeline": "## Whole pipeline\n\nx"}
    merged = merge(split_sections(OLD), new)
    assert [s.splitlines()[0] for s in merged] == ["## Augment stage", "## Training stage", "## Whole pipeline"]
    assert "| a | 1 |" in merged[0] and merged[1].endswith("new figures")
    assert not any("old training figures" in s for s in merged)


def test_pipeline_benchmark_refuses_a_project_that_is_not_reproduced(dvc_repo):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.pipeline", "--project", str(dvc_repo)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "is not a reproduced project" in proc.stderr
    assert not (dvc_repo / "data").exists(), "it must not have started the pipeline"
