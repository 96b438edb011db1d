"""`make expect` checked against reality: each stage's predicted wall time beside the one a real run took.

    python -m benchmarks.expect_check --project DIR [-S key=value ...] [--write BENCHMARKS.md]

DIR is a clone of this project that can run its pipeline (a `download.source` it reaches). In DIR this
first measures the machine and predicts params.yaml with the overrides, as `make expect` does, then
runs that pipeline for real with `dvc exp run --force` and the same overrides, so every stage executes
(none comes from the cache). A stage's measured time runs from DVC's "Running stage" line to the next
one (or the run's end): its whole process, start-up and writes included, which is what the prediction
covers. It prints a `## make expect against a real run` section; `--write` merges it into a BENCHMARKS
file (benchmarks.run's merge, other sections kept). Run it on a quiet machine: both halves are timed.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.expect import as_flags, override_argument, prediction, speed_rows, wall
from benchmarks.run import write_sections
from benchmarks.speeds import Speeds
from benchmarks.workload import StageTime
from cifar10.errors import PipelineError, cli_errors

TOLERANCE = 0.15  # |measured / predicted - 1| the prediction is held to, per stage and in total
STARTS = re.compile(r"^Running stage '([^']+)':")
HEADING = "## `make expect` against a real run"


def stage_seconds(stamped: list[tuple[float, str]], ended: float) -> dict[str, float]:
    """Each stage's wall time from (time, line) pairs of DVC's output: its start to the next start."""
    starts = [(when, m.group(1)) for when, line in stamped if (m := STARTS.match(line))]
    ends = [when for when, _ in starts[1:]] + [ended]
    return {stage: end - start for (start, stage), end in zip(starts, ends)}


def run_pipeline(project: Path, overrides: list[str], log: Path | None = None) -> tuple[dict[str, float], float]:
    """`dvc exp run --force` in `project`: every stage's wall time and the whole run's (its output, each line
    stamped with its second of the run, to `log`)."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}
    command = [str(bin_dir / "dvc"), "exp", "run", "--force", *(a for o in overrides for a in ("-S", o))]
    stamped, started = [], time.time()
    with subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        for line in proc.stdout:
            stamped.append((time.time(), line.rstrip("\n")))
            print(line, end="", file=sys.stderr, flush=True)
    ended = time.time()
    if log:
        log.write_text("".join(f"{when - started:8.1f} {line}\n" for when, line in stamped))
    if proc.returncode != 0:
        tail = "\n".join(line for _, line in stamped[-20:])
        raise PipelineError(f"`{' '.join(command)}` in {project} failed (exit {proc.returncode}):\n{tail}")
    return stage_seconds(stamped, ended), ended - started


def within(measured: float, predicted: float) -> bool:
    return abs(measured / predicted - 1) <= TOLERANCE


def comparison(stages: list[StageTime], measured: dict[str, float]) -> list[str]:
    """The table: per stage, predicted and measured wall time, their ratio, and whether it holds."""
    rows = ["| stage | work | predicted | measured | measured / predicted |", "| --- | --- | ---: | ---: | ---: |"]
    predicted_sum = measured_sum = 0.0
    for stage in stages:
        took = measured.get(stage.stage)
        if stage.seconds is None:
            rows.append(f"| {stage.stage} | {stage.work} | not predicted ({stage.unpredicted}) | "
                        f"{wall(took) if took is not None else 'did not run'} | |")
            continue
        if took is None:
            raise PipelineError(f"stage {stage.stage} was predicted but did not run; ran: {', '.join(measured)}")
        predicted_sum, measured_sum = predicted_sum + stage.seconds, measured_sum + took
        mark = "" if within(took, stage.seconds) else f" (beyond ±{TOLERANCE:.0%})"
        rows.append(f"| {stage.stage} | {stage.work} | {wall(stage.seconds)} | {wall(took)} | "
                    f"{took / stage.seconds:.2f}{mark} |")
    mark = "" if within(measured_sum, predicted_sum) else f" (beyond ±{TOLERANCE:.0%})"
    rows.append(f"| **the predicted stages** | | **{wall(predicted_sum)}** | **{wall(measured_sum)}** | "
                f"**{measured_sum / predicted_sum:.2f}**{mark} |")
    return rows


def section(title: str, machine: str, speeds: Speeds, startup: float, stages: list[StageTime],
            measured: dict[str, float], total: float, loads: tuple[float, float], command: str) -> str:
    predicted = [s for s in stages if s.seconds is not None]
    held = sum(within(measured[s.stage], s.seconds) for s in predicted)
    return "\n".join([
        HEADING, "",
        f"Command: `{command}` on {machine}; 1-minute load average before and after: "
        f"{loads[0]:.1f}, {loads[1]:.1f}.", "",
        f"Predicted by `make expect` for {title}, then run for real (`dvc exp run --force`, every stage "
        f"executed; {wall(total)} in all). Measured: each stage's whole process, from DVC's \"Running stage\" "
        f"line to the next. {held} of {len(predicted)} predicted stages within ±{TOLERANCE:.0%}.", "",
        *comparison(stages, measured), "",
        "The speeds the prediction used, measured by `make expect`'s code just before the run:", "",
        *speed_rows(speeds, startup)])


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True, help="a clone of this project that can run it")
    parser.add_argument("--log", type=Path, help="also keep DVC's output here, each line with its second of the run")
    parser.add_argument("--write", type=Path, help="merge the section into this Markdown file (e.g. BENCHMARKS.md)")
    override_argument(parser)
    args = parser.parse_args(argv)
    project, write = args.project.resolve(), args.write.resolve() if args.write else None
    log = args.log.resolve() if args.log else None
    if not (project / "dvc.yaml").is_file() or not (project / ".git").exists():
        raise PipelineError(f"--project {args.project}: not a git clone of this project (no dvc.yaml or .git)")
    command = f"python -m benchmarks.expect_check --project {args.project.name}{as_flags(args.set_param)}"
    before = os.getloadavg()[0]
    os.chdir(project)  # params.yaml and RESULTS.md (the expected epochs) are the project's
    title, machine, speeds, startup, stages = prediction(args.set_param)
    measured, total = run_pipeline(project, args.set_param, log)
    text = section(title, machine, speeds, startup, stages, measured, total, (before, os.getloadavg()[0]), command)
    print(text)
    if write:
        write_sections(write, text)


if __name__ == "__main__":
    main()
