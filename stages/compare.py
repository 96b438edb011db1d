"""Stage `compare`: the evaluated models side by side and beside the study's published figures.

Reads reports/per_class/<model>.json of every model in `evaluate.models` (written by the evaluate
stages; no test image is read here) and writes reports/comparison.{md,html}, each model described
from params.yaml (which made it: DVC reruns whatever a params edit touches before this stage), and
metrics/summary.json, the DVC metrics (per model `acc` accuracy, `f1` macro F1 and the recall of
each class made rare, keyed by the class, under a short model name: `dvc metrics show` and `dvc exp
show` fit a terminal). Records the same figures on the pipeline execution's parent run in MLflow
(every model's, a cached one's included) and points the registered model's `champion` alias at the
best model by test macro F1.
"""
from __future__ import annotations

import json
from pathlib import Path

from cifar10.errors import cli_errors
from cifar10.outputs import atomic_output, no_partial_outputs
from cifar10.paths import WEIGHTS_MANIFEST, per_class_report, require
from cifar10.schema import load_params

SUMMARY = Path("metrics/summary.json")
REPORT_MD, REPORT_HTML = Path("reports/comparison.md"), Path("reports/comparison.html")


# The model's name in the DVC metrics: DVC's tables name a column `<model>.<key>` and sixteen of them
# share one row of `dvc exp show` (the README's `make exps` table).
SHORT = {"baseline": "base", "augmented": "aug", "frozen": "frz", "transfer": "xfer"}


def headline(metrics: dict, minority) -> dict:
    """The few figures a terminal view shows per model: accuracy, macro F1, the recall of each rare class
    (short keys, for the same reason as SHORT)."""
    return {"acc": round(metrics["accuracy"], 4), "f1": round(metrics["macro"]["f1"], 4),
            **{c: round(metrics["per_class"][c]["recall"], 4) for c in minority}}


def transfer_backbone(training_params: dict) -> str:
    """The backbone the transfer models started from: the fetch stage's manifest, else their training run."""
    try:
        return json.loads(WEIGHTS_MANIFEST.read_text())["backbone"]
    except (OSError, ValueError, KeyError, TypeError):
        return training_params.get("transfer.backbone", "efficientnet_b0")


@cli_errors
def main() -> None:
    params = load_params()
    models = list(dict.fromkeys(params.evaluate.models))
    require(*(per_class_report(m) for m in models))

    from cifar10.reporting.comparison import comparison_markdown, markdown_to_html
    from cifar10.reporting.descriptions import about
    from cifar10.reporting.reference import STUDY
    from cifar10.schema import flatten_dict
    from cifar10.tracking.pipeline_state import record_figures
    from cifar10.tracking.registry import crown, version_by_digest
    from cifar10.tracking.runs import stage_run

    with no_partial_outputs(SUMMARY, REPORT_MD, REPORT_HTML), stage_run("compare", params, ["evaluate"]) as tracker:
        results = {m: json.loads(per_class_report(m).read_text()) for m in models}
        classes = list(next(iter(results.values()))["per_class"])
        flat = flatten_dict(params.model_dump())
        markdown = comparison_markdown(results, STUDY, {m: about(m, flat) for m in models}, classes,
                                       list(params.imbalance.classes), next(iter(results.values()))["test_images"],
                                       {m: r["training_run"] for m, r in results.items() if r["training_run"]})

        headlines = {m: headline(r, params.imbalance.classes) for m, r in results.items()}
        with atomic_output(SUMMARY) as tmp:
            tmp.write_text(json.dumps({SHORT[m]: h for m, h in headlines.items()}, indent=2) + "\n")
        with atomic_output(REPORT_MD) as tmp:
            tmp.write_text(markdown)
        with atomic_output(REPORT_HTML) as tmp:
            tmp.write_text(markdown_to_html(markdown))

        scored = {m: {"test_accuracy": r["accuracy"], "test_macro_f1": r["macro"]["f1"]} for m, r in results.items()}
        tracker.log_metrics({f"{m}_{k}": v for m, s in scored.items() for k, v in s.items()})
        registry = params.tracking.registered_model
        versions = {m: v for m, r in results.items() if (v := tracker.safe(
            f"version of {m}", version_by_digest, tracker.client, registry, r["model_sha256"], m))}
        champion = crown(tracker, registry, scored, versions)
        if champion:
            tracker.set_tags({"champion": f"{champion} ({registry} v{versions[champion].version})"})
        tracker.log_artifact(REPORT_MD, "report")
        tracker.log_artifact(REPORT_HTML, "report")
        transferred = next((m for m in ("transfer", "frozen") if m in results), None)
        backbone = transfer_backbone(results[transferred]["training_params"]) if transferred else None
        record_figures(tracker, headlines, results, backbone)
    crowned = f"; {registry}@champion = {champion} (best test macro F1)" if champion else ""
    print(f"compare: wrote {REPORT_MD}{crowned}", flush=True)


if __name__ == "__main__":
    main()
