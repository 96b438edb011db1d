"""Evaluate stage: metrics equal scikit-learn's, stable JSON, the report, outputs, MLflow runs (its own and the training runs')."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from cifar10.data import dataset
from cifar10.classes import CIFAR10_CLASSES
from cifar10.reporting.comparison import comparison_markdown, markdown_to_html
from cifar10.data.dataset import Dataset
from cifar10.reporting.reference import MODELS, STUDY
from tests.conftest import write_params
from tests.standin_models import pixel_model

CLASSES = list(CIFAR10_CLASSES)
# Each stand-in model reads its prediction from its own pixel, so each has its own known predictions.
PIXEL = {"baseline": (0, 0, 0), "augmented": (0, 1, 0), "transfer": (0, 2, 0)}
PRF_KEYS = {"precision", "recall", "f1"}


def with_predictions(ds: Dataset, preds: dict[str, np.ndarray]) -> Dataset:
    """A copy of `ds` whose stand-in-model pixels hold the given predicted labels."""
    x = ds.x.copy()
    for name, p in preds.items():
        r, c, ch = PIXEL[name]
        x[:, r, c, ch] = p
    return Dataset(x, ds.y, ds.classes)


def known_predictions(y: np.ndarray, seed: int) -> np.ndarray:
    """Mostly right, with cat and dog often wrong, so per-class figures differ from class to class."""
    rng = np.random.default_rng(seed)
    pred = np.where(rng.random(len(y)) < 0.7, y, rng.integers(0, 10, len(y)))
    cats_dogs = np.isin(y, [3, 5])
    pred[cats_dogs & (rng.random(len(y)) < 0.5)] = 6
    return pred


def test_metrics_agree_with_sklearn(tiny_test):
    from cifar10.reporting.scoring import score_model

    pred = known_predictions(tiny_test.y, seed=0)
    ds = with_predictions(tiny_test, {"baseline": pred})
    result = score_model(pixel_model(PIXEL["baseline"]), ds.x, ds.y, CLASSES, batch_size=7)

    np.testing.assert_array_equal(result["y_pred"], pred)
    m = result["metrics"]
    assert m["accuracy"] == pytest.approx(accuracy_score(ds.y, pred))
    p, r, f, s = precision_recall_fscore_support(ds.y, pred, labels=range(10), zero_division=0)
    for i, cls in enumerate(CLASSES):
        assert m["per_class"][cls] == pytest.approx({"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]})
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(ds.y, pred, average=avg, zero_division=0)
        assert m[avg] == pytest.approx({"precision": p, "recall": r, "f1": f})
    np.testing.assert_array_equal(result["confusion"], confusion_matrix(ds.y, pred, labels=range(10)))
    assert result["flat"]["test_recall_cat"] == m["per_class"]["cat"]["recall"]


def test_metrics_json_shape_is_stable():
    from cifar10.reporting.scoring import score as evaluate_predictions

    y = np.repeat(np.arange(10), 2)
    m = evaluate_predictions(y, np.roll(y, 1), CLASSES)["metrics"]
    assert set(m) == {"test_images", "accuracy", "macro", "weighted", "per_class"}
    assert set(m["macro"]) == set(m["weighted"]) == PRF_KEYS
    assert list(m["per_class"]) == CLASSES
    assert all(set(v) == PRF_KEYS | {"support"} for v in m["per_class"].values())
    json.dumps(m)  # plain JSON types only


def test_report_has_every_model_class_and_reference():
    from cifar10.reporting.scoring import score as evaluate_predictions

    y = np.repeat(np.arange(10), 5)
    results = {
        name: evaluate_predictions(y, known_predictions(y, seed), CLASSES)["metrics"]
        for seed, name in enumerate(MODELS)
    }
    md = comparison_markdown(results, STUDY, CLASSES, ["cat", "dog"], len(y), {"transfer": "random weights"})
    for name in MODELS:
        assert name in md
    for cls in CLASSES:
        assert f"| {cls} " in md
    assert "study" in md and "Δ" in md and "## Minority classes" in md
    assert "0.27 → 0.49 → 0.73" in md  # the study's cat recall chain
    assert "transfer †" in md and "random weights" in md
    assert "not comparable" in md  # 50 test images, not 10,000
    # The study's baseline cat recall and its difference from ours sit in the recall table.
    cat_row = next(line for line in md.split("## Recall per class")[1].splitlines() if line.startswith("| cat "))
    ours = results["baseline"]["per_class"]["cat"]["recall"]
    assert f"{ours:.3f} | 0.27 | {ours - 0.27:+.2f}" in " ".join(cat_row.split())
    # Tables are aligned: every line of a table has the same length.
    table = md.split("## Summary")[1].split("##")[0].strip().splitlines()
    assert len({len(line) for line in table}) == 1
    page = markdown_to_html(md)
    assert page.count("<table>") == 5 and "<td>cat</td>" in page


@pytest.fixture
def placed(workdir, tiny_test):
    """The workdir with test data carrying known predictions and three saved stand-in models."""
    preds = {name: known_predictions(tiny_test.y, seed) for seed, name in enumerate(MODELS)}
    dataset.save(dataset.RAW_TEST, with_predictions(tiny_test, preds))
    Path("models").mkdir()
    for name in MODELS:
        pixel_model(PIXEL[name]).save(f"models/{name}.keras")
    return preds


def evaluate_all(models=MODELS) -> None:
    from stages import compare, evaluate

    for name in models:
        evaluate.main(["--model", name])
    compare.main()


def _runs(uri: str, name: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return client, client.search_runs([e.experiment_id for e in client.search_experiments()],
                                      f"attributes.run_name = '{name}'")


def test_each_model_scored_once_then_compared(placed, tiny_test, mlflow_uri):
    evaluate_all()
    for name, pred in placed.items():
        full = json.loads(Path(f"reports/per_class/{name}.json").read_text())
        assert full["accuracy"] == pytest.approx(accuracy_score(tiny_test.y, pred)) and full["model"] == name
        rows = Path(f"plots/confusion/{name}.csv").read_text().splitlines()
        assert rows[0] == "actual,predicted" and len(rows) == len(tiny_test.y) + 1
        assert rows[1] == f"{CLASSES[tiny_test.y[0]]},{CLASSES[pred[0]]}"
        assert Path(f"plots/confusion/{name}.png").stat().st_size > 1000
    summary = json.loads(Path("metrics/summary.json").read_text())
    assert list(summary) == ["base", "aug", "xfer"]  # short: DVC's tables put all twelve in one row
    for name, short in zip(placed, summary):
        m, full = summary[short], json.loads(Path(f"reports/per_class/{name}.json").read_text())
        assert list(m) == ["acc", "f1", "cat", "dog"]
        assert m["acc"] == pytest.approx(full["accuracy"], abs=1e-4) and m["f1"] == pytest.approx(full["macro"]["f1"], abs=1e-4)
        assert m["dog"] == pytest.approx(full["per_class"]["dog"]["recall"], abs=1e-4)
    assert "## Minority classes" in Path("reports/comparison.md").read_text()
    assert Path("reports/comparison.html").read_text().startswith("<!doctype html>")

    client, (run,) = _runs(mlflow_uri, "evaluate@augmented")
    assert run.info.status == "FINISHED" and run.data.tags["model"] == "augmented"
    assert run.data.metrics["test_accuracy"] == pytest.approx(accuracy_score(tiny_test.y, placed["augmented"]))
    assert {"test_recall_cat", "test_f1_dog", "test_macro_f1"} <= set(run.data.metrics)
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["data/raw/test"]
    arts = {a.path for d in ("confusion", "metrics") for a in client.list_artifacts(run.info.run_id, d)}
    assert {"confusion/augmented.png", "metrics/augmented.json"} <= arts
    client, (compared,) = _runs(mlflow_uri, "compare")
    assert {"baseline_test_macro_f1", "transfer_test_accuracy"} <= set(compared.data.metrics)
    # The execution's parent run carries every model's headline figures, as the DVC metrics hold them.
    parent = client.get_run(compared.data.tags["mlflow.parentRunId"]).data
    expected = {f"{name}_{metric}": summary[short][key] for name, short in zip(placed, summary)
                for key, metric in (("acc", "test_accuracy"), ("f1", "test_macro_f1"), ("cat", "test_recall_cat"),
                                    ("dog", "test_recall_dog"))}
    assert parent.metrics == expected and len(expected) == 12
    assert parent.params["evaluate.models"] == '["baseline", "augmented", "transfer"]'
    assert {"report/comparison.md", "report/comparison.html"} <= {a.path for a in client.list_artifacts(
        compared.info.run_id, "report")}


def test_subset_replaces_stale_outputs(placed, tiny_params):
    evaluate_all()
    tiny_params["evaluate"]["models"] = ["augmented"]
    write_params(Path.cwd(), tiny_params)
    evaluate_all(["augmented"])
    assert list(json.loads(Path("metrics/summary.json").read_text())) == ["aug"]
    md = Path("reports/comparison.md").read_text()
    assert "augmented" in md and "baseline" not in md


def test_missing_model_names_the_stage(placed, capsys):
    from stages import evaluate

    Path("models/transfer.keras").unlink()
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["--model", "transfer"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: models/transfer.keras not found: run `dvc repro transfer` first"
    assert not Path("reports").exists()


def test_compare_without_an_evaluation_names_the_stage(placed, capsys):
    from stages import compare

    with pytest.raises(SystemExit):
        compare.main()
    err = capsys.readouterr().err.strip()
    assert err == "error: reports/per_class/baseline.json not found: run `dvc repro evaluate@baseline` first"


def test_unreadable_model_is_one_line(placed, capsys):
    from stages import evaluate

    Path("models/baseline.keras").write_text("not a model")
    with pytest.raises(SystemExit):
        evaluate.main(["--model", "baseline"])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after MLflow's store set-up lines
    assert err == "error: models/baseline.keras: cannot load a Keras model (not a .keras zip archive)"
    assert not Path("reports").exists()


def _training_run(client, experiment_id: str, stage: str, model_file: Path | None, **params) -> str:
    """A finished run of `stage` that, like a real training run, names the model it saved by its hash."""
    from cifar10.tracking.links import MODEL_DIGEST_TAG, model_digest

    tags = {"stage": stage, **({MODEL_DIGEST_TAG: model_digest(model_file)} if model_file else {})}
    run = client.create_run(experiment_id, run_name=stage, tags=tags)
    for k, v in params.items():
        client.log_param(run.info.run_id, k, v)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def test_test_metrics_land_on_the_run_that_saved_each_model(placed, tiny_test, tiny_params, mlflow_uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.create_experiment(tiny_params["tracking"]["experiment"])
    trained = {name: _training_run(client, exp, stage, Path(f"models/{name}.keras"))
               for name, stage in [("baseline", "train-baseline"), ("augmented", "train-augmented")]}
    trained["transfer"] = _training_run(client, exp, "transfer", Path("models/transfer.keras"),
                                        **{"transfer.weights": "none"})
    later = _training_run(client, exp, "train-baseline", None)  # a later run that saved other bytes
    evaluate_all()

    for name, run_id in trained.items():
        (ev,) = client.search_runs([exp], f"attributes.run_name = 'evaluate@{name}'")
        assert ev.data.tags["evaluated.run_id"] == run_id
        metrics = client.get_run(run_id).data.metrics
        assert metrics["test_accuracy"] == pytest.approx(accuracy_score(tiny_test.y, placed[name]))
        assert metrics["test_recall_cat"] == ev.data.metrics["test_recall_cat"]
        assert {"test_report.json", "confusion_matrix.png"} <= {a.path for a in client.list_artifacts(run_id)}
    assert "test_accuracy" not in client.get_run(later).data.metrics
    md = Path("reports/comparison.md").read_text()
    assert "transfer †" in md and "random weights" in md and trained["baseline"] in md
