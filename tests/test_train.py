"""The train stages: validation split, determinism, resume after SIGKILL, MLflow records, clean refusals."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from cifar10.data import dataset
from cifar10.data.splits import split_rows
from cifar10.errors import PipelineError
from cifar10.schema.train import TrainParams
from cifar10.tracking.links import model_digest
from cifar10.training.devices import describe, local_gpus
from cifar10.training.fit import train
from cifar10.training.precision import resolve
from stages.train import main
from tests.conftest import REPO, default_params, shrink_params, write_params
from tests.tinydata import make_images

SMALL_MODEL = {"filters": [4, 8], "conv_dropout": [0.1, 0.2], "dense_units": [8]}
EPOCHS = 4


def _stage_params(precision: str = "auto") -> dict:
    p = shrink_params(default_params())
    p["train"].update(epochs=EPOCHS, batch_size=16, precision=precision)
    p["train"]["model"].update(SMALL_MODEL)
    p["train"]["early_stopping"]["patience"] = 2
    return p


def _project(root: Path, precision: str = "auto") -> Path:
    """A project folder holding the stage's input: an imbalanced-like training set (no test set: the
    train stages never read it)."""
    root.mkdir(parents=True)
    write_params(root, _stage_params(precision))
    train_ds = make_images(8, seed=1)
    keep = (train_ds.y != 3) | (np.arange(len(train_ds)) % 2 == 0)  # cat made rare
    dataset.save(root / dataset.IMBALANCED_TRAIN, dataset.Dataset(train_ds.x[keep], train_ds.y[keep]))
    return root


def _read_csv(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _weights(path: Path) -> list[np.ndarray]:
    return keras.models.load_model(path).get_weights()


def _stage_runs(uri: str, stage: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cifar10-imbalance")
    return client, client.search_runs([exp.experiment_id], f"tags.stage = '{stage}'")


def _uninterrupted(tmp_path_factory, precision: str) -> tuple[Path, str]:
    root = _project(tmp_path_factory.mktemp("uninterrupted") / "project", precision)
    uri = f"sqlite:///{root.parent / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        main(["--variant", "baseline"])
    return root, uri


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted in-process run of train-baseline (precision auto): its project folder and MLflow store."""
    return _uninterrupted(tmp_path_factory, "auto")


@pytest.fixture(scope="module")
def uninterrupted_bf16(tmp_path_factory):
    """The same run in mixed_bfloat16, whatever this CPU's rule picks."""
    return _uninterrupted(tmp_path_factory, "mixed_bfloat16")


def test_validation_split_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(10), [50] * 3 + [5] + [50] + [5] + [50] * 4)
    tr, va = split_rows(y, 0.2, seed=3)
    assert len(set(tr) & set(va)) == 0 and len(tr) + len(va) == len(y) and len(va) == round(0.2 * len(y))
    assert np.array_equal(np.bincount(y[va], minlength=10), [10] * 3 + [1] + [10] + [1] + [10] * 4)
    again, other = split_rows(y, 0.2, seed=3), split_rows(y, 0.2, seed=4)
    assert np.array_equal(again[1], va) and not np.array_equal(other[1], va)

    sub_tr, sub_va = split_rows(y, 0.2, seed=3, train_size=105)
    assert len(sub_tr) + len(sub_va) == 105 and len(sub_va) == 21 and not set(sub_tr) & set(sub_va)
    counts = np.bincount(y[np.concatenate([sub_tr, sub_va])], minlength=10)
    assert counts.max() - counts[counts > 1].min() <= 1 and counts[3] == 1  # proportional to 50:5


def test_validation_from_originals_keeps_every_variant_on_its_originals_side():
    # An imbalanced set (classes 3 and 5 small), then rebalanced: synthetic rows point at their originals.
    y = np.repeat(np.arange(10), [50] * 3 + [5] + [50] + [5] + [50] * 4)
    n = len(y)
    rng = np.random.default_rng(0)
    extra = np.concatenate([rng.choice(np.flatnonzero(y == c), 45) for c in (3, 5)])
    source = np.concatenate([np.arange(n), extra])
    rebalanced = np.concatenate([y, y[extra]])
    tr, va = split_rows(rebalanced, 0.2, seed=3, source=source)
    assert (source[va] == va).all()  # validation: originals only
    assert not np.isin(source[tr], va).any()  # no training row shows a validation image
    left_out = np.isin(source, va) & (source != np.arange(len(source)))
    assert len(tr) + len(va) + left_out.sum() == len(rebalanced) and left_out.sum() > 0
    assert np.array_equal(va, split_rows(y, 0.2, seed=3)[1])  # the unaugmented set's validation rows
    # Without synthetic rows (every source its own row) it is the ordinary split.
    same, ordinary = split_rows(y, 0.2, seed=3, source=np.arange(n)), split_rows(y, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(same, ordinary))


def test_validation_from_originals_trains_and_refuses_a_set_without_sources(tiny_train):
    from dataclasses import replace

    from cifar10.augmentation.rebalance import augment
    from cifar10.data.subsample import subsample
    from cifar10.schema.augment import AugmentParams

    # 4 of 8 cats kept, then each one's single variant: the 1-2 cats validation takes lose theirs.
    rebalanced = augment(subsample(tiny_train, ["cat"], 0.5, seed=0), ["cat"], "max",
                         AugmentParams(batch_size=16), seed=1)
    cfg = TrainParams.model_validate({"model": SMALL_MODEL, "epochs": 1, "batch_size": 16, "validation_split": 0.4,
                                      "validation_from": "originals"})
    result = train(rebalanced, cfg, seed=5, deterministic=True)
    assert result.info["val_images"] == round(0.4 * 76)  # of the 76 originals (9 classes of 8, 4 cats)
    assert len(rebalanced) - result.info["val_images"] - result.info["train_images"] in (1, 2)
    no_sources = replace(rebalanced, extra={"synthetic": rebalanced.extra["synthetic"]})
    with pytest.raises(PipelineError, match=r"^params\.yaml: train\.validation_from: originals needs the `source`"):
        train(no_sources, cfg, seed=5, deterministic=True)


def test_split_errors_name_the_key():
    y = np.repeat(np.arange(10), 2)
    with pytest.raises(PipelineError, match=r"^params\.yaml: train\.train_size: at most the 20 images .*got 30"):
        split_rows(y, 0.1, seed=0, train_size=30)
    with pytest.raises(PipelineError, match=r"^params\.yaml: transfer\.validation_split: 0\.01 of 20 images"):
        split_rows(y, 0.01, seed=0, section="transfer")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_two_runs_give_identical_metrics_and_weights(tiny_train, precision):
    cfg = TrainParams.model_validate({"model": SMALL_MODEL, "epochs": 2, "batch_size": 16, "precision": precision})
    first, second = (train(tiny_train, cfg, seed=5, deterministic=True) for _ in range(2))
    history1, history2 = first.history, second.history
    assert history1 == history2 and len(history1) == 2
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history1[0]["loss"] != history1[1]["loss"]  # it trained, so the equality is not vacuous


def test_balanced_accuracy_is_the_mean_recall_of_the_classes_seen():
    from cifar10.training.balanced_accuracy import BalancedAccuracy

    metric = BalancedAccuracy(3)
    probs = np.eye(3, dtype="float32")
    # 8 of class 0 all right, 2 of class 1 with one right: accuracy 0.9, balanced (1 + 0.5) / 2 = 0.75
    y_true = np.array([0] * 8 + [1, 1])
    y_pred = probs[[0] * 8 + [1, 0]]
    metric.update_state(y_true[:5], y_pred[:5])
    metric.update_state(y_true[5:], y_pred[5:])  # accumulates over batches, as over an epoch
    assert float(metric.result()) == pytest.approx(0.75)
    metric.reset_state()
    metric.update_state(np.array([2]), probs[[2]])
    assert float(metric.result()) == pytest.approx(1.0)


def test_early_stopping_can_watch_val_balanced_accuracy(tiny_train):
    cfg = TrainParams.model_validate({"model": SMALL_MODEL, "epochs": 2, "batch_size": 16,
                                      "early_stopping": {"monitor": "val_balanced_accuracy", "patience": 0}})
    result = train(tiny_train, cfg, seed=5, deterministic=True)
    rows = result.history
    assert all(0.0 <= r["val_balanced_accuracy"] <= 1.0 for r in rows)
    best = max(range(len(rows)), key=lambda i: rows[i]["val_balanced_accuracy"])
    assert result.info["best_epoch"] == best + 1  # maximised, not minimised


def test_a_backup_of_another_model_is_not_resumed_and_replays_no_rows(tiny_train, tmp_path):
    from cifar10.training.history import EpochHistory

    small = {"model": SMALL_MODEL, "epochs": 2, "batch_size": 16}
    train(tiny_train, TrainParams.model_validate(small), seed=5, backup_dir=tmp_path)
    replayed: list[dict] = []
    history = EpochHistory(replay_sinks=[lambda row, rows: replayed.append(row)])
    other = TrainParams.model_validate(small | {"epochs": 1, "model": SMALL_MODEL | {"dense_units": [6]}})
    result = train(tiny_train, other, seed=5, backup_dir=tmp_path, history=history)
    assert result.info["resumed_from_epoch"] == 0
    assert [row["epoch"] for row in result.history] == [1]  # none of the other model's two epochs
    assert replayed == []


@pytest.mark.slow
def test_mlflow_run_holds_curves_per_class_metrics_and_artifacts(uninterrupted):
    root, uri = uninterrupted
    client, runs = _stage_runs(uri, "train-baseline")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].info.run_name == "train-baseline"
    run_ = runs[0]
    rows = _read_csv(root / "plots/baseline/history.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1)) and len(rows) >= 3
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "val_balanced_accuracy"):
        steps = client.get_metric_history(run_.info.run_id, key)
        assert sorted(m.step for m in steps) == list(range(1, len(rows) + 1)), key
    val_loss = {m.step: m.value for m in client.get_metric_history(run_.info.run_id, "val_loss")}
    assert val_loss[1] == pytest.approx(float(rows[0]["val_loss"]))
    metrics = run_.data.metrics
    assert not any(k.startswith("test_") for k in metrics), "only the evaluate stage scores the test set"
    assert run_.data.tags["model_sha256"] == model_digest(root / "models/baseline.keras")  # how evaluate finds it
    assert metrics["params_total"] == keras.models.load_model(root / "models/baseline.keras").count_params()
    assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"] == len(rows)
    assert metrics["train_images_per_s"] > 0 and metrics["train_seconds"] > 0
    assert run_.data.params["train.model.filters"] == "[4, 8]" and run_.data.params["base.seed"] == "42"
    assert run_.data.params["train.precision"] == "auto"  # as asked, and as this CPU's rule resolved it:
    assert run_.data.params["precision"] == resolve("auto")[0]
    assert run_.data.tags["gpu"] == describe(local_gpus())  # "no GPU" only where TensorFlow sees none
    artifacts = {a.path for a in client.list_artifacts(run_.info.run_id)}
    assert {"model_summary.txt", "curves"} <= artifacts
    assert not list((root / ".train_backup").glob("*"))  # deleted after success


def _signal_after_first_epoch(root, uri: str, signum: int) -> subprocess.Popen:
    """Start train-baseline in `root`, send `signum` once its first epoch is backed up; return the process."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO)}
    # SIGINT as a terminal leaves it (xdist workers ignore it, and an ignored signal is inherited).
    proc = subprocess.Popen([sys.executable, "-m", "stages.train", "--variant", "baseline"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(root.glob(".train_backup/baseline-*/state.npz")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no epoch backed up within 120 s: {proc.communicate()[1]}")
        time.sleep(0.01)
    proc.send_signal(signum)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["auto", "mixed_bfloat16"])
def test_sigkill_after_an_epoch_then_rerun_ends_like_an_uninterrupted_run(precision, request, tmp_path, monkeypatch):
    reference, _ = request.getfixturevalue("uninterrupted" if precision == "auto" else "uninterrupted_bf16")
    root = _project(tmp_path / "project", precision)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _signal_after_first_epoch(root, uri, signal.SIGKILL)
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (root / "models/baseline.keras").exists()  # never a half-written model

    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    main(["--variant", "baseline"])
    for a, b in zip(_weights(reference / "models/baseline.keras"), _weights(root / "models/baseline.keras")):
        np.testing.assert_array_equal(a, b)
    assert _read_csv(root / "plots/baseline/history.csv") == _read_csv(reference / "plots/baseline/history.csv")
    client, runs = _stage_runs(uri, "train-baseline")
    resumed = next(r for r in runs if r.info.status == "FINISHED")
    assert 1 <= int(resumed.data.params["resumed_from_epoch"]) < EPOCHS
    assert resumed.data.params["precision"] == resolve(precision)[0]
    steps = [m.step for m in client.get_metric_history(resumed.info.run_id, "val_loss")]
    assert sorted(steps) == list(range(1, len(_read_csv(root / "plots/baseline/history.csv")) + 1))
    assert not list(root.glob(".train_backup/*"))


def test_a_restored_training_names_the_sittings_that_trained_it_not_the_restoring_one(tiny_train, tmp_path):
    from cifar10.tracking.provenance import trained_by_tags

    cfg = TrainParams.model_validate({"model": SMALL_MODEL, "epochs": 3, "batch_size": 16, "precision": "float32"})
    first, second = {"cpu": "CPU A", "gpu": "no GPU", "commit": "aaa"}, {"cpu": "CPU B", "gpu": "GPU B", "commit": "bbb"}
    shorter = cfg.model_copy(update={"epochs": 2})  # a sitting that stopped after 2 epochs...
    train(tiny_train, shorter, seed=5, backup_dir=tmp_path, sitting=first)
    resumed = train(tiny_train, cfg, seed=5, backup_dir=tmp_path, sitting=second)  # ...and one that ran the 3rd
    assert resumed.info["sittings"] == [{**first, "epochs": 2}, {**second, "epochs": 1}]
    here = {"cpu": "CPU C", "gpu": "GPU C", "commit": "ccc"}
    restored = train(tiny_train, cfg, seed=5, backup_dir=tmp_path, sitting=here)
    assert restored.info["resumed_from_epoch"] == 3 and restored.info["sittings"] == resumed.info["sittings"]
    assert trained_by_tags(restored.info["sittings"], here) == {
        "cpu": "CPU A + CPU B", "gpu": "no GPU + GPU B", "git_commit": "aaa + bbb",
        "restored_by.cpu": "CPU C", "restored_by.gpu": "GPU C", "restored_by.git_commit": "ccc"}
    assert trained_by_tags(None, second)["cpu"].startswith("unknown")
    # A backup from before sittings named their GPUs: unknown, not this machine's
    assert trained_by_tags([{"cpu": "CPU A", "commit": "aaa", "epochs": 2}], here)["gpu"] == "unknown"


def test_an_experiments_backups_are_its_own_and_no_other_experiments(tmp_path, monkeypatch):
    from cifar10.training.backup_folders import backup_folder, experiment_backups

    data = tmp_path / "train.npz"
    data.write_bytes(b"rows")
    made = {}
    for experiment in ("part3-no-restore-seed42", "restore-seed42", "part3-defaults-seed4", "part3-defaults-seed44"):
        monkeypatch.setenv("DVC_EXP_NAME", experiment)
        made[experiment] = {backup_folder(v, {"epochs": 2}, data, tmp_path) for v in ("baseline", "augmented")}
        for folder in made[experiment]:
            folder.mkdir()
    (tmp_path / "notes-restore-seed42-0123456789abcdef").mkdir()  # not a training's backup
    for experiment, folders in made.items():
        assert set(experiment_backups(experiment, tmp_path)) == folders, experiment
    monkeypatch.setenv("DVC_EXP_NAME", "part3-defaults-seed4")
    again = backup_folder("baseline", {"epochs": 3}, data, tmp_path)  # other params: its old folder goes
    assert not any(f.exists() for f in made["part3-defaults-seed4"] if f.name.startswith("baseline"))
    assert again not in made["part3-defaults-seed4"] and all(f.exists() for f in made["part3-defaults-seed44"])


@pytest.mark.slow
def test_a_kept_finished_backup_restores_the_model_and_its_speed_without_training(uninterrupted, tmp_path,
                                                                                 monkeypatch):
    """The studies runner keeps a finished training's backup: its forced rerun restores, not retrains."""
    from cifar10.training.backup_folders import KEEP_FINISHED_ENV

    reference, _ = uninterrupted
    root = _project(tmp_path / "project")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv(KEEP_FINISHED_ENV, "1")
    main(["--variant", "baseline"])
    assert list(root.glob(".train_backup/baseline-*/state.npz")), "kept while the env variable is set"
    (root / "models/baseline.keras").unlink()  # as in a new temporary workspace
    main(["--variant", "baseline"])

    for a, b in zip(_weights(reference / "models/baseline.keras"), _weights(root / "models/baseline.keras")):
        np.testing.assert_array_equal(a, b)
    assert _read_csv(root / "plots/baseline/history.csv") == _read_csv(reference / "plots/baseline/history.csv")
    client, runs = _stage_runs(uri, "train-baseline")
    first, restored = sorted(runs, key=lambda r: r.info.start_time)
    epochs = first.data.metrics["epochs_run"]
    assert restored.data.params["resumed_from_epoch"] == str(int(epochs))  # no epoch trained again
    for tag in ("cpu", "git_commit"):  # this machine trained it, and this machine restored it
        assert restored.data.tags[tag] == first.data.tags[tag] == restored.data.tags[f"restored_by.{tag}"]
    for key in ("epochs_run", "best_epoch", "train_images_per_s", "train_seconds"):
        assert restored.data.metrics[key] == pytest.approx(first.data.metrics[key]), key
    assert first.data.metrics["train_images_per_s"] > 0
    steps = [m.step for m in client.get_metric_history(restored.info.run_id, "val_loss")]
    assert sorted(steps) == list(range(1, int(epochs) + 1))  # the restored run shows the whole curve


@pytest.mark.slow
def test_ctrl_c_stops_training_with_one_line_keeps_the_backup_and_marks_the_run_killed(tmp_path):
    root = _project(tmp_path / "project")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _signal_after_first_epoch(root, uri, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == ("stopped: stages.train was interrupted; no output was written (a training "
                                            "stage resumes from its last completed epoch when run again)")
    assert not (root / "models/baseline.keras").exists() and list(root.glob(".train_backup/baseline-*/state.npz"))
    _, runs = _stage_runs(uri, "train-baseline")
    assert [r.info.status for r in runs] == ["KILLED"]


def test_impossible_model_fails_before_any_work(tmp_path, monkeypatch, mlflow_uri, capsys):
    root = _project(tmp_path / "project")
    params = _stage_params()
    params["train"]["model"].update(kernel_size=7, filters=[4, 4, 4, 4], conv_dropout=[0.1] * 4)
    write_params(root, params)
    monkeypatch.chdir(root)
    with pytest.raises(SystemExit) as exc:
        main(["--variant", "baseline"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: params.yaml: train.model.kernel_size: 7 is larger than the 4x4 feature map of "
                   "block 4; use a kernel of at most 4 or fewer blocks (got 7)")
    assert not (root / "models").exists()
    client = MlflowClient(mlflow_uri)
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])  # failed before the run


def test_missing_input_names_the_stage_to_run(tmp_path, monkeypatch, mlflow_uri, capsys):
    root = _project(tmp_path / "project")
    monkeypatch.chdir(root)
    with pytest.raises(SystemExit):
        main(["--variant", "augmented"])
    assert "data/augmented/train.npz not found: run `dvc repro augment` first" in capsys.readouterr().err
