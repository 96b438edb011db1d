"""The training recipe's knobs (train.optimizer: adamw with weight_decay, sgd with nesterov, the warmup_cosine
and one_cycle schedules; train.loss.label_smoothing; train.online_augmentation crop and cutout): each does what
it promises on tiny data, a bad value is one line naming the key, and the capacity plan's recipe trains the
CNN through the real train stage, deterministic and resumable."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from cifar10.data import dataset
from cifar10.errors import PipelineError
from cifar10.schema import parse_params
from cifar10.schema.train import ModelParams, OnlineAugmentationParams, TrainParams
from cifar10.training.optimizer import learning_rate, make_optimizer
from tests.conftest import default_params, shrink_params, write_params
from tests.tinydata import make_images

SMALL = {"filters": [4, 8], "conv_dropout": [0.1, 0.2], "dense_units": [8]}


@pytest.mark.parametrize("key, value, allowed", [
    ("optimizer", {"name": "lamb"}, "'adam', 'adamw', 'sgd', 'rmsprop' or 'adadelta'"),
    ("optimizer", {"nesterov": True}, "nesterov: true needs name: sgd, not adam"),
    ("optimizer", {"name": "sgd", "weight_decay": 0.01}, "weight_decay 0.01 needs name: adamw, not sgd"),
    ("optimizer", {"name": "adamw", "weight_decay": 1.0}, "less than 1"),
    ("optimizer", {"schedule": "step"}, "'constant', 'cosine', 'warmup_cosine' or 'one_cycle'"),
    ("optimizer", {"warmup_fraction": 0.1}, "warmup_fraction 0.1 needs schedule: warmup_cosine or one_cycle, not constant"),
    ("optimizer", {"schedule": "one_cycle", "warmup_fraction": 1.0}, "less than 1"),
    ("loss", {"label_smoothing": 1.0}, "less than 1"),
    ("loss", {"label_smoothing": -0.1}, "greater than or equal to 0"),
    ("online_augmentation", {"crop": 17}, "less than or equal to 16"),
    ("online_augmentation", {"crop": 0.5}, "valid integer"),
    ("online_augmentation", {"cutout": 33}, "less than or equal to 32"),
])
def test_a_bad_recipe_value_is_one_line_naming_the_key(key, value, allowed):
    with pytest.raises(PipelineError) as err:
        parse_params({"train": {key: value}})
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"params.yaml: train.{key}") and allowed in message, message


def _schedule(schedule: str, warmup: float, epochs: int = 10, rate: float = 0.1, steps: int = 10):
    cfg = TrainParams.model_validate({"epochs": epochs, "optimizer": {"learning_rate": rate, "schedule": schedule,
                                                                      **({"warmup_fraction": warmup} if warmup else {})}})
    lr = learning_rate(cfg, steps)
    return lambda step: float(lr(step))


def test_warmup_cosine_rises_linearly_from_zero_to_the_peak_then_falls_as_a_cosine_to_zero():
    lr = _schedule("warmup_cosine", 0.2)  # 100 steps, 20 of warm-up
    assert lr(0) == 0.0
    assert lr(10) == pytest.approx(0.05) and lr(19) == pytest.approx(0.095)  # linear
    assert lr(20) == pytest.approx(0.1)  # the peak, where the warm-up ends
    assert lr(60) == pytest.approx(0.05)  # half-way through the decay: cos(pi / 2)
    assert lr(40) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))
    assert lr(100) == pytest.approx(0.0, abs=1e-9) and lr(150) == pytest.approx(0.0, abs=1e-9)


def test_one_cycle_rises_linearly_from_a_25th_to_the_peak_then_falls_linearly_to_zero():
    lr = _schedule("one_cycle", 0.25)  # 100 steps, 25 rising
    assert lr(0) == pytest.approx(0.004)
    assert lr(12.5) == pytest.approx(0.004 + 0.096 / 2)
    assert lr(25) == pytest.approx(0.1)
    assert lr(55) == pytest.approx(0.06) and lr(99) == pytest.approx(0.1 / 75)
    assert lr(100) == 0.0 and lr(140) == 0.0
    assert _schedule("one_cycle", 0.0)(0) == pytest.approx(0.1)  # no warm-up: from the peak down


def test_the_existing_schedules_are_unchanged():
    assert learning_rate(TrainParams(), 10) == 0.001  # constant: the number itself, as before
    cosine = _schedule("cosine", 0.0)
    assert cosine(0) == pytest.approx(0.1) and cosine(50) == pytest.approx(0.05) and cosine(100) == pytest.approx(0.0)


def test_the_transfer_phases_adam_is_built_by_the_same_owner():
    from cifar10.training.optimizer import phase_optimizer

    cosine = phase_optimizer(0.01, "cosine", 10)
    assert isinstance(cosine, keras.optimizers.Adam)
    assert [float(cosine._learning_rate(s)) for s in (0, 5, 10)] == pytest.approx([0.01, 0.005, 0.0])
    assert float(cosine.learning_rate) == pytest.approx(0.01)  # at the optimizer's step 0
    assert float(phase_optimizer(0.01, "constant", 10).learning_rate) == pytest.approx(0.01)
    assert float(phase_optimizer(0.01, "cosine", 0)._learning_rate(1)) == pytest.approx(0.0)  # a phase of no step


def test_label_smoothing_is_cross_entropy_on_the_smoothed_target():
    from cifar10.training import remedies
    from cifar10.training.losses import ImbalanceLoss

    # By hand: label 0 predicted at 0.7, the other 9 classes at 0.3 / 9; e = 0.1 targets 0.91 and 0.01.
    probs = np.array([[0.7] + [0.3 / 9] * 9], dtype="float32")
    expected = -(0.91 * math.log(0.7) + 9 * 0.01 * math.log(0.3 / 9))
    assert float(ImbalanceLoss(10, label_smoothing=0.1)(np.array([0]), probs)) == pytest.approx(expected, rel=1e-5)
    rng = np.random.default_rng(0)
    many, labels = rng.dirichlet(np.ones(10), size=6).astype("float32"), rng.integers(0, 10, 6)
    keras_smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(np.eye(10)[labels], many)
    np.testing.assert_allclose(ImbalanceLoss(10, label_smoothing=0.2)(labels, many), keras_smoothed, rtol=1e-5)
    cfg = TrainParams.model_validate({"loss": {"label_smoothing": 0.1}})
    assert remedies.loss(cfg, labels, 10).label_smoothing == 0.1
    assert remedies.loss(TrainParams(), labels, 10) == "sparse_categorical_crossentropy"  # the study's, to the bit


def _coded(n: int) -> np.ndarray:
    """n copies of one image whose every pixel holds its own position: (row * 32 + col + 1) / 1024."""
    image = ((np.arange(32 * 32) + 1) / 1024).reshape(32, 32).astype("float32")
    return np.repeat(np.repeat(image[None, :, :, None], n, axis=0), 3, axis=3)


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`image` with its content moved so that out[r, c] = image[r + dy, c + dx], black where that is outside."""
    out = np.zeros_like(image)
    rows, cols = slice(max(-dy, 0), 32 - max(dy, 0)), slice(max(-dx, 0), 32 - max(dx, 0))
    out[rows, cols] = image[max(dy, 0):32 + min(dy, 0), max(dx, 0):32 + min(dx, 0)]
    return out


def test_pad_crop_moves_content_by_whole_pixels_at_most_the_pad_every_shift_alike_and_black_borders():
    from cifar10.models.online import PadCrop

    n, pad = 4050, 4
    x = _coded(n)
    out = np.asarray(PadCrop(pad, seed=1)(x, training=True))
    shifts = []
    for image in out:
        r, c = np.argwhere(image[:, :, 0] > 0)[0]
        r0, c0 = divmod(round(float(image[r, c, 0]) * 1024) - 1, 32)
        dy, dx = r0 - r, c0 - c
        np.testing.assert_array_equal(image, _shifted(x[0], dy, dx))  # exact pixels, zeros where uncovered
        shifts.append((dy, dx))
    assert set(shifts) == {(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)}
    for axis in (0, 1):  # each of the 9 shifts of an axis equally likely: 450 expected, sd 20
        counts = np.unique([s[axis] for s in shifts], return_counts=True)[1]
        assert counts.min() > 0.8 * n / 9 and counts.max() < 1.2 * n / 9, counts
    np.testing.assert_array_equal(PadCrop(pad, seed=1)(x[:3], training=False), x[:3])  # identity at inference
    again = np.asarray(PadCrop(pad, seed=1)(x, training=True))
    np.testing.assert_array_equal(again, out)  # seeded


@pytest.mark.parametrize("size", [16, 5])
def test_cutout_blacks_out_one_square_of_its_size_per_image_cut_only_by_the_border(size):
    from cifar10.models.online import Cutout

    ones = np.ones((600, 32, 32, 3), "float32")
    out = np.asarray(Cutout(size, seed=2)(ones, training=True))
    assert set(np.unique(out)) == {0.0, 1.0}
    full = 0
    for image in out:
        black = image[:, :, 0] == 0
        assert (black[..., None] == (image == 0)).all()  # every channel alike
        rows, cols = np.flatnonzero(black.any(1)), np.flatnonzero(black.any(0))
        assert black.sum() == len(rows) * len(cols) and black[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # one rectangle
        for lo, hi in ((rows[0], rows[-1]), (cols[0], cols[-1])):
            assert hi - lo + 1 == size or lo == 0 or hi == 31  # its side, unless the border cuts it
        full += black.sum() == size * size
    assert 0 < full < len(out)  # whole squares, and squares the border cut
    np.testing.assert_array_equal(Cutout(size, seed=2)(ones[:2], training=False), ones[:2])


def test_adamw_shrinks_a_weight_without_gradient_by_lr_times_weight_decay_each_step_but_not_biases():
    cfg = TrainParams.model_validate({"optimizer": {"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.1}})
    opt = make_optimizer(cfg)
    kernel, bias = keras.Variable(np.full(3, 2.0, "float32"), name="kernel"), keras.Variable(np.full(3, 2.0, "float32"),
                                                                                            name="bias")
    for _ in range(3):
        opt.apply_gradients([(np.zeros(3, "float32"), kernel), (np.zeros(3, "float32"), bias)])
    np.testing.assert_allclose(kernel.numpy(), 2.0 * (1 - 0.01 * 0.1) ** 3, rtol=1e-6)
    np.testing.assert_array_equal(bias.numpy(), 2.0)


@pytest.mark.parametrize("nesterov, after_two", [(True, 0.539), (False, 0.71)])
def test_sgd_takes_nesterov_steps_when_asked(nesterov, after_two):
    cfg = TrainParams.model_validate({"optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9,
                                                    "nesterov": nesterov}})
    opt = make_optimizer(cfg)
    assert opt.nesterov is nesterov
    w = keras.Variable(np.ones(1, "float32"))
    for _ in range(2):  # gradient 1: velocity -0.1 then -0.19
        opt.apply_gradients([(np.ones(1, "float32"), w)])
    # Nesterov: w1 = 1 - 0.1 - 0.9 * 0.1 = 0.81, w2 = 0.81 - 0.1 - 0.9 * 0.19; plain: 0.9, then 0.71
    assert float(w.numpy()[0]) == pytest.approx(after_two, rel=1e-6)


def test_the_recipe_layers_keep_the_studys_cnn_and_the_saved_model_stock(tmp_path):
    from cifar10.models.cnn import build_cnn, param_counts
    from cifar10.models.fused_bn import to_stock

    online = OnlineAugmentationParams(flip=True, crop=4, cutout=16)
    model = build_cnn(ModelParams(), online=online, fused_batch_norm=True, bits_dropout=True)
    assert param_counts(model)["params_total"] == 552_874
    assert [layer.name for layer in model.layers[2:5]] == ["online_flip", "online_crop", "online_cutout"]
    x = make_images(2, seed=3).x
    scaled = keras.Model(model.input, model.get_layer("online_cutout").output)
    assert not np.allclose(scaled(x, training=True), scaled(x, training=False))  # they act in training
    to_stock(model).save(tmp_path / "stock.keras")
    loaded = keras.models.load_model(tmp_path / "stock.keras")
    # What they do at inference, in stock Keras: every reader loads the model without this project's code.
    assert [type(loaded.get_layer(f"online_{k}")) for k in ("crop", "cutout")] == [keras.layers.Identity] * 2
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-5)


def _recipe_cfg(epochs: int) -> TrainParams:
    """The capacity plan's fullest screen recipe, set as `dvc exp run -S` sets it, on the small CNN and tiny data."""
    from benchmarks.expect import with_overrides
    from writeup.studies.capacity_plan import recipe

    params = with_overrides(default_params(), [*recipe("sgd one-cycle, all three"), f"train.epochs={epochs}",
                                               "train.batch_size=16", "train.precision=float32"])
    return params.train.model_copy(update={"model": ModelParams(**SMALL)})


class _Killed(Exception):
    pass


def test_recipe_training_is_deterministic_and_a_killed_run_resumes_as_an_uninterrupted_one(tmp_path):
    from cifar10.training.fit import train

    ds, cfg = make_images(8, seed=1), _recipe_cfg(epochs=3)
    assert cfg.optimizer.nesterov and cfg.online_augmentation.cutout == 16 and cfg.loss.label_smoothing == 0.1
    first, second = train(ds, cfg, seed=5), train(ds, cfg, seed=5)
    assert first.history == second.history and first.history[0]["loss"] != first.history[1]["loss"]
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)

    class KillInSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise _Killed

    with pytest.raises(_Killed):
        train(ds, cfg, seed=5, backup_dir=tmp_path, callbacks=[KillInSecondEpoch()])
    resumed = train(ds, cfg, seed=5, backup_dir=tmp_path)
    assert resumed.info["resumed_from_epoch"] == 1 and resumed.history == first.history
    for a, b in zip(resumed.model.get_weights(), first.model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_the_recipe_trains_through_the_train_stage_on_its_schedule(tmp_path, monkeypatch, mlflow_uri):
    import csv

    from stages.train import main

    root = tmp_path / "project"
    root.mkdir()
    params = shrink_params(default_params())
    params["train"] = _recipe_cfg(epochs=3).model_dump()
    write_params(root, params)
    dataset.save(root / dataset.IMBALANCED_TRAIN, make_images(8, seed=1))
    monkeypatch.chdir(root)
    main(["--variant", "baseline"])
    with (root / "plots/baseline/history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    cfg = TrainParams.model_validate(params["train"])
    steps = math.ceil(72 / 16)  # 80 images less 8 for validation
    schedule = learning_rate(cfg, steps)
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([float(schedule(e * steps)) for e in (1, 2, 3)])
    saved = keras.models.load_model(root / "models/baseline.keras")
    assert isinstance(saved.get_layer("online_cutout"), keras.layers.Identity)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    run = client.search_runs([client.get_experiment_by_name("cifar10-imbalance").experiment_id])[0]
    assert run.data.params["train.optimizer.schedule"] == "one_cycle"
    assert run.data.params["train.online_augmentation.crop"] == "4"
