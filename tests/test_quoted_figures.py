"""Figures the README and docs/ quote from the generated pages (RESULTS, STUDIES, BENCHMARKS, TRANSFER)
cannot go stale: a paragraph that names such a page holds only figures that page holds (to the
precision quoted), and comments that name a project path name one that exists."""
from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

GENERATED = ("RESULTS.md", "STUDIES.md", "BENCHMARKS.md", "TRANSFER.md")
# A figure: a decimal number, or a whole number of 4+ digits (with or without thousands commas).
FIGURE = re.compile(r"(?<![\w.\-/])\d[\d,]*\.\d+(?![\w.])|(?<![\w.\-/])\d{1,3}(?:,\d{3})+(?![\w.])|(?<![\w.\-/])\d{4,}(?![\w.])")
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _found(figure: str, text: str) -> bool:
    """The figure as written, or a figure with more decimals that rounds to it."""
    if re.search(rf"(?<![\d.]){re.escape(figure)}(?!\d)", text):
        return True
    if "." not in figure:
        return False
    places, value = len(figure.split(".")[1]), float(figure.replace(",", ""))
    return any(round(float(m.replace(",", "")), places) == value
               for m in re.findall(rf"\d[\d,]*\.\d{{{places + 1},}}", text))


def _quoting_paragraphs():
    for page in PAGES:
        # a paragraph: text between blank lines, each list item on its own
        for paragraph in re.split(r"\n\s*\n|\n(?=\s*- )", page.read_text()):
            if paragraph.lstrip().startswith(("```", "<!--")):
                continue  # code, and blocks a generator writes (checked by their own tests)
            cited = [g for g in GENERATED if g in paragraph]
            if cited and FIGURE.search(paragraph):
                yield pytest.param(page, cited, paragraph, id=f"{page.name}:{paragraph[:40]}")


@pytest.mark.parametrize("page, cited, paragraph", list(_quoting_paragraphs()))
def test_a_figure_quoted_beside_a_generated_page_is_in_that_page(page, cited, paragraph):
    texts = [(REPO / g).read_text() for g in cited]
    missing = [f for f in FIGURE.findall(paragraph) if not any(_found(f, t) for t in texts)]
    assert not missing, f"{page.name} quotes {missing} beside {', '.join(cited)}, which do not hold them"


def test_the_check_finds_a_stale_figure():
    assert _found("0.874", "test accuracy 0.8737")
    assert not _found("0.874", "test accuracy 0.8761")
    assert not _found("2,000", "1,200 images/s")


def test_comments_that_name_a_project_path_name_one_that_exists():
    """params.yaml's and the Makefile's comments point readers at files: those files exist."""
    for name in ("params.yaml", "Makefile", "dvc.yaml"):
        for line in (REPO / name).read_text().splitlines():
            comment = line.partition("#")[2]
            for path in re.findall(r"\b((?:cifar10|stages|scripts|benchmarks|writeup|docs|tests)/[\w./]*\w)", comment):
                assert (REPO / path).exists(), f"{name}: a comment names {path}, which does not exist"
