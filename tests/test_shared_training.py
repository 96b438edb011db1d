"""One training for two experiments that differ only in what acts after it (logit adjustment after `none`):
the second adopts the first's finished backup, restores the model and records whose training it is."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import yaml

from cifar10.training.backup_folders import (ADOPTED_TAG, KEEP_FINISHED_ENV, SHARED_TRAINING_ENV, STATE_FILE,
                                            adopted_from, backup_folder, experiment_backups)
from scripts.studies import release_backups
from stages.train import main
from tests.conftest import write_params
from tests.test_train import _project, _stage_runs
from writeup.studies.plan import experiments

NONE, ADJUSTED = "remedy-none-seed44", "remedy-logit-adjustment-seed44"


def test_a_backup_is_adopted_only_from_the_named_experiment_and_only_for_the_same_key(tmp_path, monkeypatch):
    data = tmp_path / "train.npz"
    data.write_bytes(b"rows")
    monkeypatch.setenv("DVC_EXP_NAME", NONE)
    source = backup_folder("baseline", {"epochs": 2}, data, tmp_path)
    source.mkdir()
    (source / STATE_FILE).write_bytes(b"state of none")

    monkeypatch.setenv("DVC_EXP_NAME", ADJUSTED)
    assert not (backup_folder("baseline", {"epochs": 2}, data, tmp_path) / STATE_FILE).exists()  # no env: no adoption
    monkeypatch.setenv(SHARED_TRAINING_ENV, NONE)
    folder = backup_folder("baseline", {"epochs": 2}, data, tmp_path)
    assert folder != source and (folder / STATE_FILE).read_bytes() == b"state of none"
    assert adopted_from(folder) == NONE and adopted_from(source) is None
    assert (source / STATE_FILE).exists()  # a copy: the source can still resume from its own
    (folder / STATE_FILE).write_bytes(b"own epochs since")
    assert (backup_folder("baseline", {"epochs": 2}, data, tmp_path) / STATE_FILE).read_bytes() == b"own epochs since"
    # Another variant, other params or other data: another training, nothing to adopt.
    assert not (backup_folder("augmented", {"epochs": 2}, data, tmp_path) / STATE_FILE).exists()
    assert adopted_from(backup_folder("baseline", {"epochs": 3}, data, tmp_path)) is None
    data.write_bytes(b"other rows")
    assert not (backup_folder("baseline", {"epochs": 2}, data, tmp_path) / STATE_FILE).exists()


def test_only_logit_adjustment_adopts_a_training_and_it_is_none_of_its_own_seed():
    adopting = {e.name: e.training_of for e in experiments() if e.training_of}
    assert adopting == {f"{part}-logit-adjustment-seed{s}": f"{part}-none-seed{s}" for s in (42, 43, 44)
                        for part in ("remedy", "capacity")}
    order = [e.name for e in experiments()]
    assert all(order.index(source) < order.index(name) for name, source in adopting.items())


def test_a_finished_experiments_backups_stay_until_the_one_adopting_them_has_finished(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    planned = [e for e in experiments() if e.name in (NONE, ADJUSTED, "remedy-mixup-seed44")]
    for name in (NONE, ADJUSTED, "remedy-mixup-seed44"):
        (tmp_path / ".train_backup" / f"baseline-{name}-0123456789abcdef").mkdir(parents=True)
    release_backups(planned, {ADJUSTED})  # none and mixup finished; logit adjustment still to run
    assert experiment_backups(NONE) and experiment_backups(ADJUSTED) and not experiment_backups("remedy-mixup-seed44")
    release_backups(planned, set())
    assert not experiment_backups(NONE) and not experiment_backups(ADJUSTED)


@pytest.mark.slow
def test_logit_adjustment_restores_nones_training_and_records_whose_it_is(tmp_path, monkeypatch):
    root = _project(tmp_path / "project")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv(KEEP_FINISHED_ENV, "1")  # as the studies runner sets it
    monkeypatch.setenv("DVC_EXP_NAME", NONE)
    main(["--variant", "baseline"])
    trained = keras.models.load_model(root / "models/baseline.keras").get_weights()

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["logit_adjustment"] = "validation"
    write_params(root, params)
    (root / "models/baseline.keras").unlink()  # as in a new temporary workspace
    monkeypatch.setenv("DVC_EXP_NAME", ADJUSTED)
    monkeypatch.setenv(SHARED_TRAINING_ENV, NONE)
    main(["--variant", "baseline"])

    _, runs = _stage_runs(uri, "train-baseline")
    first, adopted = sorted(runs, key=lambda r: r.info.start_time)
    assert adopted.data.tags[ADOPTED_TAG] == NONE and ADOPTED_TAG not in first.data.tags
    assert adopted.data.params["resumed_from_epoch"] == str(int(first.data.metrics["epochs_run"]))  # no epoch trained
    for key in ("epochs_run", "best_epoch", "train_seconds", "train_images_per_s"):
        assert adopted.data.metrics[key] == pytest.approx(first.data.metrics[key]), key
    assert "logit_adjustment_tau" in adopted.data.metrics and "logit_adjustment_tau" not in first.data.metrics
    # The same trained weights; the adjustment moves the output bias alone.
    adjusted = keras.models.load_model(root / "models/baseline.keras").get_weights()
    for a, b in zip(trained[:-1], adjusted[:-1]):
        np.testing.assert_array_equal(a, b)
    assert (adopted.data.metrics["logit_adjustment_tau"] == 0) == np.array_equal(trained[-1], adjusted[-1])
