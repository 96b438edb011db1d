"""`make exps`: which columns of `dvc exp show` it keeps (the table itself: tests/test_demo.py, on real DVC)."""
from __future__ import annotations

import re

import pytest

from scripts.exps import columns, keep_pattern, main


def _row(params: dict, metrics: dict | None) -> dict:
    """One row's data as `dvc exp show --json` gives it; a metrics file DVC could not read has an error."""
    files = {"metrics/summary.json": {"data": metrics} if metrics else {"error": {"type": "FileNotFoundError"}}}
    return {"params": {"params.yaml": {"data": params}}, "metrics": files}


def test_params_differ_only_among_the_rows_with_results():
    defaults = {"train": {"epochs": 50, "optimizer": {"name": "adam"}, "filters": [32, 64]}}
    demo = {"train": {"epochs": 3, "optimizer": {"name": "adam"}, "filters": [32, 64]}}
    sgd = {"train": {"epochs": 3, "optimizer": {"name": "sgd"}, "filters": [32, 64]}}
    figures = {"base": {"acc": 0.3, "cat": 0.0}, "xfer": {"acc": 0.7, "cat": 0.6}}
    shown = [
        {"rev": "workspace", "data": _row(sgd, figures)},
        {"rev": "abc", "name": "main", "data": _row(defaults, None),  # the commit: no dvc.lock, no results
         "experiments": [{"name": "demo-sgd", "revs": [{"rev": "d2", "data": _row(sgd, figures)}]},
                         {"name": "quick-demo", "revs": [{"rev": "fb", "data": _row(demo, figures)}]}]},
    ]
    differing, metrics = columns(shown)
    assert differing == ["train.optimizer.name"]  # not train.epochs: only the commit without results differs
    assert metrics == ["base.acc", "base.cat", "xfer.acc", "xfer.cat"]  # all of them, changed or not
    shown[0]["data"] = _row(demo | {"train": {**demo["train"], "filters": [16, 64]}}, figures)
    assert columns(shown)[0] == ["train.optimizer.name", "train.filters"]


def test_the_keep_pattern_matches_exactly_the_named_columns():
    pattern = re.compile(keep_pattern(["base.acc", "train.optimizer.name"]))
    kept = [c for c in ("Experiment", "base.acc", "metrics/summary.json:base.acc", "train.optimizer.name",
                        "base.accuracy", "xbase.acc", "train.optimizer.name_x", "Created", "cifar10/paths.py")
            if pattern.match(c)]
    assert kept == ["Experiment", "base.acc", "metrics/summary.json:base.acc", "train.optimizer.name"]


def test_a_negative_width_is_refused_in_one_line_before_dvc_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a DVC repository: DVC would fail differently
    with pytest.raises(SystemExit) as stopped:
        main(["--width", "-1"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("--width: a number of characters, or 0 for no limit (got -1)")
