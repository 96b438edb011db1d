"""The whole DAG as users run it: `dvc repro` in a git + DVC repo, a real MLflow server, a DVC remote."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from cifar10.tracking.provenance import cpu_model
from cifar10.training.precision import resolve
from tests.conftest import REPO, run, write_params
from tests.servers import mlflow_server

STAGES = {
    "download", "imbalance-subsample", "augment", "train-baseline", "train-augmented",
    "fetch-weights", "transfer", "evaluate@baseline", "evaluate@augmented", "evaluate@frozen", "evaluate@transfer",
    "compare",
}
TRAINED = ("train-baseline", "train-augmented", "transfer")
MODELS = ("baseline", "augmented", "frozen", "transfer")
OUTPUTS = (
    "data/raw/train.npz", "data/raw/test.npz", "data/imbalanced/train.npz", "data/augmented/train.npz",
    "models/baseline.keras", "models/augmented.keras", "models/frozen.keras", "models/transfer.keras",
    "metrics/summary.json",
    "plots/baseline/history.csv", "plots/augmented/history.csv", "plots/transfer/history.csv",
    "plots/augment/preview.png", "reports/comparison.md", "reports/per_class/baseline.json",
)


def ran(proc) -> set[str]:
    """The stages a `dvc repro` ran (not those it restored or skipped)."""
    return set(re.findall(r"Running stage '([^']+)'", proc.stdout))


def digests(root: Path, paths) -> dict[str, str]:
    return {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in paths}


@pytest.mark.slow
@pytest.mark.integration
def test_whole_dag_with_a_tracking_server_cache_partial_rerun_and_remote(pipeline_repo, tmp_path, mlflow_template,
                                                                       tiny_params, served_release, http_server):
    repo = pipeline_repo
    shutil.copy(mlflow_template, tmp_path / "server.db")
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts") as url:
        env = {"MLFLOW_TRACKING_URI": url}
        first = run(["dvc", "repro"], repo, env)
        assert ran(first) == STAGES
        for path in OUTPUTS:
            assert (repo / path).is_file(), path

        client = MlflowClient(url)
        exp = client.get_experiment_by_name("cifar10-imbalance")
        runs = client.search_runs([exp.experiment_id], "tags.stage != ''")
        by_stage = {r.data.tags["stage"]: r for r in runs}
        assert set(by_stage) == STAGES and len(runs) == len(STAGES)
        parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
        assert len(parents) == 1, "one dvc repro is one group in the UI"
        for stage, r in by_stage.items():
            assert r.info.status == "FINISHED", stage
            assert r.data.params, f"{stage} logged no params"
        for stage in TRAINED:
            r = by_stage[stage]
            history = client.get_metric_history(r.info.run_id, "val_accuracy")
            assert [m.step for m in history][:1] == [1], stage
            assert {"test_accuracy", "test_macro_f1", "test_recall_cat", "test_f1_dog", "test_accuracy_low"} <= set(
                r.data.metrics)
            assert client.list_artifacts(r.info.run_id), f"{stage} logged no artifacts"
        transfer = by_stage["transfer"].data.tags
        assert transfer["transfer_learning"] == "true" and transfer["backbone"] == "EfficientNet-Lite0"
        # The transfer stage's run also carries its frozen model's test figures, under names of their own.
        assert {"frozen_test_accuracy", "frozen_test_recall_cat", "frozen_test_accuracy_high"} <= set(
            by_stage["transfer"].data.metrics)
        for model in MODELS:
            assert "test_recall_cat" in by_stage[f"evaluate@{model}"].data.metrics
        compare = by_stage["compare"]
        assert {f"{m}_test_macro_f1" for m in MODELS} <= set(compare.data.metrics)
        versions = client.search_model_versions("name = 'cifar10-classifier'")
        assert sorted(v.tags["variant"] for v in versions) == sorted(MODELS)
        assert all("test_accuracy" in v.tags for v in versions), "each evaluation tagged its model's version"
        local = client.download_artifacts(compare.info.run_id, "", str(tmp_path / "fetched"))
        assert any(p.name == "comparison.md" for p in Path(local).rglob("*"))

        # RESULTS.md is written from the run's own figures.
        results = tmp_path / "RESULTS.md"
        run([sys.executable, "-m", "scripts.results", "--project", str(repo), "--output", str(results)], REPO, env)
        text = results.read_text()
        for stage in STAGES:
            assert f"| {stage} | " in text, stage
        baseline, tuned = by_stage["train-baseline"].data.metrics, by_stage["transfer"].data.metrics
        assert (f"test accuracy {baseline['test_accuracy']:.3f} [{baseline['test_accuracy_low']:.3f}, "
                f"{baseline['test_accuracy_high']:.3f}]") in text
        assert (f"test accuracy frozen {tuned['frozen_test_accuracy']:.3f} [{tuned['frozen_test_accuracy_low']:.3f}, "
                f"{tuned['frozen_test_accuracy_high']:.3f}], fine-tuned {tuned['test_accuracy']:.3f} [") in text
        # The frozen model stands beside the study's transfer figures; the fine-tuned default beyond them.
        assert "> **Two transfer models.** `frozen` is the study's method" in text
        assert "then the top 1 of 16 blocks fine-tuned" in text and "| transfer ‡ |" in text
        assert "| frozen † | " in text and "### Recall per class" in text
        assert text.count("percentile bootstrap over the test images") == 1, "the method is named once"
        assert f"| `download.source` | `{tiny_params['download']['source']}` | `{served_release[0]}` |" in text
        assert "are EfficientNet-Lite0, not the study's EfficientNet-B0" in text
        assert "not transfer learning" not in text
        # the CPU the stages ran on and the precision each computed in (auto, resolved on that CPU)
        assert f"- CPU the stages ran on (their runs' `cpu` tag): {cpu_model()}" in text
        assert re.search(rf"\| train-baseline \| [^|]+ \| [^|]+ \| {resolve('auto')[0]} \|", text)
        transfer_precision = f"{resolve('auto', 'frozen')[0]} / float32".replace("float32 / float32", "float32")
        assert re.search(rf"\| transfer \| [^|]+ \| [^|]+ \| {transfer_precision} \|", text)

        again = run(["dvc", "repro"], repo, env)
        assert ran(again) == set() and "up to date" in again.stdout
        assert http_server.hits("cifar-10-binary.tar.gz") == 1, "a cached download is not fetched again"
        assert not list(repo.glob(".train_backup/*")), "resume state is deleted after a finished training"
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        readers = {stage for stage, entry in lock.items() if any("test.npz" in d["path"] for d in entry["deps"])}
        assert readers == {f"evaluate@{m}" for m in MODELS}, "only evaluate reads the test set"

        # A test-set-only change: the download reruns (its params changed) and writes the same training
        # file bytes, so nothing that trains reruns; only the scorer does.
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["download"]["test_per_class"] = 2
        write_params(repo, params)
        test_only = run(["dvc", "repro"], repo, env)
        assert ran(test_only) == {"download", *(f"evaluate@{m}" for m in MODELS), "compare"}
        assert json.loads((repo / "reports/per_class/baseline.json").read_text())["test_images"] == 20
        fresh = client.get_run(by_stage["train-baseline"].info.run_id).data.metrics
        assert fresh["test_support_cat"] == 2, "evaluate rewrote the training run's test metrics"

        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["augment"]["rotation"] = [0, 10]
        write_params(repo, params)
        partial = run(["dvc", "repro"], repo, env)
        assert ran(partial) == {"augment", "train-augmented", "evaluate@augmented", "compare"}
        # Its parent run is the pipeline's state: every param, and every model's figures, the cached ones' too.
        (state,) = client.search_runs([exp.experiment_id], "tags.`pipeline.parent` = 'true'",
                                      order_by=["attributes.start_time DESC"], max_results=1)
        assert state.data.params["augment.rotation"] == "[0.0, 10.0]" and len(state.data.params) > 70
        assert {f"{m}_test_{k}" for m in MODELS for k in ("accuracy", "macro_f1", "recall_cat", "recall_dog")
                } == set(state.data.metrics)
        assert state.data.tags["backbone"] == "efficientnet_lite0"
        assert {state.data.tags["precision.baseline"], state.data.tags["precision.augmented"]} <= {
            "float32", "mixed_bfloat16"}

    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    (workspace,) = metrics.values()
    summary = workspace["data"]["metrics/summary.json"]["data"]
    short = ("base", "aug", "frz", "xfer")  # DVC's tables name a column <model>.<key> and sixteen share a row
    assert {model: set(v) for model, v in summary.items()} == {m: {"acc", "f1", "cat", "dog"} for m in short}
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    images = [p for p in plots if p.endswith(".png")]
    assert sorted(images) == sorted(set(images)) and "plots/augment/preview.png" in images
    assert {"Confusion matrices", "Accuracy per epoch", "Loss per epoch"} <= set(plots)

    # Team setup: everything DVC tracks goes to a remote and comes back byte for byte.
    cached = [p for p in OUTPUTS if not p.startswith(("metrics/", "plots/", "reports/"))]
    before = digests(repo, cached)
    run(["dvc", "remote", "add", "-d", "store", str(tmp_path / "remote")], repo)
    run(["dvc", "push", "--run-cache"], repo)
    served_by_the_run_cache(repo, tmp_path / "remote", tmp_path / "other-cpu", before)
    for folder in ("data", "models", ".dvc/cache"):
        shutil.rmtree(repo / folder)
    run(["dvc", "pull"], repo)
    assert digests(repo, cached) == before
    assert "up to date" in run(["dvc", "status"], repo).stdout


def served_by_the_run_cache(repo: Path, remote: Path, clone: Path, expected: dict[str, str]) -> None:
    """A teammate on another CPU (another oneDNN instruction set) clones the code and params, without
    dvc.lock: every stage comes from the shared remote's run cache, none reruns, and augment rerun on
    that CPU writes the same bytes, so nothing after it goes stale."""
    other_cpu = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    run(["git", "clone", "-q", str(repo), str(clone)], repo)
    shutil.copy(repo / "params.yaml", clone / "params.yaml")
    run(["dvc", "remote", "add", "-d", "store", str(remote)], clone)
    run(["dvc", "fetch", "--run-cache"], clone, other_cpu)
    served = run(["dvc", "repro", "--pull"], clone, other_cpu)
    assert ran(served) == set() and served.stdout.count("is cached - skipping run") == len(STAGES), served.stdout
    assert digests(clone, expected) == expected
    assert ran(run(["dvc", "repro", "--force", "--single-item", "augment"], clone, other_cpu)) == {"augment"}
    assert ran(run(["dvc", "repro"], clone, other_cpu)) == set(), "augment wrote other bytes on another CPU"


def test_results_rows_carry_each_test_accuracy_with_its_interval_and_name_both_transfer_models():
    from cifar10.reporting.intervals import recall_intervals
    from scripts.results import cost_row, transfer_notes

    cost = {"stage_wall_time_s": 60.0, "peak_rss_mb": 900.0}
    logged = {**cost, "test_accuracy": 0.8737, "test_accuracy_low": 0.8671, "test_accuracy_high": 0.8802,
              "test_support_cat": 1000, "test_support_dog": 1000}
    assert cost_row("evaluate@transfer", logged, {}).endswith("| 2,000 test images, accuracy 0.874 [0.867, 0.880] |")
    # A record without the bounds (written before they were logged): resampled from its per-class counts.
    older = {**cost, "test_accuracy": 0.6, "test_support_cat": 10, "test_support_dog": 10, "test_recall_cat": 0.5,
             "test_recall_dog": 0.7}
    expected = recall_intervals({"cat": 10, "dog": 10}, {"cat": 0.5, "dog": 0.7})["accuracy"]
    assert f"accuracy {expected}" in cost_row("evaluate@baseline", older, {}) and expected.low < 0.6 < expected.high

    transfer = {**logged, "embed_seconds": 30.0, "embed_images": 100, "embed_images_per_second": 3.3,
                "head_seconds": 5.0, "fine_tune_seconds": 20.0, "val_accuracy_flip_average": 0.8,
                "frozen_test_accuracy": 0.85, "frozen_test_accuracy_low": 0.84, "frozen_test_accuracy_high": 0.86}
    assert ("fine-tuned validation accuracy 0.8000, test accuracy frozen 0.850 [0.840, 0.860], fine-tuned 0.874 "
            "[0.867, 0.880] |") in cost_row("transfer", transfer, {})

    tuned = " ".join(transfer_notes({"transfer.fine_tune_blocks": "11", "transfer.weights": "imagenet",
                                     "transfer.backbone": "efficientnet_b0"}))
    assert "`frozen` is the study's method" in tuned and "the top 11 of 16 blocks fine-tuned" in tuned
    one = " ".join(transfer_notes({"transfer.fine_tune_blocks": "0", "transfer.weights": "none",
                                   "transfer.backbone": "efficientnet_lite0"}))
    assert "`frozen` and `transfer` are one model" in one and "not transfer learning" in one
    assert "random* weights" in one and "EfficientNet-Lite0" in one
