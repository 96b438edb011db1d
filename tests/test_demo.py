"""`make demo` as a new user runs it: the whole DAG as the quick-demo experiment, the workspace untouched."""
from __future__ import annotations

import json
import re

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, run
from tests.test_pipeline import STAGES


def demo_commands(source: str) -> list[str]:
    """The shell commands of the Makefile's demo recipe (after its install prerequisite)."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    recipe = re.search(r"^demo: install\n((?:\t.*\n)+)", text, re.M).group(1)
    return [line.strip().replace("$(SOURCE)", source) for line in recipe.splitlines()]


@pytest.mark.slow
def test_demo_runs_the_dag_as_an_experiment_and_leaves_params_yaml_alone(pipeline_repo, served_release, monkeypatch):
    repo = pipeline_repo
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the project's own store, as users run it
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "tiny params"], repo)
    before = (repo / "params.yaml").read_bytes()
    for command in demo_commands(served_release[0]):
        run(["bash", "-c", command], repo)
    assert (repo / "params.yaml").read_bytes() == before
    assert run(["git", "status", "--porcelain", "params.yaml", "dvc.yaml"], repo).stdout == ""

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    demo = [e for commit in shown for e in commit.get("experiments") or [] if e.get("name") == "quick-demo"]
    assert demo, "the results stay reachable as the quick-demo experiment"
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cifar10-imbalance")
    runs = client.search_runs([exp.experiment_id], "tags.dvc_exp_name = 'quick-demo'")
    assert {r.data.tags["stage"] for r in runs if "stage" in r.data.tags} == STAGES
    transfer = next(r for r in runs if r.data.tags.get("stage") == "transfer")
    assert transfer.data.tags["transfer_learning"] == "true" and transfer.data.tags["backbone"] == "EfficientNet-Lite0"
