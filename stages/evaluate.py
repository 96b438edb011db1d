"""Stage `evaluate` (one per model: evaluate@baseline, evaluate@augmented, evaluate@frozen,
evaluate@transfer): the only place the test set is scored.

`python -m stages.evaluate --model NAME` scores models/NAME.keras on data/raw/test.npz and writes
reports/per_class/NAME.json (every per-class figure, the confusion matrix, and the 95% intervals of
accuracy, macro F1 and each class's recall) and plots/confusion/NAME.{csv,png}. It logs its own MLflow
run, writes the same test figures onto the training run that saved exactly that model file (found by
the file's SHA-256, under the names training runs always carried: test_accuracy, test_recall_cat, ...;
the frozen model's, which shares the transfer stage's run, as frozen_test_accuracy, ...) and tags the
model's registered version with them. A retrained model re-scores only itself; the `compare` stage
puts the models side by side.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from cifar10.data import dataset
from cifar10.errors import PipelineError, cli_errors
from cifar10.outputs import atomic_output, no_partial_outputs
from cifar10.paths import MODEL_STAGE, RAW_TEST, confusion_plot, model_path, per_class_report, require
from cifar10.schema import load_params
from cifar10.training.precision import resolve


def write_confusion_csv(path: Path, y_true, y_pred, classes) -> None:
    """One row per test image, columns actual,predicted (class names): DVC's `confusion` template."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows((classes[a], classes[p]) for a, p in zip(y_true, y_pred))


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODEL_STAGE), required=True)
    name = parser.parse_args(argv).model
    params = load_params()
    require(model_path(name), RAW_TEST)
    stage, report, figure, table = f"evaluate@{name}", per_class_report(name), confusion_plot(name, "png"), \
        confusion_plot(name, "csv")

    from cifar10.console import batch_progress, quiet_tensorflow

    quiet_tensorflow()
    from cifar10.models.saved import load_for_inference
    from cifar10.reporting.figures import confusion_figure
    from cifar10.reporting.scoring import flat_metrics, interval_metrics, score_model
    from cifar10.tracking.datasets import dataset_input
    from cifar10.tracking.links import model_digest, run_prefix, training_run_of
    from cifar10.tracking.registry import tag_version, version_of
    from cifar10.tracking.runs import stage_run

    policy, why = resolve(params.evaluate.precision, "frozen")
    with no_partial_outputs(report, figure, table), stage_run(stage, params, ["evaluate"]) as tracker:
        print(f"{stage}: predictions in {policy} ({why})", file=sys.stderr)
        tracker.log_params({"precision": policy})
        test = dataset.load(RAW_TEST)
        model = load_for_inference(model_path(name), policy)
        try:
            result = score_model(model, test.x, test.y, list(test.classes), params.evaluate.batch_size,
                                 [batch_progress(stage)])
        except PipelineError as exc:
            raise PipelineError(f"{model_path(name)}: {exc}") from None
        trained = tracker.safe(f"training run of {name}", training_run_of, tracker.client, tracker.experiment_id,
                               model_path(name), name)

        facts = {"model": name, "model_sha256": model_digest(model_path(name)),
                 "training_run": trained.info.run_id if trained else None,
                 "training_params": dict(trained.data.params) if trained else {}}
        with atomic_output(report) as tmp:
            tmp.write_text(json.dumps({**result["metrics"], **facts}, indent=2) + "\n")
        with atomic_output(table) as tmp:
            write_confusion_csv(tmp, test.y, result["y_pred"], test.classes)
        title = f"{name}: accuracy {result['metrics']['accuracy']:.3f}"
        fig = confusion_figure(result["confusion"], test.classes, title)
        with atomic_output(figure) as tmp:
            fig.savefig(tmp, dpi=100)

        tracker.set_tags({"model": name})
        tracker.log_metrics(result["flat"])
        tracker.log_artifact(report, "metrics")
        tracker.log_artifact(figure, "confusion")
        tracker.log_datasets([dataset_input(RAW_TEST, test, "evaluation")])
        if trained:
            tracker.set_tags({"evaluated.run_id": trained.info.run_id})
            training, prefix = tracker.for_run(trained.info.run_id), run_prefix(name)
            training.log_metrics({**flat_metrics(result["report"], test.classes, f"{prefix}test"),
                                  **interval_metrics(result["intervals"], f"{prefix}test")})
            training.log_dict(result["report"], f"{prefix}test_report.json")
            training.log_figure(fig, f"{prefix}confusion_matrix.png")
        else:
            tracker.not_logged.append(f"test metrics on the training run (no {MODEL_STAGE[name]} run in this store "
                                      f"saved {model_path(name)})")
        registry = params.tracking.registered_model
        version = tracker.safe(f"version of {name}", version_of, tracker.client, registry, model_path(name), name)
        if version:
            tag_version(tracker, registry, version, result["flat"])
    print(f"{stage}: accuracy {result['metrics']['accuracy']:.4f}, macro F1 {result['metrics']['macro']['f1']:.4f} "
          f"on {len(test)} test images -> {report}", flush=True)


if __name__ == "__main__":
    main()
