"""Queue the study's part-2 parameter studies as DVC experiments of the training stage.

Each study varies one knob of the CNN around the study's defaults, on the full (balanced) training
set, so `imbalance.keep_fraction=1` for all of them. Identical configurations (the defaults appear in
every study) are queued once. Usage:

    python scripts/sweep_part2.py [--dry-run] [-S key=value ...]   # queue (extra -S go to every run)
    dvc queue start -j 2                                            # run them, two at a time
    dvc exp show --only-changed --drop 'Created|State|Executor'     # compare
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

COMMON = ["imbalance.keep_fraction=1.0"]

STUDIES: dict[str, dict[str, list[str]]] = {
    "hidden": {
        "0": ["train.model.dense_units=[]"],
        "1": ["train.model.dense_units=[128]"],
        "2": ["train.model.dense_units=[128,128]"],
    },
    "act": {name: [f"train.model.activation={name}"] for name in ("relu", "sigmoid", "tanh")},
    "opt": {name: [f"train.optimizer.name={name}"] for name in ("adam", "sgd")},
    "size": {"50000": ["train.train_size=null"], "6000": ["train.train_size=6000"]},
    "conv": {
        "1x7x7": ["train.model.convs_per_block=1", "train.model.kernel_size=7"],
        "1x3x3": ["train.model.convs_per_block=1", "train.model.kernel_size=3"],
        "2x3x3": ["train.model.convs_per_block=2", "train.model.kernel_size=3"],
    },
}


def _current(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        node = node[part]
    return node


def experiments(extra: list[str], params_file: Path = Path("params.yaml")) -> list[tuple[str, list[str]]]:
    """(name, overrides) for every distinct configuration.

    Overrides equal to params.yaml's values are dropped, so the study's reference configuration
    (present in every study) runs once, as `part2-reference`.
    """
    params = yaml.safe_load(params_file.read_text())
    out = [("part2-reference", COMMON + extra)]
    seen: set[tuple[str, ...]] = {()}
    for study, variants in STUDIES.items():
        for variant, overrides in variants.items():
            changed = tuple(
                sorted(o for o in overrides if yaml.safe_load(o.split("=", 1)[1]) != _current(params, o.split("=")[0]))
            )
            if changed in seen:
                continue
            seen.add(changed)
            out.append((f"part2-{study}-{variant}", COMMON + list(changed) + extra))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the dvc commands, queue nothing")
    parser.add_argument("-S", "--set-param", action="append", default=[], help="extra override for every run")
    parser.add_argument("--target", default="train-baseline", help="stage to reproduce (default: train-baseline)")
    args = parser.parse_args(argv)
    for name, overrides in experiments(args.set_param):
        cmd = ["dvc", "exp", "run", "--queue", "--name", name]
        for item in overrides:
            cmd += ["-S", item]
        cmd.append(args.target)
        print(" ".join(cmd), flush=True)
        if not args.dry_run:
            proc = subprocess.run(cmd)
            if proc.returncode != 0:
                print(f"error: queuing {name} failed (exit {proc.returncode})", file=sys.stderr)
                return proc.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
