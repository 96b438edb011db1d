"""The studies' runner: the plan covers the study's experiments once each; the runner runs, skips and reports
real (tiny) DVC experiments and stops cleanly; superseded or abandoned runs leave the study filter."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run
from writeup.studies.plan import PART2, REMEDY_PROTOCOL, experiments, variants_of
from writeup.studies.report import _setup_by_setup


def test_plan_covers_every_study_once_on_the_balanced_set():
    planned = {e.name: e for e in experiments()}
    assert len(planned) == len(experiments())  # unique names
    for study, variants in PART2.items():
        assert [v for v, _ in variants_of(study)] == list(variants)
    part2 = [e for e in planned.values() if e.part == "part2"]
    assert len(part2) == 9 and all("imbalance.keep_fraction=1.0" in e.overrides for e in part2)
    # The study's runs are float32 whatever `auto` picks on the CPU that runs them.
    assert planned["part2-reference"].overrides == ("imbalance.keep_fraction=1.0", "evaluate.models=[baseline]",
                                                    "train.precision=float32")
    assert planned["part2-convs-per-block-1x7x7"].overrides[3:] == ("train.model.convs_per_block=1",
                                                                    "train.model.kernel_size=7")
    assert all("train.precision=float32" in e.overrides for e in planned.values() if e.part in ("part2", "part3"))
    bf16 = [e for e in planned.values() if e.labels.get("setup") == "mixed_bfloat16"]
    assert [e.labels["seed"] for e in bf16] == [42, 43, 44]
    assert all("train.precision=mixed_bfloat16" in e.overrides for e in bf16)
    seeds = {e.labels["seed"] for e in planned.values() if e.part == "part3"}
    assert seeds == {42, 43, 44}
    order = list(planned)  # the band (the defaults on every seed) first, then no-restore, bf16 parity
    assert order[:7] == [*(f"part3-{k}-seed{s}" for k in ("defaults", "no-restore") for s in (42, 43, 44)), "bf16-seed42"]
    # The defaults of seed 42 once more, on whichever CPU runs it: the same overrides and models.
    assert order[7] == "rerun-defaults-seed42" and planned[order[7]].target == "compare"
    assert planned[order[7]].overrides == planned["part3-defaults-seed42"].overrides
    # bfloat16's other seeds and a float32 partner of each bfloat16 run, each in its mate's sitting: pairs that
    # differ in the precision alone (seed, CPU model, training code and training set alike)
    assert order[8:13] == ["bf16-seed43", "bf16-seed44", "f32-seed44", "f32-seed42", "f32-seed43"]
    for s in (42, 43, 44):
        assert planned[f"f32-seed{s}"].overrides == planned[f"part3-defaults-seed{s}"].overrides
        assert planned[f"f32-seed{s}"].same_sitting_as == f"bf16-seed{s}"
        assert planned[f"f32-seed{s}"].labels == {"setup": "float32 partner", "seed": s}
    assert [planned[name].part for name in order[13:22]] == ["part2"] * 9  # then part 2, then the other setups
    assert order[22:25] == [f"part3-{k}-seed42" for k in ("val-balanced", "val-originals", "val-accuracy")]
    # Beyond the study: every remedy on one protocol, in the precision the machine picks, seed by seed; then
    # the capacity part (tests/test_capacity.py), last.
    remedies = [e for e in planned.values() if e.part == "remedies"]
    capacity = [e.name for e in planned.values() if e.part == "capacity"]
    assert order[-len(capacity):] == capacity
    assert len(remedies) >= 7 * 3 and order[-len(remedies) - len(capacity):-len(capacity)] == [e.name for e in remedies]
    assert {e.labels["seed"] for e in remedies[:len(remedies) // 3]} == {42}
    assert all(set(REMEDY_PROTOCOL) <= set(e.overrides) and not any("precision" in o for o in e.overrides)
               for e in remedies)
    assert planned["remedy-oversampling-seed42"].target == "evaluate@augmented"
    assert "augment.policy=oversample" in planned["remedy-oversampling-seed42"].overrides
    assert planned["remedy-mixup-seed43"].target == "evaluate@baseline"
    # The page's run table still reads one setup at a time.
    ran = [n for n in order if n.startswith(("part3-", "bf16-", "rerun-", "f32-"))][::-1]
    assert _setup_by_setup(ran)[6:16] == [*(f"bf16-seed{s}" for s in (42, 43, 44)), "rerun-defaults-seed42",
                                          *(f"f32-seed{s}" for s in (42, 43, 44)),
                                          *(f"part3-val-balanced-seed{s}" for s in (42, 43, 44))]
    assert planned["part3-val-originals-seed44"].target == "evaluate@augmented"  # the baseline's split is the same
    # On the augmented model's split (equal class counts) val accuracy is val balanced accuracy: val-balanced's run.
    assert planned["part3-val-accuracy-seed44"].target == "evaluate@baseline"
    assert planned["part3-defaults-seed43"].command()[:6] == ["dvc", "exp", "run", "--temp", "--force", "--name"]


def test_superseded_runs_leave_the_study_filter_and_name_their_successor(mlflow_uri):
    from writeup.studies.records import retire_superseded

    client = MlflowClient(mlflow_uri)
    exp = client.create_experiment("cifar10-imbalance")

    def stage_run(name, stage, status, at):
        tags = {"dvc_exp_name": name, "studies": "part3 defaults"} | ({"stage": stage} if stage else {})
        run_ = client.create_run(exp, start_time=at, tags=tags)
        client.set_terminated(run_.info.run_id, status)
        return run_.info.run_id

    # A first sitting stopped during train-augmented; the second reran every stage, restoring train-baseline.
    old = [stage_run("part3-defaults-seed44", None, "KILLED", 1), stage_run("part3-defaults-seed44", "train-baseline",
           "FINISHED", 2), stage_run("part3-defaults-seed44", "train-augmented", "KILLED", 3)]
    new = [stage_run("part3-defaults-seed44", None, "FINISHED", 10), stage_run("part3-defaults-seed44",
           "train-baseline", "FINISHED", 11), stage_run("part3-defaults-seed44", "train-augmented", "FINISHED", 12)]
    other = stage_run("part3-defaults-seed43", "train-baseline", "FINISHED", 0)  # another experiment's, older

    assert retire_superseded(client, exp, "part3-defaults-seed44") == 3
    shown = client.search_runs([exp], "tags.studies LIKE '%part3%'")
    assert {r.info.run_id for r in shown} == {*new, other}
    for before, after in zip(old, new):
        tags = client.get_run(before).data.tags
        assert tags["superseded_by"] == after and tags["studies_superseded"] == "part3 defaults" and "studies" not in tags
    assert retire_superseded(client, exp, "part3-defaults-seed44") == 0  # once is enough


@pytest.mark.slow
def test_runner_runs_then_skips_and_the_report_names_the_run(pipeline_repo, monkeypatch):
    repo = pipeline_repo
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the project's own store, as users run it
    one = [sys.executable, "-m", "scripts.studies", "run", "--name", "part2-hidden-layers-0"]  # 4 stages: the smallest
    env = {**os.environ, "PYTHONPATH": str(repo), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    stopped = subprocess.Popen(one, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in stopped.stdout:  # stop it in the stage after its training has finished
        if line.startswith("train-baseline: best epoch"):
            stopped.send_signal(signal.SIGINT)
            break
    out, _ = stopped.communicate(timeout=300)
    assert stopped.returncode == 130, out
    assert list(repo.glob(".train_backup/baseline-part2-hidden-layers-0-*/state.npz")), "kept: the experiment is unfinished"
    first = run(one, repo, {"PYTHONPATH": str(repo)})  # resumes
    assert "part2-hidden-layers-0: done" in first.stdout
    recorded = json.loads((repo / "STUDIES.json").read_text())["experiments"]  # kept beyond this machine's store
    assert recorded["part2-hidden-layers-0"]["baseline"]["params"]["train.model.dense_units"] == "[]"
    assert not list(repo.glob(".train_backup/*")), "deleted once the experiment finished"
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cifar10-imbalance").experiment_id
    # The set it trained on is, by MD5, the one this experiment's subsample stage wrote.
    subsampled = client.search_runs([exp], "tags.stage = 'imbalance-subsample' and "
                                           "tags.dvc_exp_name = 'part2-hidden-layers-0'")
    written = {d.dataset.digest for r in subsampled for d in r.inputs.dataset_inputs
               if d.dataset.name == "data/imbalanced/train"}
    trained_on = recorded["part2-hidden-layers-0"]["baseline"]["inputs"]["data/imbalanced/train"]
    assert written == {trained_on} and len(trained_on) == 32
    trained, restored = client.search_runs([exp], "tags.stage = 'train-baseline' and attributes.status = 'FINISHED'",
                                           order_by=["attributes.start_time ASC"])
    assert restored.data.params["resumed_from_epoch"] == str(int(trained.data.metrics["epochs_run"]))  # not retrained
    assert restored.data.metrics["train_images_per_s"] == trained.data.metrics["train_images_per_s"] > 0
    again = run(one, repo, {"PYTHONPATH": str(repo)})
    assert "part2-hidden-layers-0: finished earlier, skipped" in again.stdout
    run([sys.executable, "-m", "scripts.studies", "report"], repo, {"PYTHONPATH": str(repo)})
    page = (repo / "STUDIES.md").read_text()
    hidden = page.split("### hidden layers")[1].split("###")[0]
    assert "| 0 | `part2-hidden-layers-0` | 42 | `" in hidden and "| float32 |" in hidden
    assert (repo / "figures/studies/hidden-layers.png").stat().st_size > 5000
    tagged = client.search_runs([exp], "tags.studies LIKE '%hidden layers%' and tags.stage = 'train-baseline'")
    # The UI's filter: the run the page reports, not the first sitting's (it names its successor).
    assert [r.info.run_id for r in tagged] == [restored.info.run_id]
    assert tagged[0].data.params["train.model.dense_units"] == "[]"
    assert client.get_run(trained.info.run_id).data.tags["superseded_by"] == restored.info.run_id


def _experiment_mimic(tmp_path) -> str:
    """Like `dvc exp run`: a parent that ignores SIGINT while its stage, a grandchild, needs SIGINT to stop
    cleanly (a training run keeps its backup; Python's default handler, as a stage has)."""
    stage = ("import sys, time, pathlib\n"
             f"pathlib.Path({str(tmp_path / 'ready')!r}).touch()\n"
             "try:\n"
             "    time.sleep(60)\n"
             "except KeyboardInterrupt:\n"
             f"    pathlib.Path({str(tmp_path / 'stopped')!r}).write_text('clean'); sys.exit(130)\n")
    return ("import signal, subprocess, sys\n"  # as dvc/stage/run.py: start the stage, then ignore SIGINT
            f"stage = subprocess.Popen([sys.executable, '-c', {stage!r}])\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "sys.exit(stage.wait())\n")


def test_ctrl_c_reaches_the_whole_experiment_and_is_raised_again(tmp_path):
    import os
    import signal
    import threading
    import time

    from scripts.studies import run_child

    parent = _experiment_mimic(tmp_path)  # the runner is sent `kill -INT`, which nothing else gets

    def interrupt():
        while not (tmp_path / "ready").exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (xdist workers ignore it)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_child([sys.executable, "-c", parent], dict(os.environ), patience=30)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (tmp_path / "stopped").read_text() == "clean"


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_runner_started_in_the_background_still_stops_cleanly(tmp_path, signame):
    import signal
    import subprocess
    import time

    # `nohup python -m scripts.studies run &` from a script starts with SIGINT ignored, and its children
    # inherit that: before stoppable(), `kill -INT` reached nothing and the stage trained on.
    runner = ("import sys\n"
              "from scripts.studies import run_child, stoppable\n"
              "stoppable()\n"
              "try:\n"
              f"    run_child([sys.executable, '-c', {_experiment_mimic(tmp_path)!r}], {{}}, patience=30)\n"
              "except KeyboardInterrupt:\n"
              "    sys.exit(130)\n")
    proc = subprocess.Popen([sys.executable, "-c", runner], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(getattr(signal, signame))
    assert proc.wait(timeout=60) == 130
    assert (tmp_path / "stopped").read_text() == "clean"


def test_runs_a_dead_process_left_running_are_closed_before_the_experiment_resumes(tmp_path):
    from writeup.studies.records import close_stale_runs

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("cifar10-imbalance")
    left = [client.create_run(exp, tags={"dvc_exp_name": "part3-defaults-seed43", "stage": s}).info.run_id
            for s in ("part3-defaults-seed43", "train-baseline")]  # the group's parent run and a stage run
    done = client.create_run(exp, tags={"dvc_exp_name": "part3-defaults-seed43", "stage": "download"}).info.run_id
    client.set_terminated(done, "FINISHED")
    other = client.create_run(exp, tags={"dvc_exp_name": "part3-defaults-seed44"}).info.run_id
    assert close_stale_runs(client, exp, "part3-defaults-seed43") == 2
    assert [client.get_run(r).info.status for r in (*left, done, other)] == ["KILLED", "KILLED", "FINISHED", "RUNNING"]
    assert close_stale_runs(client, exp, "part3-defaults-seed43") == 0
