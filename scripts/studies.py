"""The study's experiments on the real data: run (or resume) them, then write STUDIES.md from MLflow.

    python -m scripts.studies run [--only part2|part3|bf16|rerun|remedies|capacity] [--name EXPERIMENT ...] [-S key=value ...] [--dry-run]
    python -m scripts.studies report [--output STUDIES.md]

`run` runs the planned DVC experiments (writeup.studies.plan) one at a time, each in a temporary copy
of the repository (`dvc exp run --temp`: the workspace and params.yaml stay untouched), all logging to
the project's MLflow store. It skips experiments that finished and resumes one that was stopped (its
training resumes from the last completed epoch; a training that had finished restores its model from
the backup the runner keeps until the experiment ends). An experiment that differs from an earlier one
only in what acts after training (logit adjustment after `none`) adopts that one's finished training,
kept for it, instead of training the same model again. A run whose figure pairs with an earlier experiment
only within one sitting (the float32 partner of a bfloat16 run: a speed ratio) brings that experiment back
to run again before it, both from their first epoch. Each finished experiment's records go into
STUDIES.json, which travels with the repository: an experiment it holds is not run again, also on a
machine whose MLflow store never saw it. An experiment whose overrides wait for a choice made from
other experiments' records (the capacity part's confirmation, under its screen's winner) gets them
from STUDIES.json when the runner reaches it; until the records allow the choice it waits: the runner
says for what and goes on. `report` writes STUDIES.md and figures/studies/*.png from those records
and the store's. Run it in a project whose download source is set (the real data).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cifar10.errors import cli_errors
from cifar10.schema import load_params
from cifar10.tracking.store import tracking_uri
from cifar10.training.backup_folders import (KEEP_FINISHED_ENV, SHARED_TRAINING_ENV, delete_backup,
                                            experiment_backups)
from writeup.studies import record_file
from writeup.studies.capacity_plan import resolve
from writeup.studies.plan import SITTING_TAG, Experiment, experiments


def _store():
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri())
    found = client.get_experiment_by_name(load_params().tracking.experiment)
    return client, (found.experiment_id if found else None)


def run_child(cmd: list[str], env: dict[str, str], patience: float = 120.0) -> int:
    """Run one experiment's command and return its exit code.

    The command runs in its own process group, and Ctrl-C (or `kill -INT` of this process) is passed to
    the whole group: DVC ignores SIGINT while a stage runs, so the stage itself must get it. The
    experiment then stops by itself (training keeps the backup of its last completed epoch, DVC removes
    its temporary copy); a group still running after `patience` seconds is killed. The
    KeyboardInterrupt is then raised again.
    """
    proc = subprocess.Popen(cmd, env=env, process_group=0)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=patience)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise


def stoppable() -> None:
    """Make Ctrl-C, `kill -INT` and `kill` (SIGTERM) raise KeyboardInterrupt here, and let the experiment's
    processes get SIGINT: a shell starts `nohup … &` with SIGINT ignored, and an ignored signal stays
    ignored in every child, so neither this runner nor the training stage would ever see it."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)  # a handler, unlike SIG_IGN, is reset to the default in children
    signal.signal(signal.SIGTERM, interrupt)


def _wrap_up(client, experiment_id: str | None, experiment: str) -> None:
    """What a finished experiment no longer needs in the UI's study filter: the runs a later run replaced."""
    from writeup.studies.records import retire_superseded

    if experiment_id:
        retire_superseded(client, experiment_id, experiment)


def release_backups(planned: list[Experiment], unfinished: set[str]) -> None:
    """Delete the training backups of the finished experiments, except those an unfinished one will adopt
    (its `training_of`): a finished experiment that is resumed restores from them instead of training."""
    adopted = {e.training_of for e in planned if e.name in unfinished}
    for exp in planned:
        if exp.name not in unfinished and exp.name not in adopted:
            _delete_backups(exp.name)


def _delete_backups(experiment: str) -> None:
    for folder in experiment_backups(experiment):
        delete_backup(folder)


def sitting_mates(planned: list[Experiment], unfinished: set[str]) -> dict[str, str]:
    """mate -> the experiment still to run that pairs with it only within one sitting (its `same_sitting_as`):
    the mate runs again in this sitting, even when it finished in an earlier one."""
    return {e.same_sitting_as: e.name for e in planned if e.name in unfinished and e.same_sitting_as}


def _record(client, experiment_id: str | None, names) -> None:
    """Copy the store's records of these experiments into STUDIES.json (a screen's unscored training runs too)."""
    from writeup.studies.records import trained_models

    scored = {e.name: e.scored for e in experiments()}
    live = ({name: trained_models(client, experiment_id, name, scored.get(name, True)) for name in names}
            if experiment_id else {})
    record_file.save(record_file.merged(record_file.load(), live))


def run(only: str | None, names: list[str], extra: list[str], dry_run: bool) -> int:
    from writeup.studies.records import close_stale_runs, finished

    stoppable()
    recorded = record_file.load()  # a broken file stops the runner before anything runs
    client, experiment_id = _store()
    # An experiment whose overrides wait for a choice (the capacity screen's winner) gets them from the records.
    planned = [resolve(e, recorded) for e in experiments() if only in (None, e.part) and (not names or e.name in names)]
    sitting = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"  # this runner process: speed ratios pair within it
    done = {e.name for e in planned if experiment_id and finished(client, experiment_id, e.name, e.target)}
    elsewhere = {e.name for e in planned if e.name not in done and set(e.models) <= set(recorded.get(e.name, {}))}
    unfinished = {e.name for e in planned} - done - elsewhere
    mates = sitting_mates(planned, unfinished)
    if mates:
        planned = [resolve(e, recorded) for e in experiments() if e.name in {p.name for p in planned} | set(mates)]
        done, elsewhere, unfinished = done - set(mates), elsewhere - set(mates), unfinished | set(mates)
    if experiment_id and not dry_run:  # nothing of these runs now: what a killed process left RUNNING is over
        stale = sum(close_stale_runs(client, experiment_id, e.name) for e in planned)
        if stale:
            print(f"{stale} run(s) that a killed process left RUNNING are now marked KILLED", flush=True)
        for name in done:  # before anything runs, in case a stop came between an experiment's end and its wrap-up
            _wrap_up(client, experiment_id, name)
        release_backups(planned, unfinished)
        for name in {*mates, *mates.values()}:  # both train whole here: an earlier sitting's epochs pair with nothing
            _delete_backups(name)
        if done:
            _record(client, experiment_id, done)
    for i, exp in enumerate(planned, 1):
        if exp.name in done:
            print(f"[{i}/{len(planned)}] {exp.name}: finished earlier, skipped", flush=True)
            continue
        if exp.name in elsewhere:
            cpus = sorted({r.cpu for r in recorded[exp.name].values()})
            print(f"[{i}/{len(planned)}] {exp.name}: recorded in {record_file.RECORD_FILE} (run on {', '.join(cpus)}), "
                  "skipped", flush=True)
            continue
        exp = resolve(exp, record_file.load())  # an earlier experiment of this sitting may have made its choice
        if exp.waits_for:
            print(f"[{i}/{len(planned)}] {exp.name}: waits for {exp.waits_for}", flush=True)
            continue
        cmd = exp.command(tuple(extra))
        why = f" (adopts the training of {exp.training_of})" if exp.training_of else ""
        why += f" (again: {mates[exp.name]} pairs with it only in one sitting)" if exp.name in mates else ""
        print(f"[{i}/{len(planned)}] {exp.name}: {' '.join(cmd)}{why}", flush=True)
        if dry_run:
            continue
        started = time.perf_counter()
        # A resumed experiment reruns every stage: a training that had finished restores from its backup.
        env = {**os.environ, "PIPELINE_RUN_TAGS": json.dumps({**exp.tags(), SITTING_TAG: sitting}),
               KEEP_FINISHED_ENV: "1", SHARED_TRAINING_ENV: exp.training_of}
        try:
            code = run_child(cmd, env)
        except KeyboardInterrupt:
            print(f"stopped during {exp.name}: rerun the same command to resume it from its last completed epoch",
                  file=sys.stderr)
            return 130
        if code != 0:
            print(f"error: experiment {exp.name} failed (exit {code}); rerun to resume it", file=sys.stderr)
            return code
        client, experiment_id = _store()
        unfinished.discard(exp.name)
        _wrap_up(client, experiment_id, exp.name)
        _record(client, experiment_id, [exp.name])
        # Its records may make a choice a later experiment waits for, and name the training it adopts.
        planned[:] = [resolve(e, record_file.load()) for e in planned]
        release_backups(planned, unfinished)
        print(f"[{i}/{len(planned)}] {exp.name}: done in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    return 0


def report(output: Path) -> int:
    from writeup.studies.report import FIGURES, studies_markdown

    record_file.load()  # a broken file stops here, before the store is read
    client, experiment_id = _store()
    _record(client, experiment_id, [e.name for e in experiments()])
    page = studies_markdown(record_file.load(), "python -m scripts.studies report")
    output.write_text(page)
    # A figure the page no longer shows (its runs were lost with a store, or renamed) would sit in the
    # repository beside the page as if it were current.
    for stale in FIGURES.glob("*.png"):
        if stale.as_posix() not in page:
            stale.unlink()
    print(f"wrote {output} from {record_file.RECORD_FILE}", file=sys.stderr)
    return 0


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="run or resume the experiments, one at a time")
    go.add_argument("--only", choices=sorted({e.part for e in experiments()}), help="only this part")
    go.add_argument("--name", action="append", default=[], choices=[e.name for e in experiments()],
                    metavar="EXPERIMENT", help="only this experiment (repeatable); see --dry-run for the names")
    go.add_argument("-S", "--set-param", action="append", default=[], help="extra override for every experiment")
    go.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    page = sub.add_parser("report", help="write STUDIES.json, then STUDIES.md and its figures, from MLflow and STUDIES.json")
    page.add_argument("--output", type=Path, default=Path("STUDIES.md"))
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.only, args.name, args.set_param, args.dry_run)
    return report(args.output)


if __name__ == "__main__":
    raise SystemExit(main())
