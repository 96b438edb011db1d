"""The params contract: params.yaml validates, documents every key, and bad values fail with the key path."""
from __future__ import annotations

import re

import pytest
import yaml

from cifar10.errors import PipelineError
from cifar10.schema import Params, load_params, parse_params
from tests.conftest import REPO, committed_params


def committed_text() -> str:
    import subprocess

    proc = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=REPO, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else (REPO / "params.yaml").read_text()


def _keys(node, prefix=""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _keys(value, f"{path}.")
        yield path


def test_project_params_are_valid_and_match_the_schema_defaults(tmp_path):
    (tmp_path / "params.yaml").write_text(committed_text())
    params = load_params(tmp_path / "params.yaml")
    assert params.imbalance.classes == ["cat", "dog"]
    assert params.imbalance.keep_fraction == 0.1
    assert params.download.checksum == "md5:c32a1d4ab5d03f1284b67883e8d87530"
    assert params.tracking.experiment
    # params.yaml spells out every key, so what users read is what runs.
    raw = committed_params()
    assert set(_keys(raw)) == set(_keys(Params().model_dump()))
    assert params == Params()


def test_every_key_in_params_yaml_has_a_comment():
    lines = committed_text().splitlines()
    for number, line in enumerate(lines, 1):
        if re.match(r"^\s+[a-z_]+:\s*\S", line):  # a leaf key with a value
            above = lines[number - 2].strip() if number > 1 else ""
            assert "#" in line or above.startswith("#"), f"params.yaml line {number} has no comment: {line.strip()}"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"imbalance": {"keep_fraction": 1.5}}, r"^params\.yaml: imbalance\.keep_fraction: .*less than or equal to 1 .*1\.5"),
        ({"imbalance": {"keep_fraction": 0}}, r"imbalance\.keep_fraction: .*greater than 0"),
        ({"imbalance": {"clases": ["cat"]}}, r"imbalance\.clases: unknown key; allowed keys here: classes, keep_fraction"),
        ({"trian": {}}, r"^params\.yaml: trian: unknown key; allowed keys here: base, tracking"),
        ({"imbalance": {"classes": ["kat"]}}, r"imbalance\.classes\.0: unknown class 'kat'; valid classes: airplane"),
        ({"imbalance": {"classes": ["cat", "cat"]}}, r"imbalance\.classes: duplicate entries"),
        ({"base": {"seed": "42"}}, r"base\.seed: Input should be a valid integer \(got '42'\)"),
        ({"base": {"deterministic": "yes"}}, r"base\.deterministic: Input should be a valid boolean"),
        ({"train": {"model": {"filters": [32, -1]}}}, None),
        ({"augment": {"zoom": [1.1, 0.9]}}, r"augment\.zoom: inverted range: low 1\.1 > high 0\.9"),
        ({"augment": {"brightness": [0, 1.1]}}, r"augment\.brightness: must be > 0"),
        ({"augment": {"target": 0}}, r"augment\.target: Input should be 'max' or Input should be greater than or equal to 1 \(got 0\)"),
        ({"download": {"checksum": "md5:1234"}}, r"download\.checksum: 'md5:1234' is not a checksum"),
        ({"tracking": {"experiment": ""}}, r"tracking\.experiment: .*at least 1 character"),
        ({"train": {"optimizer": {"name": "lamb"}}}, r"train\.optimizer\.name: Input should be 'adam', 'adamw', 'sgd', 'rmsprop' or 'adadelta'"),
        # the training sets are named by their folders under data/ (no longer full for data/raw)
        ({"transfer": {"train_set": "full"}},
         r"^params\.yaml: transfer\.train_set: Input should be 'raw', 'imbalanced' or 'augmented' \(got 'full'\)$"),
    ],
)
def test_bad_values_name_the_key_path_on_one_line(override, expected):
    with pytest.raises(PipelineError) as info:
        parse_params(override)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: ")
    if expected:
        assert re.search(expected, message), message


def test_several_problems_are_counted_not_listed():
    with pytest.raises(PipelineError, match=r"\(and 1 more problem\)$"):
        parse_params({"base": {"seed": -1}, "imbalance": {"keep_fraction": 2}})


def test_missing_file_and_broken_yaml(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        load_params(tmp_path / "params.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("base:\n  seed: [1\n")
    with pytest.raises(PipelineError, match=r"not valid YAML at line \d+"):
        load_params(broken)
    broken.write_text("- just\n- a list\n")
    with pytest.raises(PipelineError, match="expected a mapping of sections"):
        load_params(broken)


def test_dvc_yaml_params_name_real_keys():
    """A typo in dvc.yaml's params lists would make DVC track a key that does not exist."""
    valid = set(_keys(Params().model_dump()))
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for key in stage.get("params", []):
            if key == {"params.yaml": None}:  # the whole file (compare records it on the parent run)
                continue
            assert isinstance(key, str) and key in valid, f"dvc.yaml stage {name}: unknown params key {key}"
