"""Benchmark of the whole pipeline: `dvc repro` with nothing to do, and each stage's cost.

Run it in a project whose pipeline has been reproduced on the full data set
(`python -m benchmarks.pipeline [--project DIR]`). It times `dvc repro` with nothing changed (median
of repeated runs; it fails if anything would rerun) and reads each stage's wall time and peak RSS,
which every stage logs to MLflow (`stage_wall_time_s`, `peak_rss_mb`), from its latest finished
`dvc repro` run.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from writeup.stage_runs import STAGES, duration, latest_stage_runs, precision_used

REPEATS = 5


def noop_seconds(project: Path) -> list[float]:
    """Wall times of `dvc repro` in a project where nothing changed."""
    dvc = Path(sys.executable).parent / "dvc"
    # Checked first: timing `dvc repro` in a project that is not reproduced would run the pipeline.
    status = subprocess.run([str(dvc), "status", "--json"], cwd=project, capture_output=True, text=True)
    if status.returncode != 0 or not (project / "dvc.lock").exists() or status.stdout.strip() not in ("", "{}"):
        raise SystemExit(f"error: {project} is not a reproduced project (`dvc status` there is not up to date); "
                         "run `dvc repro` there first or pass --project DIR")
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        proc = subprocess.run([str(dvc), "repro"], cwd=project, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0 or "Running stage" in proc.stdout:
            raise SystemExit(f"error: `dvc repro` in {project} is not a no-op:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    project = parser.parse_args().project.resolve()
    times = noop_seconds(project)
    runs = latest_stage_runs(project)
    costs = {stage: run.data.metrics for stage, run in runs.items()}
    cpus = sorted({run.data.tags.get("cpu", "unknown CPU") for run in runs.values()})
    total = sum(m.get("stage_wall_time_s", 0.0) for m in costs.values())
    lines = [
        "## Whole pipeline",
        "",
        f"Command: `.venv/bin/python -m benchmarks.pipeline --project {project.name}` in a project reproduced on "
        f"the full CIFAR-10 set; its stages ran on {'; '.join(cpus)} (their runs' `cpu` tag).",
        "",
        f"`dvc repro` with nothing changed: median **{statistics.median(times):.2f} s** of {REPEATS} runs "
        f"(min {min(times):.2f} s, max {max(times):.2f} s; target <= 3 s).",
        "",
        "| stage | wall time | share | peak RSS | precision |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for stage in STAGES:
        m = costs.get(stage)
        if m and "stage_wall_time_s" in m:
            lines.append(f"| {stage} | {duration(m['stage_wall_time_s'])} | {100 * m['stage_wall_time_s'] / total:.1f}% | "
                         f"{m['peak_rss_mb']:,.0f} MiB | {precision_used(runs[stage].data.params)} |")
        else:
            lines.append(f"| {stage} | no finished run | – | – | |")
    lines.append(f"| all stages | {duration(total)} | 100% | | |")
    transfer = costs.get("transfer", {})
    fine_tuned = "transfer" in runs and runs["transfer"].data.params.get("transfer.fine_tune_blocks", "0") != "0"
    if "embed_seconds" in transfer and "stage_wall_time_s" in transfer:
        # One pass of the frozen backbone over the images the stage embeds (the training set, and the
        # validation images' mirrors when flip_test is on) is the floor of any transfer method.
        lines += ["", f"transfer stage wall time / its one backbone pass: "
                      f"**{transfer['stage_wall_time_s'] / transfer['embed_seconds']:.2f}x** "
                      f"({duration(transfer['stage_wall_time_s'])} / {duration(transfer['embed_seconds'])}, "
                      f"{transfer.get('embed_images_per_second', float('nan')):.1f} img/s; "
                      + ("the recipe fine-tunes blocks above the pass, so the frozen recipe's target <= 1.3x does "
                         "not apply)." if fine_tuned else "target <= 1.3x).")]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
