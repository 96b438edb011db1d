"""STUDIES.json: the page can be written again from it on a machine whose MLflow store lost the runs, the
store's newer runs replace the file's, the runner skips what the file holds, and a broken file is one line."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from scripts import studies
from tests.studyruns import training_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    """A project folder (cwd) with the real params.yaml and an empty MLflow store of its own."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'first.db'}")
    return root


def _store(project: Path, name: str) -> tuple[MlflowClient, str]:
    client = MlflowClient(f"sqlite:///{project / name}")
    return client, client.create_experiment("cifar10-imbalance")


def test_the_page_is_written_again_from_the_file_when_the_store_is_gone(project, monkeypatch):
    client, exp = _store(project, "first.db")
    training_run(client, exp, "part2-reference", "baseline", 0.80, [0.5, 0.7, 0.8])
    training_run(client, exp, "part2-hidden-layers-0", "baseline", 0.79, [0.5, 0.79])
    client.set_tag(client.search_runs([exp])[0].info.run_id, "mlflow.user", "someone")

    assert studies.report(project / "STUDIES.md") == 0
    first = (project / "STUDIES.md").read_text()
    saved = json.loads((project / "STUDIES.json").read_text())["experiments"]
    assert set(saved) == {"part2-reference", "part2-hidden-layers-0"}
    run = saved["part2-hidden-layers-0"]["baseline"]
    assert run["curves"]["val_accuracy"] == [0.5, 0.79] and run["metrics"]["test_accuracy"] == 0.79
    assert run["inputs"] == {"data/imbalanced/train": "0123456789abcdef0123456789abcdef", "data/raw/test": "f" * 32}
    assert run["tags"]["cpu"] == "Test CPU" and not any(k.startswith("mlflow.") for r in saved.values()
                                                          for k in r["baseline"]["tags"])
    assert "| 0 | `part2-hidden-layers-0` | 42 | `abc1234def` | float32 | Test CPU | 2 |" in first
    # A figure of an older page whose runs the records no longer hold goes; the page's own stay.
    # (part2-reference runs in every part-2 study, so each of them has a figure; no part-3 run has finished.)
    drawn = sorted(p.name for p in (project / "figures/studies").iterdir())
    (project / "figures/studies/part3.png").write_bytes(b"stale")
    assert studies.report(project / "STUDIES.md") == 0
    assert sorted(p.name for p in (project / "figures/studies").iterdir()) == drawn
    assert "hidden-layers.png" in drawn and "part3.png" not in drawn

    # Another machine: an empty store. The page comes back the same from the file alone.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'second.db'}")
    os.remove(project / "figures/studies/hidden-layers.png")
    assert studies.report(project / "STUDIES.md") == 0
    assert (project / "STUDIES.md").read_text() == first
    assert (project / "figures/studies/hidden-layers.png").stat().st_size > 5000

    # A newer run in that store replaces the file's run of that model; the others stay.
    client, exp = _store(project, "second.db")
    training_run(client, exp, "part2-reference", "baseline", 0.83, [0.6, 0.83])
    studies.report(project / "STUDIES.md")
    saved = json.loads((project / "STUDIES.json").read_text())["experiments"]
    assert saved["part2-reference"]["baseline"]["metrics"]["test_accuracy"] == 0.83
    assert saved["part2-hidden-layers-0"]["baseline"]["metrics"]["test_accuracy"] == 0.79


def test_the_runner_skips_what_the_file_holds_and_runs_the_rest(project):
    client, exp = _store(project, "first.db")
    training_run(client, exp, "part2-hidden-layers-0", "baseline", 0.79, [0.5, 0.79])
    training_run(client, exp, "part3-defaults-seed42", "baseline", 0.72, [0.6, 0.7])  # half of an experiment
    studies.report(project / "STUDIES.md")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'second.db'}", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "scripts.studies", "run", "--dry-run", "--name", "part2-hidden-layers-0",
                          "--name", "part3-defaults-seed42"], cwd=project, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "[2/2] part2-hidden-layers-0: recorded in STUDIES.json (run on Test CPU), skipped" in out.stdout
    # Only its baseline is recorded: the experiment runs (and its training resumes from the backup if it has one).
    assert "[1/2] part3-defaults-seed42: dvc exp run --temp --force --name part3-defaults-seed42" in out.stdout


@pytest.mark.parametrize("text", ["{not json", '{"format": 99, "experiments": {}}',
                                  '{"format": 1, "experiments": {"x": {"baseline": {"model": "baseline"}}}}'])
def test_a_broken_record_file_stops_the_command_with_one_line_and_is_left_as_it_was(project, capsys, text):
    (project / "STUDIES.json").write_text(text)
    with pytest.raises(SystemExit) as stop:
        studies.main(["report"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: STUDIES.json: not a studies record file (") and "\n" not in err
    assert (project / "STUDIES.json").read_text() == text and not (project / "STUDIES.md").exists()


def test_a_float32_partner_still_to_run_brings_its_bfloat16_mate_back_into_the_same_sitting(project):
    """A speed ratio pairs only runs of one sitting: bf16-seed44 finished in an earlier one (its records are in
    STUDIES.json), so running f32-seed44 alone would pair with nothing. Once both are recorded, neither runs."""
    from writeup.studies.plan import experiments

    client, exp = _store(project, "first.db")
    for model in ("baseline", "augmented"):
        training_run(client, exp, "bf16-seed44", model, 0.75, [0.6, 0.75], seed=44)
    studies.report(project / "STUDIES.md")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'second.db'}", "PYTHONPATH": str(ROOT)}

    def dry_run(*names):
        args = [a for n in names for a in ("--name", n)]
        out = subprocess.run([sys.executable, "-m", "scripts.studies", "run", "--dry-run", *args], cwd=project,
                             env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return [line for line in out.stdout.splitlines() if line.startswith("[")]

    lines = dry_run("f32-seed44")
    assert len(lines) == 2
    assert lines[0].startswith("[1/2] bf16-seed44: dvc exp run --temp --force --name bf16-seed44 ")
    assert lines[0].endswith(" (again: f32-seed44 pairs with it only in one sitting)")
    assert lines[1].startswith("[2/2] f32-seed44: dvc exp run --temp --force --name f32-seed44 ")
    assert next(e for e in experiments() if e.name == "f32-seed44").same_sitting_as == "bf16-seed44"

    for model in ("baseline", "augmented"):
        training_run(client, exp, "f32-seed44", model, 0.74, [0.6, 0.74], seed=44)
    studies.report(project / "STUDIES.md")
    assert dry_run("bf16-seed44", "f32-seed44") == [
        "[1/2] bf16-seed44: recorded in STUDIES.json (run on Test CPU), skipped",
        "[2/2] f32-seed44: recorded in STUDIES.json (run on Test CPU), skipped"]


def _confusion(accuracy: float) -> dict:
    """A 10-class confusion matrix of 1,000 test images a class, `accuracy` of each class on the diagonal and the
    rest spread over the next class."""
    from cifar10.classes import CIFAR10_CLASSES

    right = round(1000 * accuracy)
    matrix = [[right if j == i else (1000 - right if j == (i + 1) % 10 else 0) for j in range(10)] for i in range(10)]
    return {"classes": list(CIFAR10_CLASSES), "matrix": matrix}


def test_a_confusion_matrix_the_training_run_holds_is_kept_and_gives_macro_f1_its_interval(project):
    from cifar10.errors import PipelineError
    from cifar10.reporting.intervals import confusion_intervals
    from writeup.studies import record_file
    from writeup.studies.records import CONFUSION_ARTIFACT, trained_models
    from writeup.studies.uncertainty import interval_on_test

    client, exp = _store(project, "first.db")
    scored = training_run(client, exp, "part3-defaults-seed42", "baseline", 0.72, [0.6, 0.7])
    client.log_dict(scored, _confusion(0.72), CONFUSION_ARTIFACT)  # as the evaluate stage would, beside test_report.json
    training_run(client, exp, "part2-reference", "baseline", 0.80, [0.5, 0.8])  # an older run: no matrix

    assert studies.report(project / "STUDIES.md") == 0
    saved = json.loads((project / "STUDIES.json").read_text())["experiments"]
    assert saved["part3-defaults-seed42"]["baseline"]["confusion"] == _confusion(0.72)
    assert "confusion" not in saved["part2-reference"]["baseline"]  # the file keeps its shape for runs without one
    run = record_file.load()["part3-defaults-seed42"]["baseline"]
    macro = interval_on_test(run, "test_macro_f1")
    expected = confusion_intervals(_confusion(0.72)["matrix"], _confusion(0.72)["classes"])["macro_f1"]
    assert (macro.low, macro.high) == (expected.low, expected.high) and macro.low < 0.72 < macro.high
    assert interval_on_test(record_file.load()["part2-reference"]["baseline"], "test_macro_f1") is None

    # The page's macro F1 then carries the interval (part 3's gap table, the defaults' row).
    page = (project / "STUDIES.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| baseline | macro F1 |"))
    assert f"| 0.710 ±{macro.half_width:.3f} |" in row and "no interval" not in row
    assert "Macro F1 gets an interval only from a recorded confusion matrix (1 of these 2 records has one)" in page

    broken = training_run(client, exp, "part3-defaults-seed43", "baseline", 0.74, [0.6, 0.7], seed=43)
    client.log_dict(broken, {"classes": ["cat", "dog"], "matrix": [[1, 2, 3]]}, CONFUSION_ARTIFACT)
    with pytest.raises(PipelineError, match=r"confusion_matrix.json is not a confusion matrix \(2 classes, matrix "
                                            r"rows of lengths \[3\]\); expected"):
        trained_models(client, exp, "part3-defaults-seed43")
