"""Model builders of the transfer stage: a frozen pretrained backbone, the head, the whole model.

Backbones map a preprocessed image to a feature map; the extractor around them takes the pipeline's
uint8 32x32 images, resizes and scales them inside the model, runs the backbone in inference mode and
pools 1,280 features. Everything is made of built-in Keras layers, so `keras.models.load_model`
reads the saved whole model without custom objects or keras-cv. Builders have no side effects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from cifar10.errors import PipelineError
from cifar10.schema.transfer import BACKBONE_NAMES as NAMES

INPUT_SHAPE = (32, 32, 3)
FEATURES = 1280  # width of the pooled output of both backbones


def build_backbone(name: str, image_size: int, weights: str | Path | None) -> keras.Model:
    """The frozen feature-map network `name` at `image_size`, with the Keras weights file `weights`
    (None: random weights).

    Raises:
        PipelineError: the weights file is missing or does not fit the backbone.
    """
    if weights is not None and not Path(weights).is_file():
        raise PipelineError(f"{weights}: weights file not found: run `dvc repro fetch-weights`")
    try:
        if name == "efficientnet_b0":
            # Includes its own input scaling: it expects float pixels in 0..255.
            backbone = keras.applications.EfficientNetB0(
                include_top=False, weights=str(weights) if weights is not None else None,
                input_shape=(image_size, image_size, 3))
        else:
            from cifar10.models.lite0 import build_lite0

            backbone = build_lite0(image_size)
            if weights is not None:
                backbone.load_weights(str(weights))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"{weights}: not loadable as {NAMES[name]} weights ({first})") from None
    backbone.trainable = False
    return backbone


def _scaled(name: str, x):
    """The backbone's input scaling: B0 scales inside itself; Lite0 was trained on (x - 127) / 128."""
    if name == "efficientnet_lite0":
        from cifar10.models.lite0 import INPUT_OFFSET, INPUT_SCALE

        return keras.layers.Rescaling(INPUT_SCALE, offset=INPUT_OFFSET, name="input_scale")(x)
    return x


def build_extractor(name: str, network: keras.Model, image_size: int, pool: bool = True) -> keras.Model:
    """(N, 32, 32, 3) float pixels 0..255 -> `network`'s output (pooled to (N, 1280) when `pool`).

    `network` is the backbone, or its lower part when the top blocks are fine-tuned on a cache
    (cifar10.models.blocks). The same layers serve the cached pass and the saved whole model, so
    cached features and the whole model's predictions agree to float precision.
    """
    pixels = keras.Input(INPUT_SHAPE, dtype="float32", name="pixels")
    x = keras.layers.Resizing(image_size, image_size, interpolation="bilinear", name="resize")(pixels)
    # training=False keeps batch norm in inference mode even when layers are unfrozen for fine-tuning:
    # updating its statistics on small batches of a new domain would destroy what the pretrained
    # features rely on (Keras transfer-learning guide).
    x = network(_scaled(name, x), training=False)
    if pool:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(pixels, x, name="extractor")


def build_head(units: Sequence[int], activation: str, dropout: float, n_classes: int = 10,
               n_features: int = FEATURES, standardize: bool = False, l2: float = 0.0) -> keras.Model:
    """The trainable classifier on the features: [Normalization,] Dense(units[i], activation) [+ Dropout] ...,
    Dense softmax. With `standardize`, call `adapt_head(head, features)` before training."""
    regularizer = keras.regularizers.L2(l2) if l2 else None
    features = keras.Input((n_features,), name="features")
    x = features
    if standardize:
        # The features' scale depends on the backbone (a random one gives values near 1e-7); standardised
        # features let one learning rate suit every backbone. Its statistics are fitted, not trained.
        x = keras.layers.Normalization(name="feature_scale")(x)
    for i, width in enumerate(units):
        x = keras.layers.Dense(width, activation=activation, kernel_regularizer=regularizer,
                               name=f"head_dense_{i + 1}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"head_dropout_{i + 1}")(x)
    # float32 under any policy: probabilities keep their precision (as in the CNN), and it costs nothing
    probs = keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=regularizer, dtype="float32",
                               name="probabilities")(x)
    return keras.Model(features, probs, name="head")


def adapt_head(head: keras.Model, features) -> None:
    """Fit the head's feature standardisation (if it has one) to these training features."""
    if any(layer.name == "feature_scale" for layer in head.layers):
        head.get_layer("feature_scale").adapt(features)


def mirror() -> list[keras.layers.Layer]:
    """Layers that flip a float (N, 32, 32, C) batch left-right: a fixed 0/1 matrix on the width axis
    (exact: each output is one input times 1), built-in layers only (a Lambda would need unsafe
    deserialisation to load)."""
    width = INPUT_SHAPE[1]
    flip = keras.layers.Dense(width, use_bias=False, trainable=False, name="mirror",
                              kernel_initializer=keras.initializers.Constant(np.eye(width, dtype="float32")[::-1]))
    return [keras.layers.Permute((1, 3, 2), name="width_last"), flip,
            keras.layers.Permute((1, 3, 2), name="width_back")]


def build_whole(extractor: keras.Model, head: keras.Model, flip_average: bool = False) -> keras.Model:
    """The deployable model: uint8 32x32 images -> resize -> backbone -> head -> class probabilities.

    With `flip_average` the probabilities are the mean over each image and its mirror image
    (test-time averaging), the one extractor called on both inside the one model file.
    """
    images = keras.Input(INPUT_SHAPE, dtype="uint8", name="image")
    pixels = keras.layers.Rescaling(1.0, name="as_float")(images)
    probs = head(extractor(pixels))
    if flip_average:
        mirrored = pixels
        for layer in mirror():
            mirrored = layer(mirrored)
        # float32 whatever the extractor computes in: the model's output is float32 probabilities
        probs = keras.layers.Average(name="flip_average", dtype="float32")([probs, head(extractor(mirrored))])
    return keras.Model(images, probs, name="transfer")
