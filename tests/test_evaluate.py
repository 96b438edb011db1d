"""Evaluate stage: metrics equal scikit-learn's, stable JSON, the report, outputs, MLflow runs (its own and the training runs')."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from cifar10.data import dataset
from cifar10.classes import CIFAR10_CLASSES
from cifar10.paths import MODELS
from cifar10.reporting.comparison import comparison_markdown, markdown_to_html
from cifar10.reporting.descriptions import about
from cifar10.reporting.intervals import METHOD, confusion_intervals
from cifar10.data.dataset import Dataset
from cifar10.reporting.reference import STUDY
from cifar10.schema import flatten_dict, parse_params
from tests.conftest import default_params, write_params
from tests.standin_models import pixel_model

CLASSES = list(CIFAR10_CLASSES)
# Each stand-in model reads its prediction from its own pixel, so each has its own known predictions.
PIXEL = {"baseline": (0, 0, 0), "augmented": (0, 1, 0), "frozen": (0, 2, 0), "transfer": (0, 3, 0)}
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
    assert set(m) == {"test_images", "accuracy", "macro", "weighted", "per_class", "confusion", "intervals"}
    assert set(m["macro"]) == set(m["weighted"]) == PRF_KEYS
    assert list(m["per_class"]) == CLASSES
    assert all(set(v) == PRF_KEYS | {"support"} for v in m["per_class"].values())
    assert set(m["intervals"]) == {"method", "accuracy", "macro_f1", "recall"} and m["intervals"]["method"] == METHOD
    assert list(m["intervals"]["recall"]) == CLASSES and set(m["intervals"]["accuracy"]) == {"value", "low", "high"}
    json.dumps(m)  # plain JSON types only


def test_intervals_are_the_confusion_matrix_s_bootstrap_in_the_report_and_the_metrics(tiny_test):
    from cifar10.reporting.scoring import score as evaluate_predictions

    pred = known_predictions(tiny_test.y, seed=0)
    result = evaluate_predictions(tiny_test.y, pred, CLASSES)
    cm = confusion_matrix(tiny_test.y, pred, labels=range(10))
    assert result["metrics"]["confusion"] == cm.tolist()
    expected = confusion_intervals(cm, CLASSES)
    found = result["metrics"]["intervals"]
    assert found["accuracy"] == expected["accuracy"].as_dict() and found["macro_f1"] == expected["macro_f1"].as_dict()
    assert found["recall"]["cat"] == expected["recall"]["cat"].as_dict()
    low, high = found["accuracy"]["low"], found["accuracy"]["high"]
    assert low < accuracy_score(tiny_test.y, pred) < high, "a real interval around the figure"
    flat = result["flat"]
    assert (flat["test_accuracy_low"], flat["test_accuracy_high"]) == (low, high)
    assert flat["test_recall_dog_high"] == expected["recall"]["dog"].high
    assert flat["test_macro_f1_low"] == expected["macro_f1"].low


def _about(**transfer) -> dict:
    """What each model is under the default params with these transfer keys."""
    raw = default_params()
    raw["transfer"].update(transfer)
    flat = flatten_dict(parse_params(raw).model_dump())
    return {m: about(m, flat) for m in MODELS}


def _results(n_per_class: int = 5) -> dict:
    from cifar10.reporting.scoring import score as evaluate_predictions

    y = np.repeat(np.arange(10), n_per_class)
    return {name: evaluate_predictions(y, known_predictions(y, seed), CLASSES)["metrics"]
            for seed, name in enumerate(MODELS)}


def _row(md: str, section: str, first: str) -> list[str]:
    line = next(line for line in md.split(f"## {section}")[1].splitlines() if line.startswith(f"| {first} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_has_every_model_class_and_reference():
    results = _results()
    md = comparison_markdown(results, STUDY, _about(backbone="efficientnet_lite0", weights="none"), CLASSES,
                             ["cat", "dog"], 50)
    for name in MODELS:
        assert f"**{name}" in md
    for cls in CLASSES:
        assert f"| {cls} " in md
    assert "study" in md and "Δ" in md and "## Minority classes" in md and METHOD in md
    assert md.count(METHOD) == 1, "the method is named once"
    assert "not comparable" in md  # 50 test images, not 10,000
    # frozen is the study's method, compared with its transfer figures; what differs is named.
    assert "**frozen †**: EfficientNet-Lite0 (random weights: not transfer learning) frozen, at 160 px" in md
    assert "EfficientNet-Lite0 (the study: EfficientNet-B0); weights random (the study: ImageNet); 160 px (the " \
           "study: 224 px)" in md
    # the fine-tuned default goes beyond it: no study figure beside it.
    assert "then the top 11 of 16 blocks fine-tuned with the head" in md and "**transfer ‡**" in md
    assert "‡ beyond the study's method" in md
    summary = {row[0]: row for row in (_row(md, "Summary", m) for m in ("baseline", "frozen †", "transfer ‡"))}
    acc = results["frozen"]["intervals"]["accuracy"]
    assert summary["frozen †"][1:5] == [f"{acc['value']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}]", "0.87",
                                         f"{acc['value'] - 0.87:+.2f}",
                                         "yes" if acc["low"] <= 0.87 <= acc["high"] else "no"]
    assert summary["transfer ‡"][2:5] == ["–", "–", "–"]
    # The study's baseline cat recall, its difference from ours, and whether it lies in our interval.
    cat = _row(md, "Recall per class", "cat")
    ours = results["baseline"]["intervals"]["recall"]["cat"]
    inside = "yes" if ours["low"] <= 0.27 <= ours["high"] else "no"
    assert cat[1:5] == [f"{ours['value']:.3f} [{ours['low']:.3f}, {ours['high']:.3f}]", "0.27",
                        f"{ours['value'] - 0.27:+.2f}", inside]
    assert len(cat) == 1 + 3 * 4 + 1, "the fine-tuned model has its own column only"
    minority = md.split("## Minority classes")[1]
    assert "0.73 (" in minority and "0.27 (" in minority
    # Tables are aligned: every line of a table has the same length.
    for section in ("Summary", "Recall per class", "F1 per class"):
        table = md.split(f"## {section}")[1].split("##")[0].strip().splitlines()
        assert len({len(line) for line in table}) == 1, section
    page = markdown_to_html(md)
    assert page.count("<table>") == 5 and "<td>cat</td>" in page


def test_the_default_cnns_are_the_study_s_setup_and_an_edit_is_named():
    assert "in its stated setup" in comparison_markdown(_results(), STUDY, _about(), CLASSES, ["cat"], 50).split(
        "**augmented**")[1].split("- **")[0]
    raw = default_params()
    raw["train"]["optimizer"]["name"] = "sgd"
    raw["augment"]["classes"] = ["cat", "dog"]  # the same classes as null resolves to: no difference
    flat = flatten_dict(parse_params(raw).model_dump())
    assert about("augmented", flat).differences == ("optimizer sgd (the study: adam)",)
    assert "SGD (learning rate 0.001)" in about("baseline", flat).description


def test_without_fine_tuning_transfer_is_the_frozen_model_and_compared_with_the_study():
    models = _about(fine_tune_blocks=0, image_size=224, flip_test=False)
    assert models["frozen"].reference == models["transfer"].reference == "frozen"
    assert models["frozen"].differences == models["transfer"].differences == ()
    assert models["transfer"].description.endswith("no block fine-tuned (transfer.fine_tune_blocks: 0): the same "
                                                   "model as frozen")
    md = comparison_markdown(_results(), STUDY, models, CLASSES, ["cat", "dog"], 50)
    assert "**transfer**:" in md and "‡" not in md and "†" not in md
    assert _row(md, "Summary", "transfer")[2] == "0.87"


@pytest.fixture
def placed(workdir, tiny_test):
    """The workdir with test data carrying known predictions and four saved stand-in models."""
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
        assert full["confusion"] == confusion_matrix(tiny_test.y, pred, labels=range(10)).tolist()
        assert full["intervals"]["accuracy"] == confusion_intervals(full["confusion"], CLASSES)["accuracy"].as_dict()
        rows = Path(f"plots/confusion/{name}.csv").read_text().splitlines()
        assert rows[0] == "actual,predicted" and len(rows) == len(tiny_test.y) + 1
        assert rows[1] == f"{CLASSES[tiny_test.y[0]]},{CLASSES[pred[0]]}"
        assert Path(f"plots/confusion/{name}.png").stat().st_size > 1000
    summary = json.loads(Path("metrics/summary.json").read_text())
    assert list(summary) == ["base", "aug", "frz", "xfer"]  # short: DVC's tables put all sixteen in one row
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
    assert {"test_recall_cat", "test_f1_dog", "test_macro_f1", "test_accuracy_low", "test_accuracy_high",
            "test_macro_f1_low", "test_recall_cat_high"} <= set(run.data.metrics)
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["data/raw/test"]
    arts = {a.path for d in ("confusion", "metrics") for a in client.list_artifacts(run.info.run_id, d)}
    assert {"confusion/augmented.png", "metrics/augmented.json"} <= arts
    client, (compared,) = _runs(mlflow_uri, "compare")
    assert {"baseline_test_macro_f1", "frozen_test_macro_f1", "transfer_test_accuracy"} <= set(compared.data.metrics)
    # The execution's parent run carries every model's headline figures, as the DVC metrics hold them.
    parent = client.get_run(compared.data.tags["mlflow.parentRunId"]).data
    expected = {f"{name}_{metric}": summary[short][key] for name, short in zip(placed, summary)
                for key, metric in (("acc", "test_accuracy"), ("f1", "test_macro_f1"), ("cat", "test_recall_cat"),
                                    ("dog", "test_recall_dog"))}
    assert parent.metrics == expected and len(expected) == 16
    assert parent.params["evaluate.models"] == '["baseline", "augmented", "frozen", "transfer"]'
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


def _training_run(client, experiment_id: str, stage: str, model_file: Path | None, frozen_file: Path | None = None,
                  **params) -> str:
    """A finished run of `stage` that, like a real training run, names the models it saved by their hash."""
    from cifar10.tracking.links import MODEL_DIGEST_TAG, digest_tag, model_digest

    tags = {"stage": stage, **({MODEL_DIGEST_TAG: model_digest(model_file)} if model_file else {}),
            **({digest_tag("frozen"): model_digest(frozen_file)} if frozen_file else {})}
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
    # The transfer stage's one run saved both the frozen and the fine-tuned model.
    trained["transfer"] = trained["frozen"] = _training_run(
        client, exp, "transfer", Path("models/transfer.keras"), Path("models/frozen.keras"),
        **{"transfer.weights": "none"})
    later = _training_run(client, exp, "train-baseline", None)  # a later run that saved other bytes
    evaluate_all()

    for name, run_id in trained.items():
        (ev,) = client.search_runs([exp], f"attributes.run_name = 'evaluate@{name}'")
        assert ev.data.tags["evaluated.run_id"] == run_id
        metrics, prefix = client.get_run(run_id).data.metrics, "frozen_" if name == "frozen" else ""
        assert metrics[f"{prefix}test_accuracy"] == pytest.approx(accuracy_score(tiny_test.y, placed[name]))
        assert metrics[f"{prefix}test_recall_cat"] == ev.data.metrics["test_recall_cat"]
        assert metrics[f"{prefix}test_accuracy_low"] == ev.data.metrics["test_accuracy_low"]
        assert {f"{prefix}test_report.json", f"{prefix}confusion_matrix.png"} <= {
            a.path for a in client.list_artifacts(run_id)}
    # Each model's figures under its own names: the frozen model's did not overwrite the fine-tuned one's.
    transfer = client.get_run(trained["transfer"]).data.metrics
    assert transfer["test_accuracy"] != transfer["frozen_test_accuracy"]
    assert "test_accuracy" not in client.get_run(later).data.metrics
    md = Path("reports/comparison.md").read_text()
    assert "transfer ‡" in md and "frozen †" in md and "random weights" in md and trained["baseline"] in md


def test_every_setting_of_the_study_is_a_params_key_worded_for_the_page():
    from cifar10.reporting.descriptions import _SETTINGS
    from cifar10.reporting.reference import SETUP

    flat = flatten_dict(parse_params(default_params()).model_dump())
    for model, setup in SETUP.items():
        assert set(setup) <= set(flat) & set(_SETTINGS), model
