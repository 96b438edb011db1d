"""Logit adjustment's tau: chosen on one half of the validation rows, scored on the other, every tau's figure on
both halves recorded, through the train stage's real MLflow run on tiny data."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from cifar10.data import dataset
from cifar10.data.splits import split_rows
from cifar10.training.inputs import predict_proba
from cifar10.training.logit_adjustment import (TAUS, balanced_accuracy, choose_tau, halves, prior, tau_metric,
                                               tau_scores)
from stages.train import main
from tests.conftest import write_params
from tests.test_train import _project


def test_the_halves_split_every_class_and_share_no_row():
    y = np.array([3, 0, 0, 1, 0, 1, 2, 2, 2, 2, 3])
    choosing, ranking = halves(y)
    assert not set(choosing) & set(ranking) and sorted([*choosing, *ranking]) == list(range(len(y)))
    assert [int(np.sum(y[choosing] == c)) for c in range(4)] == [2, 1, 2, 1]  # the odd row to the choosing half
    assert [int(np.sum(y[ranking] == c)) for c in range(4)] == [1, 1, 2, 1]


def test_the_ranking_half_never_sways_the_choice():
    """Six rows a class, the rare class 1 (prior 0.1) under-predicted. On the choosing half tau 1 recovers it;
    flipping the ranking half's labels moves only the ranking figure, not the tau."""
    pi = np.array([0.9, 0.1])
    probs = np.array([[0.95, 0.05], [0.7, 0.3], [0.6, 0.4]] * 2 + [[0.8, 0.2], [0.65, 0.35], [0.55, 0.45]] * 2)
    y = np.array([0] * 6 + [1] * 6)
    choosing, ranking = halves(y)
    tau, scores = choose_tau(probs[choosing], y[choosing], pi, taus=(0.0, 1.0, 2.0))
    assert tau == 1.0 and scores[1.0] == max(scores.values())
    flipped = y.copy()
    flipped[ranking] = 1 - flipped[ranking]
    assert choose_tau(probs[choosing], flipped[choosing], pi, taus=(0.0, 1.0, 2.0))[0] == tau
    assert tau_scores(probs[ranking], flipped[ranking], pi, (tau,)) != tau_scores(probs[ranking], y[ranking], pi, (tau,))


def test_the_train_stage_records_every_tau_on_both_halves_and_ranks_on_the_half_the_choice_never_saw(
        tmp_path, monkeypatch):
    root = _project(tmp_path / "project", "float32")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update(logit_adjustment="validation", validation_split=0.45)  # a few rows a class in each half
    write_params(root, params)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    main(["--variant", "baseline"])

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cifar10-imbalance").experiment_id
    (run,) = client.search_runs([exp], "tags.stage = 'train-baseline'")
    m = run.data.metrics
    choosing = {t: m[tau_metric("choosing", t)] for t in TAUS}  # every tau, on both halves
    ranking = {t: m[tau_metric("ranking", t)] for t in TAUS}
    tau = m["logit_adjustment_tau"]
    assert tau == min(t for t, s in choosing.items() if s == max(choosing.values()))  # the choosing half's best
    assert m["val_balanced_accuracy_adjusted"] == choosing[tau] and m["val_balanced_accuracy_unadjusted"] == choosing[0]
    assert m["val_balanced_accuracy_ranking"] == ranking[tau] and m["val_balanced_accuracy_ranking_unadjusted"] == ranking[0]

    # The saved (adjusted) model, on the rows the train stage held out, gives those figures again.
    train_ds = dataset.load(root / dataset.IMBALANCED_TRAIN)
    train_rows, val_rows = split_rows(train_ds.y, 0.45, params["base"]["seed"])
    y_val = train_ds.y[val_rows]
    probs = predict_proba(keras.models.load_model(root / "models/baseline.keras"), train_ds.x[val_rows], 16)
    first, second = halves(y_val)
    assert len(second) and balanced_accuracy(y_val[second], probs[second].argmax(1)) == pytest.approx(
        m["val_balanced_accuracy_ranking"])
    # Every tau's figure, from the adjusted model: tau t is tau' = t - tau on top of the chosen shift.
    pi = prior(train_ds.y[train_rows], 10)
    shifted = [t - tau for t in TAUS]
    for rows, recorded in ((first, choosing), (second, ranking)):
        again = tau_scores(probs[rows], y_val[rows], pi, shifted)
        assert [again[s] for s in shifted] == pytest.approx([recorded[t] for t in TAUS], abs=1e-9)
