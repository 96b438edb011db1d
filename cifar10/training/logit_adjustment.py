"""Post-hoc logit adjustment (Menon et al., ICLR 2021): a trained model's logits minus tau * log(prior).

A classifier trained on an imbalanced set learns the training prior into its logits; subtracting
tau * log(pi_c) from class c's logit moves its decisions towards a balanced test set, with no
retraining. The CNN's output layer is Dense + softmax, so the adjustment is a shift of that layer's
bias: the adjusted model is the same network, saved with built-in layers as before. tau is chosen on
the validation split's balanced accuracy (the mean recall, what a balanced test set rewards), never
on the test set.
"""
from __future__ import annotations

import numpy as np

TAUS = tuple(0.25 * i for i in range(13))  # 0 (no adjustment) .. 3


def prior(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The class frequencies of the training rows (a class without rows gets one, so its log is finite)."""
    counts = np.maximum(np.bincount(labels, minlength=n_classes), 1).astype(np.float64)
    return counts / counts.sum()


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in `y`."""
    return float(np.mean([np.mean(predicted[y == c] == c) for c in np.unique(y)]))


def choose_tau(probs: np.ndarray, y: np.ndarray, pi: np.ndarray, taus=TAUS) -> tuple[float, dict[float, float]]:
    """(the tau with the highest validation balanced accuracy, the smallest on ties; every tau's score)."""
    log_p = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))
    scores = {float(t): balanced_accuracy(y, np.argmax(log_p - t * np.log(pi), axis=1)) for t in taus}
    best = max(scores.values())
    return min(t for t, s in scores.items() if s == best), scores


def adjust(model, tau: float, pi: np.ndarray, layer: str = "probabilities") -> None:
    """Shift the output layer's bias by -tau * log(pi): softmax(z - tau log pi) from then on."""
    out = model.get_layer(layer)
    bias = np.asarray(out.bias.numpy(), dtype=np.float64)
    out.bias.assign((bias - tau * np.log(pi)).astype(out.bias.dtype))
