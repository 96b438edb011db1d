"""Post-hoc logit adjustment (Menon et al., ICLR 2021): a trained model's logits minus tau * log(prior).

A classifier trained on an imbalanced set learns the training prior into its logits; subtracting
tau * log(pi_c) from class c's logit moves its decisions towards a balanced test set, with no
retraining. The CNN's output layer is Dense + softmax, so the adjustment is a shift of that layer's
bias: the adjusted model is the same network, saved with built-in layers as before. tau is chosen on
balanced accuracy (the mean recall, what a balanced test set rewards) on one half of the validation
split, never on the test set; the other half, which the choice never saw, scores the adjusted model,
so a ranking of remedies on validation gives logit adjustment no edge from its own choice.
"""
from __future__ import annotations

import numpy as np

TAUS = tuple(0.25 * i for i in range(13))  # 0 (no adjustment) .. 3


def tau_metric(half: str, tau: float) -> str:
    """The run metric holding one tau's validation balanced accuracy on one half, e.g.
    logit_adjustment_ranking_tau_0.25."""
    return f"logit_adjustment_{half}_tau_{tau:g}"


def prior(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The class frequencies of the training rows (a class without rows gets one, so its log is finite)."""
    counts = np.maximum(np.bincount(labels, minlength=n_classes), 1).astype(np.float64)
    return counts / counts.sum()


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in `y`."""
    return float(np.mean([np.mean(predicted[y == c] == c) for c in np.unique(y)]))


def halves(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the choosing and the ranking half of validation rows: each class's rows taken in turn,
    the first to the choosing half (it gets the odd one), so both halves hold every class in proportion."""
    choosing = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        choosing[np.flatnonzero(y == c)[::2]] = True
    return np.flatnonzero(choosing), np.flatnonzero(~choosing)


def tau_scores(probs: np.ndarray, y: np.ndarray, pi: np.ndarray, taus=TAUS) -> dict[float, float]:
    """Balanced accuracy of the adjusted predictions at every tau."""
    log_p = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))
    return {float(t): balanced_accuracy(y, np.argmax(log_p - t * np.log(pi), axis=1)) for t in taus}


def choose_tau(probs: np.ndarray, y: np.ndarray, pi: np.ndarray, taus=TAUS) -> tuple[float, dict[float, float]]:
    """(the tau with the highest balanced accuracy on these rows, the smallest on ties; every tau's score)."""
    scores = tau_scores(probs, y, pi, taus)
    best = max(scores.values())
    return min(t for t, s in scores.items() if s == best), scores


def adjust(model, tau: float, pi: np.ndarray, layer: str = "probabilities") -> None:
    """Shift the output layer's bias by -tau * log(pi): softmax(z - tau log pi) from then on."""
    out = model.get_layer(layer)
    bias = np.asarray(out.bias.numpy(), dtype=np.float64)
    out.bias.assign((bias - tau * np.log(pi)).astype(out.bias.dtype))
