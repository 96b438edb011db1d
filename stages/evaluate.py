"""Evaluate stage: score every trained model on the test set, compare them with the study, log it all.

Outputs: metrics/<model>.json (DVC metrics), plots/confusion/<model>.csv and .png (DVC plots),
reports/comparison.md and .html, and one MLflow run `evaluate` tagged with the training runs it scored.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from stages import dataset
from stages.atomic import atomic_output, remove_output
from stages.errors import PipelineError, cli_errors
from stages.evaluation import class_report, confusion, confusion_figure, flat_metrics
from stages.run_links import link_training_runs

MODELS_DIR = Path("models")
METRICS_DIR = Path("metrics")
CONFUSION_DIR = Path("plots/confusion")
REPORT_DIR = Path("reports")
WEIGHTS_MARKER = Path("data/weights/weights.json")
# The stage that writes each model, for the message when it is missing and to find its MLflow run.
PRODUCER = {"baseline": "train-baseline", "augmented": "train-augmented", "transfer": "transfer"}


def model_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.keras"


def predict_proba(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities (N, classes) in one batched pass; images stay uint8 until each batch."""
    import tensorflow as tf

    batches = tf.data.Dataset.from_tensor_slices(x).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    probs = np.asarray(model.predict(batches, verbose=0)) if len(x) else np.zeros((0, 0))
    if probs.ndim != 2 or len(probs) != len(x):
        raise PipelineError(f"model output has shape {probs.shape}; expected ({len(x)}, classes) probabilities")
    return probs


def summarize(report: dict, classes: Sequence[str], n_images: int) -> dict:
    """scikit-learn's report in the stable shape of metrics/<model>.json."""
    def prf(row: dict) -> dict:
        return {"precision": float(row["precision"]), "recall": float(row["recall"]), "f1": float(row["f1-score"])}

    return {
        "test_images": int(n_images),
        "accuracy": float(report["accuracy"]),
        "macro": prf(report["macro avg"]),
        "weighted": prf(report["weighted avg"]),
        "per_class": {cls: {**prf(report[cls]), "support": int(report[cls]["support"])} for cls in classes},
    }


def evaluate_predictions(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    """Metrics of given predictions.

    Returns:
        dict with `metrics` (the JSON shape), `flat` (test_accuracy, test_recall_<cls>, ...),
        `confusion` (rows actual, columns predicted) and `y_pred`.
    """
    if len(classes) and len(y_true) and int(np.max(y_pred)) >= len(classes):
        raise PipelineError(f"model predicts class {int(np.max(y_pred))}; there are {len(classes)} classes")
    report = class_report(y_true, y_pred, classes)
    return {
        "metrics": summarize(report, classes, len(y_true)),
        "flat": flat_metrics(report, classes),
        "confusion": confusion(y_true, y_pred, len(classes)),
        "y_pred": np.asarray(y_pred),
    }


def evaluate_model(model, x: np.ndarray, y: np.ndarray, classes: Sequence[str], batch_size: int) -> dict:
    """Predict the test set once (batched) and score it; see `evaluate_predictions` for the result."""
    probs = predict_proba(model, x, batch_size)
    if probs.shape[1] != len(classes):
        raise PipelineError(f"model outputs {probs.shape[1]} classes; the test set has {len(classes)}")
    return evaluate_predictions(y, probs.argmax(axis=1), classes)


def load_model(path: Path):
    """A whole saved Keras model; an unreadable file is one PipelineError line."""
    import zipfile

    # Checked before importing Keras, so the answer to a wrong file is not buried in TF's start-up log.
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise PipelineError(f"{path}: cannot load a Keras model (not a .keras zip archive)")
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        raise PipelineError(f"{path}: cannot load a Keras model ({type(exc).__name__}: {str(exc)[:150]})") from None


def write_confusion_csv(path: Path, y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> None:
    """One row per test image, columns actual,predicted (class names): DVC's `confusion` template."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows((classes[a], classes[p]) for a, p in zip(y_true, y_pred))


def transfer_weights_kind(marker: Path, run_params: dict | None) -> str | None:
    """Which weights the transfer backbone started from: the fetch stage's marker, else its MLflow run."""
    if marker.exists():
        try:
            info = json.loads(marker.read_text())
            kind = info.get("kind") or info.get("weights")
            if kind:
                return str(kind)
        except (ValueError, AttributeError):
            pass
    return (run_params or {}).get("transfer.weights")


@cli_errors
def main() -> None:
    from stages.schema import load_params

    params = load_params()
    cfg = params.evaluate
    models = list(dict.fromkeys(cfg.models))
    for m in models:
        if not model_path(m).exists():
            raise PipelineError(
                f"{model_path(m)} not found: run `dvc repro {PRODUCER[m]}` (or leave {m} out of evaluate.models)"
            )
    if not dataset.RAW_TEST.exists():
        raise PipelineError(f"{dataset.RAW_TEST} not found: run `dvc repro download`")

    from stages.tracking import stage_run

    outputs = (METRICS_DIR, CONFUSION_DIR, REPORT_DIR)
    try:
        with stage_run("evaluate", params, ["evaluate"]) as tracker:
            _evaluate_and_write(params, models, tracker)
    except BaseException:
        for path in outputs:  # a failed run must not leave the previous run's results looking current
            remove_output(path)
        raise


def _evaluate_and_write(params, models: list[str], tracker) -> None:
    import keras
    import matplotlib

    matplotlib.use("Agg")  # headless: figures are only saved
    import matplotlib.pyplot as plt

    from stages.comparison import comparison_markdown, markdown_to_html
    from stages.reference import STUDY

    test = dataset.load(dataset.RAW_TEST)
    classes = list(test.classes)
    results = {}
    for m in models:
        model = load_model(model_path(m))
        try:
            results[m] = evaluate_model(model, test.x, test.y, classes, params.evaluate.batch_size)
        except PipelineError as exc:
            raise PipelineError(f"{model_path(m)}: {exc}") from None
        del model
        keras.backend.clear_session()  # free one model before loading the next (the transfer model is large)
        acc = results[m]["metrics"]["accuracy"]
        print(f"evaluate: {m}: accuracy {acc:.4f} on {len(test.y)} test images", flush=True)

    linked = link_training_runs(tracker, {m: PRODUCER[m] for m in models})
    notes = {}
    if "transfer" in models:
        run_params = linked["transfer"].data.params if "transfer" in linked else None
        kind = transfer_weights_kind(WEIGHTS_MARKER, run_params)
        if kind == "none":
            notes["transfer"] = (
                "backbone trained from random weights (transfer.weights: none), not ImageNet: "
                "this is not transfer learning and not comparable to the study's column"
            )
    report_md = comparison_markdown(
        {m: r["metrics"] for m, r in results.items()}, STUDY, classes, list(params.imbalance.classes),
        len(test.y), notes, {m: run.info.run_id for m, run in linked.items()},
    )

    with atomic_output(METRICS_DIR) as mdir, atomic_output(CONFUSION_DIR) as cdir, atomic_output(REPORT_DIR) as rdir:
        for d in (mdir, cdir, rdir):
            d.mkdir()
        for m, r in results.items():
            (mdir / f"{m}.json").write_text(json.dumps(r["metrics"], indent=2) + "\n")
            write_confusion_csv(cdir / f"{m}.csv", test.y, r["y_pred"], classes)
            fig = confusion_figure(r["confusion"], classes, f"{m}: accuracy {r['metrics']['accuracy']:.3f}")
            fig.savefig(cdir / f"{m}.png", dpi=100)
            plt.close(fig)
        (rdir / "comparison.md").write_text(report_md)
        (rdir / "comparison.html").write_text(markdown_to_html(report_md))

    for m, r in results.items():
        tracker.log_metrics({f"{m}_{k}": v for k, v in r["flat"].items()})
        tracker.log_artifact(METRICS_DIR / f"{m}.json", "metrics")
        tracker.log_artifact(CONFUSION_DIR / f"{m}.png", "confusion")
        tracker.log_dict({"classes": classes, "matrix": r["confusion"].tolist()}, f"confusion/{m}.json")
    tracker.log_artifact(REPORT_DIR / "comparison.md", "report")
    tracker.log_artifact(REPORT_DIR / "comparison.html", "report")
    print(f"evaluate: wrote {REPORT_DIR / 'comparison.md'}", flush=True)


if __name__ == "__main__":
    main()
