"""Batch norm folded for inference: the same outputs as the original model, with trained (non-trivial)
batch-norm statistics, for every layer kind it folds, nested models, both backbones and the saved CNN."""
from __future__ import annotations

import numpy as np
import pytest


def _randomise_batch_norm(model, seed: int, spread: float = 1.0) -> None:
    """Statistics and affine terms away from the identity (by `spread`), so a wrong fold cannot pass
    unnoticed. Deep backbones take a smaller spread: 49 strong random affine maps in a row make the
    features chaotic, and then float32 rounding alone decides them."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _randomise_batch_norm(layer, seed + 1, spread)
        elif isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            values = {"gamma": 1 + spread * rng.uniform(-0.5, 1.0, c), "beta": rng.normal(0, spread, c),
                      "moving_mean": rng.normal(0, spread, c), "moving_variance": 1 + spread * rng.uniform(-0.8, 2.0, c)}
            for name, value in values.items():
                if getattr(layer, name, None) is not None:
                    getattr(layer, name).assign(value.astype("float32"))


def _count_folded(model) -> int:
    import keras

    from cifar10.models.folding import FoldedBatchNorm

    return sum(_count_folded(layer) if isinstance(layer, keras.Model) else isinstance(layer, FoldedBatchNorm)
               for layer in model.layers)


def _assert_same(model, folded, x, atol: float) -> None:
    before = model.predict(x, verbose=0)
    after = folded.predict(x, verbose=0)
    assert before.std() > 1e-3, "outputs must vary for the comparison to mean anything"
    np.testing.assert_allclose(after, before, atol=atol, rtol=1e-4)


def _toy():
    """Every foldable kind (conv with and without bias, depthwise with multiplier 2, dense), a nested
    model, an adapted Normalization, and two batch norms that must stay: after an Add, and after a
    conv whose output also feeds elsewhere."""
    import keras
    from keras import layers

    inner_in = keras.Input((8, 8, 6))
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False)(inner_in)
    inner = keras.Model(inner_in, layers.BatchNormalization()(x), name="inner")

    images = keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 3, padding="same", use_bias=False)(images)
    a = layers.ReLU()(layers.BatchNormalization()(a))
    b = layers.Conv2D(6, 1, use_bias=True)(a)
    b = layers.BatchNormalization()(b)
    shared = layers.Conv2D(6, 1, use_bias=False, name="shared")(b)
    kept = layers.BatchNormalization(name="kept_after_shared")(shared)
    summed = layers.BatchNormalization(name="kept_after_add")(layers.Add()([kept, shared]))
    y = layers.GlobalAveragePooling2D()(inner(summed))
    scale = layers.Normalization(name="scale")
    scale.adapt(np.random.default_rng(1).normal(3.0, 2.0, (64, 12)).astype("float32"))
    y = layers.Dense(5)(scale(y))
    out = layers.Dense(4, activation="softmax")(layers.BatchNormalization()(y))
    return keras.Model(images, out), np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")


def test_folded_copy_computes_the_same_function_and_leaves_the_original_alone():
    from cifar10.models.folding import fold_batch_norm

    model, x = _toy()
    _randomise_batch_norm(model, 0)
    weights_before = [w.copy() for w in model.get_weights()]
    folded = fold_batch_norm(model)
    # conv (no bias), conv (bias), the nested depthwise, dense: 4; the two "kept" stay batch norms.
    assert _count_folded(folded) == 4
    assert folded.get_layer("kept_after_shared").__class__.__name__ == "BatchNormalization"
    assert folded.get_layer("kept_after_add").__class__.__name__ == "BatchNormalization"
    _assert_same(model, folded, x, atol=1e-5)
    for before, now in zip(weights_before, model.get_weights()):
        np.testing.assert_array_equal(before, now)


@pytest.mark.parametrize("backbone, size, n_bn", [("efficientnet_lite0", 64, 49), ("efficientnet_b0", 64, 49)])
def test_folded_backbones_give_the_same_features(backbone, size, n_bn):
    from cifar10.models import transfer as tm
    from cifar10.models.folding import fold_batch_norm

    network = tm.build_backbone(backbone, size, None)
    _randomise_batch_norm(network, 3, spread=0.2)
    extractor = tm.build_extractor(backbone, network, size)
    folded = tm.build_extractor(backbone, fold_batch_norm(network), size)
    assert _count_folded(folded) == n_bn
    x = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    before, after = extractor.predict(x, verbose=0), folded.predict(x, verbose=0)
    assert before.std() > 1e-3
    # Relative to the features' scale: 49 folds in a row, each exact up to float32 rounding.
    np.testing.assert_allclose(after, before, atol=1e-5 * np.abs(before).max(), rtol=1e-4)


def test_saved_cnn_loads_for_inference_with_the_same_predictions(tmp_path):
    from cifar10.models.cnn import build_cnn
    from cifar10.models.saved import load_for_inference
    from cifar10.schema.train import ModelParams
    from cifar10.training.inputs import predict_proba

    model = build_cnn(ModelParams(), fused_batch_norm=False)
    _randomise_batch_norm(model, 5)
    path = tmp_path / "cnn.keras"
    model.save(path)
    folded = load_for_inference(path)
    assert _count_folded(folded) == 7  # six convolutions and the hidden dense layer
    x = np.random.default_rng(4).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(predict_proba(folded, x, 16), predict_proba(model, x, 16), atol=1e-5)
