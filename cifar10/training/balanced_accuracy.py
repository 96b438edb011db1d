"""Balanced accuracy: the mean of the per-class recalls, as a Keras metric logged every epoch.

The validation split is stratified, so on the imbalanced training set cat and dog are each 1 image in 82
there too: plain val accuracy barely notices the two classes the study is about. The test set
is balanced (1,000 images per class), and on it accuracy *is* balanced accuracy; the validation
figure that estimates it is `val_balanced_accuracy`, which early stopping can monitor.
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cifar10")
class BalancedAccuracy(keras.metrics.Metric):
    """Mean recall over the classes present in the labels seen so far (integer labels, or label
    distributions such as mixup's, read as their largest class)."""

    def __init__(self, n_classes: int, name: str = "balanced_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_classes = n_classes
        self.hits = self.add_variable((n_classes,), initializer="zeros", name="hits")
        self.seen = self.add_variable((n_classes,), initializer="zeros", name="seen")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_true.shape) == len(y_pred.shape):  # one-hot or mixed: the class with the largest share
            y_true = ops.argmax(y_true, axis=-1)
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        per_class = ops.one_hot(labels, self.n_classes, dtype="float32")
        correct = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), labels), "float32")
        self.hits.assign_add(ops.sum(per_class * correct[:, None], axis=0))
        self.seen.assign_add(ops.sum(per_class, axis=0))

    def result(self):
        present = ops.cast(self.seen > 0, "float32")
        recall = self.hits / ops.maximum(self.seen, 1.0)
        return ops.sum(recall * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        for v in (self.hits, self.seen):
            v.assign(ops.zeros_like(v))

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes}
