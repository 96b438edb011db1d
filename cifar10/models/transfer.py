"""Model builders of the transfer stage: the frozen EfficientNet-B0 feature extractor, the head, the whole model.

All three are functional Keras models made of built-in layers only, so `keras.models.load_model`
reads the saved whole model without custom objects. Builders have no side effects beyond building.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras

from cifar10.errors import PipelineError

BACKBONE_NAME = "EfficientNetB0"
FEATURES = 1280  # width of EfficientNet-B0's global-average-pooled output
INPUT_SHAPE = (32, 32, 3)


def build_backbone(image_size: int, weights: str | Path | None) -> keras.Model:
    """EfficientNet-B0 without its top, average-pooled to 1,280 features, frozen.

    Args:
        image_size: square input size in pixels (>= 32).
        weights: path of a Keras weights file of the no-top model, or None for random weights.

    Raises:
        PipelineError: the weights file is missing or not EfficientNet-B0 no-top weights.
    """
    if weights is not None and not Path(weights).is_file():
        raise PipelineError(f"{weights}: weights file not found: run `dvc repro fetch-weights`")
    try:
        # The model includes its own input scaling: it expects float pixels in 0..255.
        backbone = keras.applications.EfficientNetB0(
            include_top=False,
            weights=str(weights) if weights is not None else None,
            pooling="avg",
            input_shape=(image_size, image_size, 3),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"{weights}: not loadable as {BACKBONE_NAME} no-top weights ({first})") from None
    backbone.trainable = False
    return backbone


def build_extractor(backbone: keras.Model, image_size: int) -> keras.Model:
    """uint8 (N, 32, 32, 3) images -> (N, 1280) features: resize inside the model, then the backbone.

    The same layers serve the embedding pass and the saved whole model, so cached features and
    the whole model's predictions agree to float precision.
    """
    images = keras.Input(INPUT_SHAPE, dtype="uint8", name="image")
    # Resizing casts the uint8 batch to float32 (0..255), the range the backbone expects.
    x = keras.layers.Resizing(image_size, image_size, interpolation="bilinear", name="resize")(images)
    # training=False keeps the backbone's batch norm layers in inference mode even when layers are
    # unfrozen for fine-tuning: updating their statistics on small batches of a new domain would
    # destroy what the pretrained features rely on (Keras transfer-learning guide).
    features = backbone(x, training=False)
    return keras.Model(images, features, name="extractor")


def build_head(
    units: Sequence[int], activation: str, dropout: float, n_classes: int = 10, n_features: int = FEATURES,
    standardize: bool = False,
) -> keras.Model:
    """The trainable classifier on the features: [Normalization,] Dense(units[i], activation) [+ Dropout] ...,
    Dense softmax. With `standardize`, call `adapt_head(head, features)` before training."""
    features = keras.Input((n_features,), name="features")
    x = features
    if standardize:
        # The features' scale depends on the backbone (a random one gives values near 1e-7); standardised
        # features let one learning rate suit every backbone. Its statistics are fitted, not trained.
        x = keras.layers.Normalization(name="feature_scale")(x)
    for i, width in enumerate(units):
        x = keras.layers.Dense(width, activation=activation, name=f"head_dense_{i + 1}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"head_dropout_{i + 1}")(x)
    probs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(features, probs, name="head")


def adapt_head(head: keras.Model, features) -> None:
    """Fit the head's feature standardisation (if it has one) to these training features."""
    if any(layer.name == "feature_scale" for layer in head.layers):
        head.get_layer("feature_scale").adapt(features)


def build_whole(extractor: keras.Model, head: keras.Model) -> keras.Model:
    """The deployable model: uint8 32x32 images -> resize -> backbone -> head -> class probabilities."""
    images = keras.Input(INPUT_SHAPE, dtype="uint8", name="image")
    return keras.Model(images, head(extractor(images)), name="transfer")


def unfreeze_top(backbone: keras.Model, n_layers: int) -> int:
    """Make the top `n_layers` of the backbone trainable, except batch norm; return how many became trainable.

    Batch norm stays frozen: with `trainable=False` Keras also keeps its gamma/beta fixed, the usual
    recipe for fine-tuning EfficientNet (a few mini-batches would otherwise pull the pretrained
    normalisation away from the statistics the frozen lower layers produce).
    """
    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    if n_layers > len(layers):
        raise PipelineError(
            f"params.yaml: transfer.fine_tune_layers: at most {len(layers)} ({BACKBONE_NAME} layers) (got {n_layers})"
        )
    backbone.trainable = True
    count = 0
    for i, layer in enumerate(layers):
        top = i >= len(layers) - n_layers
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
        count += int(layer.trainable and bool(layer.weights))
    return count
