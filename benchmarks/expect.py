"""`make expect`: what this machine will take for params.yaml, measured in about a minute.

    python -m benchmarks.expect [-S key=value ...]

The overrides are those `dvc exp run -S` takes (a dotted key, a YAML value), validated with
params.yaml by the schema before anything is measured, so the prediction can be for a cut-down run
(`-S download.train_per_class=500 -S train.epochs=3`). It measures this machine in this process
(benchmarks.speeds) and prints each speed beside this machine's limit for that work (its matmul peak
over the work's FLOPs per image), then each stage's predicted wall time and the total
(benchmarks.workload).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from benchmarks.speeds import Speeds
from benchmarks.workload import EPOCHS_SOURCE, StageTime, image_counts, predict
from cifar10.errors import PipelineError, cli_errors
from cifar10.schema import PARAMS_FILE, Params, load_params, parse_params


def as_flags(overrides: list[str]) -> str:
    """The overrides as they were given on the command line: ` -S key=value` each."""
    return "".join(f" -S {o}" for o in overrides)


def with_overrides(raw: dict, overrides: list[str]) -> Params:
    """params.yaml's mapping with `-S key=value` overrides set, validated by the schema."""
    raw = dict(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.split(".")
        if not sep or not all(parts):
            raise PipelineError(f"-S {item}: expected key=value with a dotted key, e.g. -S train.epochs=3")
        node = raw
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if not isinstance(child, (dict, type(None))):
                raise PipelineError(f"-S {item}: {'.'.join(parts[:depth + 1])} is a value, not a section")
            node[part] = dict(child or {})  # a copy: the mapping read from params.yaml stays as read
            node = node[part]
        node[parts[-1]] = yaml.safe_load(value)
    return parse_params(raw, f"{PARAMS_FILE} with" + as_flags(overrides))


def wall(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def speed_rows(speeds: Speeds, startup: float) -> list[str]:
    """The measured table: each kind of work's speed, setup, and share of the limit its matmuls set."""
    rows = ["| work | computes in | speed | setup | share of this machine's limit |",
            "| --- | --- | ---: | ---: | --- |"]
    for dtype, peak in speeds.peaks.items():
        versus = "" if dtype == "float32" else f" ({peak / speeds.peaks['float32']:.2f}x float32)"
        rows.append(f"| {speeds.matmul} | {dtype} | {peak:,.0f} GFLOP/s{versus} | | the limit of {dtype} work |")
    for rate in speeds.rates.values():
        limit = speeds.peaks[rate.dtype] / max(rate.gflop, 1e-12)
        rows.append(f"| {rate.work} | {rate.dtype} | {rate.per_second:,.0f} images/s | {wall(rate.setup_seconds)} | "
                    f"{100 * rate.per_second / limit:.0f}% of {limit:,.0f} images/s ({speeds.peaks[rate.dtype]:,.0f} "
                    f"GFLOP/s / {rate.gflop:.4g} GFLOP per image) |")
    rows.append(f"| a stage's start-up: a new process importing TensorFlow, Keras, MLflow and the rest, opening the "
                f"MLflow store (each stage that computes with TensorFlow pays one) | | | {wall(startup)} | |")
    return rows


def report(title: str, machine: str, speeds: Speeds, startup: float, stages: list[StageTime], command: str = "") -> str:
    """The whole printout, from measured speeds and predicted stage times (with the command that made it, if given)."""
    (train, why_train), (frozen, why_frozen), (tuning, why_tuning), (evaluate, why_evaluate) = (
        speeds.policies[k] for k in ("train", "frozen", "fine_tune", "evaluate"))
    lines = [f"## What this machine will take: {title}", "",
             *([f"Command: `{command}`."] if command else []),
             f"Machine: {machine}; TensorFlow runs each op on {speeds.threads} cores.",
             f"Precision here (cifar10/training/precision.py): train {train} ({why_train}); transfer frozen pass "
             f"{frozen} ({why_frozen}), head and fine-tuning {tuning} ({why_tuning}); evaluate {evaluate} "
             f"({why_evaluate}).", "",
             "Measured now through the stages' own code (benchmarks/speeds.py); a busy machine slows every figure.",
             "",
             *speed_rows(speeds, startup), "",
             "Predicted: each stage's images x epochs at the speeds above, plus its start-up and setups "
             f"(benchmarks/workload.py). Expected epochs of the train stages: those the full run took "
             f"({EPOCHS_SOURCE}), capped at train.epochs.", "",
             "| stage | work | predicted wall time |", "| --- | --- | ---: |"]
    for stage in stages:
        when = wall(stage.seconds) if stage.seconds is not None else f"not predicted ({stage.unpredicted})"
        lines.append(f"| {stage.stage} | {stage.work} | {when} |")
    predicted = [s.seconds for s in stages if s.seconds is not None]
    lines.append(f"| **total** | the {len(predicted)} predicted stages | **{wall(sum(predicted))}** |")
    return "\n".join(lines)


def prediction(overrides: list[str]) -> tuple[str, str, Speeds, float, list[StageTime]]:
    """Measure this machine and predict params.yaml with `overrides`: (title, machine, speeds, start-up
    seconds, stages). Bad params or overrides fail in one line before anything is measured."""
    load_params()  # the file itself valid first: its own errors name no override
    params = with_overrides(yaml.safe_load(Path(PARAMS_FILE).read_text()) or {}, overrides)
    image_counts(params)  # the splits the stages would refuse, refused now: before a minute of measuring
    from scripts.results import recorded_epochs

    recorded = recorded_epochs(EPOCHS_SOURCE.read_text()) if EPOCHS_SOURCE.is_file() else {}
    print("measuring this machine (about a minute) ...", file=sys.stderr, flush=True)
    from cifar10.console import quiet_tensorflow

    quiet_tensorflow()
    from benchmarks.speeds import measure, stage_startup

    startup = stage_startup()
    from cifar10.tracking.provenance import machine

    speeds = measure(params)
    title = PARAMS_FILE + as_flags(overrides)
    return title, machine(), speeds, startup, predict(params, speeds, startup, recorded)


def override_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params.yaml key as `dvc exp run -S` does, e.g. -S train.epochs=3")


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="also merge the printout into this Markdown file (BENCHMARKS.md)")
    override_argument(parser)
    args = parser.parse_args(argv)
    predicted = prediction(args.set_param)
    print(report(*predicted))
    if args.write:
        from benchmarks.run import write_sections

        write_sections(args.write, report(*predicted, command="python -m benchmarks.expect" + as_flags(args.set_param)))


if __name__ == "__main__":
    main()
