"""`make exps`: the DVC experiments side by side, with only what a person compares.

Prints `dvc exp show` for the workspace and every experiment with three kinds of columns: the
experiment's name, the params that differ between the rows that have results, and the headline
metrics (metrics/summary.json, all of them, changed or not). DVC's own `--only-changed` also counts
the params of rows without results, such as a commit without dvc.lock (this project commits none), so
every key an experiment set would show. The table is at most --width characters wide (default 220;
DVC folds the columns that do not fit into "…"; 0 pages the whole width as `dvc exp show` does).
Other arguments go to `dvc exp show`, e.g. `--keep 'train\\.epochs'` to add a column, `-A` for the
experiments of every commit.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from typing import Any, Iterator

from cifar10.schema import flatten_dict


def _rows(shown: list[dict]) -> Iterator[dict]:
    """The data of every row of `dvc exp show --json`: the workspace, the commits, their experiments."""
    for commit in shown:
        yield commit.get("data") or {}
        for experiment in commit.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                yield rev.get("data") or {}


def _flat(files: dict | None) -> dict[str, Any]:
    """{file: {"data": nested}} as DVC's column names (dotted keys); files DVC could not read are empty."""
    out: dict[str, Any] = {}
    for content in (files or {}).values():
        out.update(flatten_dict((content or {}).get("data") or {}))
    return out


def columns(shown: list[dict]) -> tuple[list[str], list[str]]:
    """(params that differ, every metric) of `dvc exp show --json` output, in DVC's order."""
    rows = list(_rows(shown))
    params = [_flat(r.get("params")) for r in rows if _flat(r.get("metrics"))]
    keys = dict.fromkeys(k for p in params for k in p)
    differing = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in params}) > 1]
    metrics = list(dict.fromkeys(k for r in rows for k in _flat(r.get("metrics"))))
    return differing, metrics


def keep_pattern(names: list[str]) -> str:
    """A `--keep` regex matching the Experiment column and exactly these columns (DVC prefixes a name
    with its file when two files share it)."""
    return "^(Experiment|(.+:)?(" + "|".join(re.escape(n) for n in names) + "))$"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=220, help="widest line (default 220; 0: no limit)")
    args, passed_on = parser.parse_known_args(argv)
    if args.width < 0:
        parser.error(f"--width: a number of characters, or 0 for no limit (got {args.width})")
    dvc = os.path.join(os.path.dirname(sys.executable), "dvc")
    dvc = dvc if os.path.exists(dvc) else "dvc"
    listed = subprocess.run([dvc, "exp", "show", "--json", *passed_on], capture_output=True, text=True)
    if listed.returncode != 0:
        sys.stderr.write(listed.stderr)
        return listed.returncode
    differing, metrics = columns(json.loads(listed.stdout))
    # Keep protects a column from both `--drop` and DVC's own pruning; everything else goes.
    command = [dvc, "exp", "show", "--drop", ".*", "--keep", keep_pattern(differing + metrics), *passed_on]
    env = dict(os.environ)
    if args.width > 0:
        command.insert(3, "--no-pager")  # the pager would lay the table out at its full width
        env["COLUMNS"] = str(args.width)
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
