"""The CNN's training loss when an imbalance remedy changes it: focal, class-weighted, or on mixed labels.

For a target distribution t over the K classes (a one-hot row for an integer label, a mixture for
mixup and cutmix) and predicted probabilities p, the loss of an image is

    -sum_c  w_c * t_c * (1 - p_c)^gamma * log p_c

With gamma 0 and unit weights this is cross-entropy; gamma > 0 is the focal loss (Lin et al., 2017),
which spends less of the gradient on images the model already gets right; w_c = N / (K * n_c)
weights each class by its inverse frequency in the training rows. Label smoothing e replaces t by
(1 - e) * t + e / K (Szegedy et al., 2016): the true class's target is 1 - e + e / K, every other
class's e / K, so the model is not pushed towards ever larger logits. Without any of these the stages
keep Keras' own sparse cross-entropy, so the study's runs are unchanged to the bit.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


def inverse_frequency(labels: np.ndarray, n_classes: int) -> list[float]:
    """w_c = N / (K * n_c) over the classes present; a class without rows gets 1 (it is never a target)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.tolist()


@keras.saving.register_keras_serializable(package="cifar10")
class ImbalanceLoss(keras.losses.Loss):
    """The loss above, for integer labels (N,) or label distributions (N, K)."""

    def __init__(self, n_classes: int, gamma: float = 0.0, class_weights: list[float] | None = None,
                 label_smoothing: float = 0.0, name: str = "imbalance_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_classes, self.gamma, self.label_smoothing = n_classes, float(gamma), float(label_smoothing)
        self.class_weights = list(class_weights) if class_weights is not None else None

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        if len(y_true.shape) < len(y_pred.shape):  # integer labels
            target = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.n_classes, dtype="float32")
        else:
            target = ops.cast(y_true, "float32")
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / self.n_classes
        p = ops.clip(y_pred, keras.config.epsilon(), 1.0 - keras.config.epsilon())
        per_class = -target * ops.log(p)
        if self.gamma:
            per_class = per_class * ops.power(1.0 - p, self.gamma)
        if self.class_weights is not None:
            per_class = per_class * ops.convert_to_tensor(self.class_weights, "float32")
        return ops.sum(per_class, axis=-1)

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes, "gamma": self.gamma,
                "class_weights": self.class_weights, "label_smoothing": self.label_smoothing}
