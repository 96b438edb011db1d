"""dvc.yaml as DVC itself reads it: a param picks the transfer stage's training set, and an edit to a
module changes exactly the stages whose command imports it."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from scripts import code_deps
from tests.conftest import run, write_params


def _inputs_of_transfer(repo: Path) -> set[str]:
    """The stages DVC puts directly upstream of transfer: the producers of the files it depends on."""
    dot = run(["dvc", "dag", "--dot", "transfer"], repo).stdout
    return set(re.findall(r'"([^"]+)" -> "transfer"', dot))


def test_the_train_set_param_picks_the_transfer_stages_training_file(dvc_repo, tiny_params):
    assert tiny_params["transfer"]["train_set"] == "raw"
    assert _inputs_of_transfer(dvc_repo) == {"download", "fetch-weights"}
    for train_set, producer in (("imbalanced", "imbalance-subsample"), ("augmented", "augment"), ("raw", "download")):
        tiny_params["transfer"]["train_set"] = train_set
        write_params(dvc_repo, tiny_params)
        assert _inputs_of_transfer(dvc_repo) == {producer, "fetch-weights"}, train_set
        status = run(["dvc", "status", "transfer"], dvc_repo).stdout
        deps = set(re.findall(r"data/\w+/train\.npz", status))
        assert deps == {f"data/{train_set}/train.npz"}, status


@pytest.mark.slow
def test_an_experiment_trains_the_transfer_head_on_the_set_it_names(pipeline_repo, mlflow_uri):
    proc = run(["dvc", "exp", "run", "-S", "transfer.train_set=imbalanced", "transfer"], pipeline_repo)
    ran = set(re.findall(r"Running stage '([^']+)'", proc.stdout))
    assert ran == {"download", "imbalance-subsample", "fetch-weights", "transfer"}
    lock = yaml.safe_load((pipeline_repo / "dvc.lock").read_text())["stages"]
    data = {d["path"] for d in lock["transfer"]["deps"] if d["path"].startswith("data/")}
    assert data == {"data/weights", "data/imbalanced/train.npz"}
    client = MlflowClient(mlflow_uri)
    (transfer,) = client.search_runs([client.get_experiment_by_name("cifar10-imbalance").experiment_id],
                                     "tags.stage = 'transfer'")
    assert transfer.data.tags["train_set"] == "imbalanced"
    assert [i.dataset.name for i in transfer.inputs.dataset_inputs] == ["data/imbalanced/train"]

    # Back to the raw set: a dry run reruns the transfer stage alone (data/raw is already there).
    assert "transfer:" not in run(["dvc", "status", "transfer"], pipeline_repo).stdout
    params = yaml.safe_load((pipeline_repo / "params.yaml").read_text())
    params["transfer"]["train_set"] = "raw"
    write_params(pipeline_repo, params)
    dry = run(["dvc", "repro", "--dry", "transfer"], pipeline_repo)
    assert set(re.findall(r"Running stage '([^']+)'", dry.stdout)) == {"transfer"}


def _placeholders(repo: Path) -> None:
    """Every output and data input of the pipeline as a small file, so `dvc commit` can record a lock."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        stages = list(dvc.index.stages)
    outs = [Path(o.def_path) for s in stages for o in s.outs]
    data = [Path(d.def_path) for s in stages for d in s.deps if d.def_path.split("/")[0] not in code_deps.PACKAGES]
    for path in (*outs, *data):
        target = repo / path
        if target.exists():
            continue
        if path.suffix:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"{path}\n")
        else:
            target.mkdir(parents=True, exist_ok=True)
            (target / "placeholder").write_text(f"{path}\n")


def _importers(stage_deps: dict[str, list[str]], root: Path) -> dict[str, frozenset[str]]:
    """Each project file -> the stages whose code deps include it (a folder dep covers its files)."""
    files = [p.relative_to(root) for pkg in code_deps.PACKAGES for p in (root / pkg).rglob("*.py")
             if "__pycache__" not in p.parts]
    return {str(f): frozenset(stage for stage, deps in stage_deps.items()
                              if any(f == Path(d) or Path(d) in f.parents for d in deps)) for f in files}


@pytest.mark.slow
def test_an_edit_changes_exactly_the_stages_whose_command_imports_the_file(dvc_repo):
    _placeholders(dvc_repo)
    run(["dvc", "commit", "--force", "--quiet"], dvc_repo)
    assert "up to date" in run(["dvc", "status"], dvc_repo).stdout

    expected = code_deps.expected_deps(dvc_repo / "dvc.yaml", dvc_repo)
    models = yaml.safe_load((dvc_repo / "params.yaml").read_text())["evaluate"]["models"]
    instances = {stage: [f"{stage}@{m}" for m in models] if stage == "evaluate" else [stage] for stage in expected}
    importers = _importers(expected, dvc_repo)
    # One file for every distinct set of importing stages, and one no stage imports.
    picks = {stages: file for file, stages in sorted(importers.items())}
    assert frozenset() in picks and len(picks) > 5
    for stages, file in picks.items():
        path = dvc_repo / file
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        changed = set(json.loads(run(["dvc", "status", "--json"], dvc_repo).stdout))
        path.write_text(original)
        assert changed == {i for s in stages for i in instances[s]}, file
    assert "up to date" in run(["dvc", "status"], dvc_repo).stdout


def test_every_output_beside_a_committed_gitignore_is_listed_in_it():
    """DVC appends an output it writes to the .gitignore beside it; where that file is committed, an
    output missing from it leaves a fresh clone's `git status` dirty after the first `dvc repro`."""
    from tests.conftest import REPO

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    outs = [o if isinstance(o, str) else next(iter(o)) for s in stages.values() for o in s.get("outs", [])]
    checked = 0
    for out in (Path(o) for o in outs if "${" not in o):
        ignore = REPO / out.parent / ".gitignore"
        if ignore.is_file():
            checked += 1
            assert f"/{out.name}" in ignore.read_text().split(), f"{out} is missing from {ignore.relative_to(REPO)}"
    assert checked >= 6, "the models/ and data/ outputs were checked"
