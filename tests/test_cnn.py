"""The CNN builder: the study's exact parameter count, every option, and rejected combinations."""
from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from cifar10.errors import PipelineError
from cifar10.models.cnn import build_cnn, param_counts
from cifar10.schema import parse_params
from cifar10.schema.train import ModelParams, TrainParams
from cifar10.training.fit import train

SMALL = {"filters": [4, 8], "conv_dropout": [0.1, 0.2], "dense_units": [8]}


def test_defaults_are_the_studys_cnn_with_its_exact_parameter_count():
    model = build_cnn(ModelParams())
    assert param_counts(model) == {
        "params_total": 552_874, "params_trainable": 551_722, "params_non_trainable": 1_152,
    }
    assert model.count_params() == 552_874
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 64, 64, 128, 128]
    assert model.get_layer("flatten").output.shape[-1] == 2048


def test_model_takes_raw_uint8_and_returns_probabilities():
    model = build_cnn(ModelParams(**SMALL))
    assert model.inputs[0].dtype == "uint8"
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (5, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("overrides", [
    {"kernel_size": 7, "convs_per_block": 1},
    {"convs_per_block": 1},
    {"dense_units": []},
    {"dense_units": [128, 128]},
    {"batch_norm": False},
    {"l1": 1e-4, "l2": 1e-4},
    *[{"activation": a} for a in ("sigmoid", "tanh", "elu", "selu", "gelu", "swish", "leaky_relu")],
    *[{"kernel_initializer": i} for i in ("glorot_normal", "he_uniform", "he_normal", "lecun_normal", "random_normal")],
])
def test_every_option_builds(overrides):
    model = build_cnn(ModelParams(**overrides))
    assert model.output.shape == (None, 10)
    if overrides.get("batch_norm") is False:
        assert param_counts(model)["params_non_trainable"] == 0
    if "dense_units" in overrides:
        assert sum(isinstance(layer, keras.layers.Dense) for layer in model.layers) == len(overrides["dense_units"]) + 1
    if "l1" in overrides:
        assert model.get_layer("block1_conv1").kernel_regularizer is not None


def test_kernel_and_block_count_change_the_architecture():
    wide = build_cnn(ModelParams(kernel_size=7, convs_per_block=1))
    assert wide.get_layer("block1_conv1").kernel.shape == (7, 7, 3, 32)
    with pytest.raises(ValueError):
        wide.get_layer("block1_conv2")
    assert param_counts(build_cnn(ModelParams(convs_per_block=1)))["params_total"] < 552_874


@pytest.mark.slow
@pytest.mark.parametrize("combo", [
    {"optimizer": {"name": "sgd", "momentum": 0.9},
     "model": {**SMALL, "kernel_size": 7, "convs_per_block": 1, "activation": "sigmoid", "dense_units": [],
               "batch_norm": False, "l1": 1e-4}},
    {"optimizer": {"name": "rmsprop"},
     "model": {**SMALL, "activation": "tanh", "dense_units": [8, 8], "kernel_initializer": "he_normal", "l2": 1e-4}},
    {"optimizer": {"name": "adadelta", "learning_rate": 1.0},
     "model": {**SMALL, "activation": "leaky_relu"}, "precision": "mixed_bfloat16"},
])
def test_option_combinations_train_one_epoch(combo, tiny_train):
    cfg = TrainParams.model_validate({**combo, "epochs": 1, "batch_size": 16})
    result = train(tiny_train, cfg, seed=0)
    model, history, info = result.model, result.history, result.info
    assert len(history) == 1 and np.isfinite(history[0]["loss"]) and np.isfinite(history[0]["val_loss"])
    assert info["train_images"] + info["val_images"] == len(tiny_train)
    assert np.isfinite(model.predict(tiny_train.x[:4], verbose=0)).all()
    if combo.get("precision") == "mixed_bfloat16":
        assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
        assert model.output.dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # not leaked to later models


@pytest.mark.parametrize("model, message", [
    ({"kernel_size": 7, "filters": [8, 8, 8, 8], "conv_dropout": [0.1] * 4},
     r"^params\.yaml: train\.model\.kernel_size: 7 is larger than the 4x4 feature map of block 4"),
    ({"filters": [32, 64]}, r"^params\.yaml: train\.model\.conv_dropout: one rate per conv block is needed, 2 "),
    ({"filters": [4] * 6, "conv_dropout": [0.1] * 6}, r"^params\.yaml: train\.model\.filters: 6 conv blocks"),
])
def test_impossible_combinations_are_rejected_with_the_key(model, message):
    """The schema refuses architectures that cannot be built, before any stage does work."""
    with pytest.raises(PipelineError, match=message):
        parse_params({"train": {"model": model}})


@pytest.mark.parametrize("train, key", [
    ({"model": {"filters": [32, 0, 128]}}, "train.model.filters.1"),
    ({"model": {"activation": "softplus"}}, "train.model.activation"),
    ({"optimizer": {"name": "adagrad"}}, "train.optimizer.name"),
    ({"validation_split": 0.5}, "train.validation_split"),
    ({"model": {"conv_dropout": [0.2, 1.0, 0.3]}}, "train.model.conv_dropout.1"),
])
def test_schema_rejects_bad_values_with_the_key(train, key):
    with pytest.raises(PipelineError, match=rf"^params\.yaml: {re.escape(key)}: "):
        parse_params({"train": train})


def test_fused_batch_norm_trains_like_the_stock_layer_and_saves_as_it(tmp_path):
    """Same maths (to rounding) in training and inference; the saved model has only stock layers."""
    import json
    import subprocess
    import sys
    import zipfile

    from cifar10.models.fused_bn import to_stock

    cfg = ModelParams(**SMALL)
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    y = np.arange(32) % 10
    models = []
    for fused in (False, True):
        keras.utils.set_random_seed(1)
        model = build_cnn(cfg, fused_batch_norm=fused)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    for model in models:
        model.train_on_batch(x, y)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):  # incl. moving mean and variance
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(models[0].predict(x, verbose=0), models[1].predict(x, verbose=0), atol=1e-5)

    path = tmp_path / "m.keras"
    to_stock(models[1]).save(path)
    with zipfile.ZipFile(path) as zf:
        config = zf.read("config.json").decode()
    assert "FusedBatchNormalization" not in config and json.loads(config)["class_name"] == "Functional"
    np.save(tmp_path / "x.npy", x)
    code = f"import keras, numpy as np; print(keras.models.load_model({str(path)!r}).predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0).sum())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)  # no project import
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) == pytest.approx(32.0, rel=1e-4)
