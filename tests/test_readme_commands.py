"""The README's `dvc exp run -S` lines are real: each one the README offers to run passes the params
schema, and each rejected one it shows prints the error line the README shows under it."""
from __future__ import annotations

import copy
import re
import shlex

import pytest
import yaml

from cifar10.errors import PipelineError
from cifar10.schema import parse_params
from tests.conftest import REPO, committed_params


def _overrides(command: str) -> list[tuple[str, object]]:
    """(dotted key, value) of each `-S key=value`, the value read as YAML, as DVC reads it."""
    words = shlex.split(command, comments=True)
    return [(w.split("=", 1)[0], yaml.safe_load(w.split("=", 1)[1]))
            for flag, w in zip(words, words[1:]) if flag == "-S"]


def _with(overrides: list[tuple[str, object]]) -> dict:
    params = copy.deepcopy(committed_params())
    for key, value in overrides:
        *sections, last = key.split(".")
        node = params
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = value
    return params


def _blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced block in the README."""
    text = (REPO / "README.md").read_text()
    return re.findall(r"^ *```(\w*)\n(.*?)^ *```", text, flags=re.M | re.S)


def _offered() -> list[str]:
    """The `dvc exp run` commands of the README's bash blocks, continuation lines joined."""
    commands = []
    for lang, body in _blocks():
        if lang == "bash":
            joined = re.sub(r"\\\n\s*", " ", body)
            commands += [line.strip() for line in joined.splitlines() if line.strip().startswith("dvc exp run")]
    return commands


def _refused() -> list[tuple[str, str]]:
    """(command, the error line the README prints under it) of the README's `$ dvc exp run` transcripts."""
    pairs = []
    for _, body in _blocks():
        lines = body.splitlines()
        pairs += [(line[2:], nxt.removeprefix("error: ")) for line, nxt in zip(lines, lines[1:])
                  if line.startswith("$ dvc exp run") and nxt.startswith("error: ")]
    return pairs


def test_the_readme_offers_its_experiments_and_shows_refusals():
    offered = _offered()
    assert len(offered) >= 6 and any("train.logit_adjustment=validation" in c for c in offered)
    assert len(_refused()) >= 2


@pytest.mark.parametrize("command", _offered())
def test_every_experiment_the_readme_offers_passes_the_schema(command):
    parse_params(_with(_overrides(command)), "params.yaml")


@pytest.mark.parametrize("command, shown", _refused())
def test_every_refusal_the_readme_shows_is_the_schemas_own_line(command, shown):
    with pytest.raises(PipelineError) as refused:
        parse_params(_with(_overrides(command)), "params.yaml")
    assert str(refused.value) == shown
