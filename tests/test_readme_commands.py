"""The commands the README and docs/ show are real: each `dvc exp run -S` line they offer passes the params
schema, each refusal they show is the schema's own line, every `make` target exists and plans its commands
(`make -n`), and every other dvc or python command they show answers its `--help`."""
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


PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced block in the README and the docs/ pages."""
    blocks = []
    for page in PAGES:
        blocks += re.findall(r"^ *```(\w*)\n(.*?)^ *```", page.read_text(), flags=re.M | re.S)
    return blocks


def _commands() -> list[str]:
    """Every command line of the bash blocks, continuation lines joined, comments and prompts dropped."""
    commands = []
    for lang, body in _blocks():
        if lang == "bash":
            joined = re.sub(r"\\\n\s*", " ", body)
            commands += [line.strip() for line in joined.splitlines() if line.strip() and not line.strip()[0] == "#"]
    return commands


def _offered() -> list[str]:
    """The `dvc exp run` commands of the bash blocks, as `dvc exp run ...` whatever the dvc path."""
    return [re.sub(r"^(\.venv/bin/)?", "", c) for c in _commands() if re.match(r"(\.venv/bin/)?dvc exp run", c)]


def _refused() -> list[tuple[str, str]]:
    """(command, the error line the README prints under it) of the README's `$ dvc exp run` transcripts."""
    pairs = []
    for _, body in _blocks():
        lines = body.splitlines()
        pairs += [(line[2:], nxt.removeprefix("error: ")) for line, nxt in zip(lines, lines[1:])
                  if line.startswith("$ dvc exp run") and nxt.startswith("error: ")]
    return pairs


def test_the_readme_offers_its_experiments_and_shows_refusals():
    readme = (REPO / "README.md").read_text()
    assert re.search(r"^\.venv/bin/dvc exp run", readme, flags=re.M), "the README's runs must work without an activated venv"
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


NETWORK = ("curl", "pip")  # need the internet: shown for a connected machine, not run here


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    commands = []
    for lang, body in re.findall(r"^ *```(\w*)\n(.*?)^ *```", text, flags=re.M | re.S):
        if lang == "bash":
            joined = re.sub(r"\\\n\s*", " ", body)
            commands += [line.split(" #")[0].strip() for line in joined.splitlines()]
    return [c for c in commands if c and not c.startswith("#")]


@pytest.mark.parametrize("command", _readme_commands())
def test_every_readme_command_runs_as_written_on_a_clone(command):
    """`make` targets plan their commands (`make -n`), dvc commands exist, `dvc exp run` passes the schema."""
    import os
    import subprocess

    words = shlex.split(command)
    env = {}
    while re.match(r"^[A-Z_]+=", words[0]):  # leading VAR=value assignments
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if words[0] in NETWORK:
        return
    if words[0] == "make":
        proc = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, **env})
        assert proc.returncode == 0, f"{command}: {proc.stderr}"
    elif words[:3] == [".venv/bin/dvc", "exp", "run"]:
        parse_params(_with(_overrides(command)), "params.yaml")
    elif words[0] == ".venv/bin/dvc":
        subcommand = [w for w in words[1:] if not w.startswith("-")][:2]
        proc = subprocess.run([str(REPO / ".venv" / "bin" / "dvc"), *subcommand, "--help"], cwd=REPO,
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{command}: not a dvc command ({proc.stderr.strip()[-200:]})"
    else:
        raise AssertionError(f"{command}: a README command this test does not know how to check")


def test_the_readme_is_a_few_screens_and_every_link_resolves():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; reference material belongs in docs/"
    long = [i + 1 for i, line in enumerate(lines) if len(line) > 110]
    assert not long, f"README.md lines over 110 characters: {long}"
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
