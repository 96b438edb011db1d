"""What the imbalance remedies of the `train` params change in a training run, in one place.

Each is off by default (the study's setup): class weights and the focal loss change the loss
(cifar10.training.losses), mixup/cutmix the batches (cifar10.training.mixing), online augmentation the
model's first layers (cifar10.models.cnn), the cosine schedule the learning rate
(cifar10.training.optimizer), and logit adjustment the trained model's output bias
(cifar10.training.logit_adjustment). Oversampling is the augment stage's `policy: oversample`.
"""
from __future__ import annotations

import numpy as np

from cifar10.schema.train import TrainParams


def loss(cfg: TrainParams, train_labels: np.ndarray, n_classes: int):
    """Keras' sparse cross-entropy for the study's setup, else the remedies' loss (label smoothing too)."""
    from cifar10.training.losses import ImbalanceLoss, inverse_frequency

    gamma = cfg.loss.focal_gamma if cfg.loss.name == "focal" else 0.0
    weights = inverse_frequency(train_labels, n_classes) if cfg.class_weight == "inverse_frequency" else None
    smoothing = cfg.loss.label_smoothing
    if not gamma and weights is None and cfg.mix.kind == "none" and not smoothing:
        return "sparse_categorical_crossentropy"
    return ImbalanceLoss(n_classes, gamma, weights, smoothing)


def mix(cfg: TrainParams, n_classes: int) -> tuple[str, float, int] | None:
    """train_batches' `mix` argument: None, or (mixup | cutmix, alpha, classes)."""
    return None if cfg.mix.kind == "none" else (cfg.mix.kind, cfg.mix.alpha, n_classes)


def originals(extra: dict, rows: np.ndarray) -> np.ndarray:
    """The rows that are original images (a rebalanced set's synthetic copies add no information about
    the prior the model learnt from)."""
    synthetic = extra.get("synthetic")
    return rows if synthetic is None else rows[~synthetic[rows]]


def adjust_logits(model, x_val: np.ndarray, y_val: np.ndarray, prior_labels: np.ndarray, n_classes: int,
                  batch: int) -> dict:
    """Logit adjustment with tau chosen on one half of the validation rows and scored on the other; the run
    facts to log: the tau, both halves' balanced accuracy at every tau (logit_adjustment.tau_metric), and
    unadjusted / adjusted figures of the choosing half and of the ranking half (the one a ranking may use)."""
    from cifar10.training.inputs import predict_proba
    from cifar10.training.logit_adjustment import adjust, choose_tau, halves, prior, tau_metric, tau_scores

    pi = prior(prior_labels, n_classes)
    probs = predict_proba(model, x_val, batch)
    choosing, ranking = halves(y_val)
    tau, chosen = choose_tau(probs[choosing], y_val[choosing], pi)
    adjust(model, tau, pi)
    info = {"logit_adjustment_tau": tau, "val_balanced_accuracy_unadjusted": chosen[0.0],
            "val_balanced_accuracy_adjusted": chosen[tau], **{tau_metric("choosing", t): s for t, s in chosen.items()}}
    if len(ranking):  # a single validation row has no second half
        scored = tau_scores(probs[ranking], y_val[ranking], pi)
        info |= {"val_balanced_accuracy_ranking_unadjusted": scored[0.0], "val_balanced_accuracy_ranking": scored[tau],
                 **{tau_metric("ranking", t): s for t, s in scored.items()}}
    return info
