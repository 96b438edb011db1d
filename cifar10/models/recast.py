"""A copy of a model whose layers compute under another Keras dtype policy, with the same weights.

Keras fixes a layer's dtype policy when the layer is built, so a network built in float32 (to be
fine-tuned in float32) cannot later run its frozen pass in bfloat16: its copy can. Under a mixed
policy the variables stay float32, so the copy holds the very same weights; only the arithmetic
changes (to bfloat16 rounding). The saved transfer model is such a copy: its file records the
precision its inference runs in, and every reader (evaluate, predict, serving) follows it.
"""
from __future__ import annotations

import keras

from cifar10.runtime import precision


def recast(model: keras.Model, policy: str) -> keras.Model:
    """A copy of the functional `model` (nested functional models included) computing under `policy`.

    The layers that produce a model's outputs keep their own policy: a softmax built in float32 (so
    probabilities keep their precision) stays float32.
    """
    outputs = {t._keras_history.operation.name for t in model.outputs}

    def clone(layer):
        if isinstance(layer, keras.Model):
            return recast(layer, policy)
        config = layer.get_config()
        return layer.__class__.from_config(config if layer.name in outputs else {**config, "dtype": policy})

    with precision(policy):  # the functional wrapper clone_model builds takes the global policy
        copy = keras.models.clone_model(model, clone_function=clone)
    copy.trainable = model.trainable
    for old, new in zip(model.layers, copy.layers):
        new.trainable = old.trainable  # a frozen backbone stays frozen in the saved model
        if isinstance(old, keras.Model) or not old.weights:
            continue
        new.set_weights(old.get_weights())
        if isinstance(new, keras.layers.Normalization):
            new.finalize_state()  # it derives its mean/variance from the weights here, as loading does
    return copy
