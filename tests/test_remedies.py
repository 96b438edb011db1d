"""The imbalance remedies (train.class_weight, loss, online_augmentation, mix, logit_adjustment,
optimizer.schedule; augment.policy oversample): each changes what training does on tiny data, keeps
runs deterministic and resumable, and a bad value is refused in one line naming the key."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from cifar10.data.dataset import Dataset
from cifar10.errors import PipelineError
from cifar10.schema import parse_params
from cifar10.schema.train import TrainParams
from cifar10.training.fit import train
from tests.tinydata import make_images

SMALL = {"filters": [4, 8], "conv_dropout": [0.1, 0.2], "dense_units": [8]}
REMEDIES = {
    "class weights": {"class_weight": "inverse_frequency"},
    "focal loss": {"loss": {"name": "focal", "focal_gamma": 2.0}},
    "online augmentation": {"online_augmentation": {"flip": True, "translate": 0.125}},
    "mixup": {"mix": {"kind": "mixup", "alpha": 0.2}},
    "cutmix": {"mix": {"kind": "cutmix", "alpha": 1.0}},
    "cosine schedule": {"optimizer": {"schedule": "cosine"}},
}


@pytest.fixture(scope="module")
def imbalanced() -> Dataset:
    """12 images per class, but only 3 cats."""
    ds = make_images(12, seed=1)
    keep = (ds.y != 3) | (np.arange(len(ds)) % 4 == 0)
    return Dataset(ds.x[keep], ds.y[keep])


def _cfg(**remedy) -> TrainParams:
    return TrainParams.model_validate({"model": SMALL, "epochs": 2, "batch_size": 16, "precision": "float32",
                                       **remedy})


@pytest.fixture(scope="module")
def plain(imbalanced):
    return train(imbalanced, _cfg(), seed=5)


@pytest.mark.parametrize("name", sorted(REMEDIES))
def test_each_remedy_changes_what_training_does_on_the_same_cnn(name, imbalanced, plain):
    # (That the random ones repeat exactly: the resume test below, whose runs must agree to the bit.)
    remedied = train(imbalanced, _cfg(**REMEDIES[name]), seed=5)
    assert remedied.history != plain.history, f"{name} trained exactly as without it"
    assert remedied.info["params_total"] == plain.info["params_total"]  # the same CNN


@pytest.mark.parametrize("name", ["mixup", "online augmentation"])
def test_a_resumed_run_mixes_and_augments_as_an_uninterrupted_one(name, imbalanced, tmp_path):
    cfg = _cfg(**REMEDIES[name]).model_copy(update={"epochs": 3})
    whole = train(imbalanced, cfg, seed=5)
    train(imbalanced, cfg.model_copy(update={"epochs": 2}), seed=5, backup_dir=tmp_path)  # stopped after 2
    resumed = train(imbalanced, cfg, seed=5, backup_dir=tmp_path)
    assert resumed.info["resumed_from_epoch"] == 2 and resumed.history == whole.history
    for a, b in zip(resumed.model.get_weights(), whole.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_focal_weighted_loss_is_cross_entropy_without_its_remedies():
    from cifar10.training.losses import ImbalanceLoss, inverse_frequency

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=6).astype("float32")
    labels = rng.integers(0, 10, 6)
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, probs)
    np.testing.assert_allclose(ImbalanceLoss(10)(labels, probs), plain, rtol=1e-5)
    np.testing.assert_allclose(ImbalanceLoss(10)(np.eye(10)[labels], probs), plain, rtol=1e-5)  # one-hot = sparse
    assert float(ImbalanceLoss(10, gamma=2.0)(labels, probs)) < float(plain)  # (1 - p)^2 < 1
    weights = inverse_frequency(np.array([0, 0, 0, 1]), 10)
    assert weights[:2] == [2 / 3, 2.0] and weights[2:] == [1.0] * 8
    weighted = ImbalanceLoss(10, class_weights=weights)(np.array([1]), probs[:1])
    np.testing.assert_allclose(weighted, 2.0 * keras.losses.SparseCategoricalCrossentropy()(np.array([1]), probs[:1]),
                               rtol=1e-5)


def test_online_augmentation_leaves_inference_and_the_parameter_count_alone():
    from cifar10.models.cnn import build_cnn
    from cifar10.schema.train import ModelParams, OnlineAugmentationParams

    online = OnlineAugmentationParams(flip=True, translate=0.125)
    with_layers, without = build_cnn(ModelParams(), online=online), build_cnn(ModelParams())
    assert with_layers.count_params() == without.count_params() == 552_874
    without.set_weights(with_layers.get_weights())
    x = make_images(2, seed=3).x
    np.testing.assert_allclose(with_layers(x, training=False), without(x, training=False), atol=1e-6)
    scaled = keras.Model(with_layers.input, with_layers.get_layer("online_translate").output)
    assert not np.allclose(scaled(x, training=True), scaled(x, training=False))  # they do act in training


def test_logit_adjustment_shifts_the_output_bias_by_tau_log_prior_chosen_on_validation(imbalanced, plain):
    from cifar10.training.logit_adjustment import TAUS, adjust, choose_tau, prior

    adjusted = train(imbalanced, _cfg(logit_adjustment="validation"), seed=5)
    assert adjusted.history == plain.history  # post hoc: the training itself is the same
    assert adjusted.info["logit_adjustment_tau"] in TAUS
    assert adjusted.info["val_balanced_accuracy_adjusted"] >= adjusted.info["val_balanced_accuracy_unadjusted"]
    changed = [i for i, (a, b) in enumerate(zip(adjusted.model.get_weights(), plain.model.get_weights()))
               if not np.array_equal(a, b)]
    assert changed in ([], [len(plain.model.get_weights()) - 1])  # the output bias, or nothing at tau 0
    pi = prior(imbalanced.y, 10)
    assert pi[3] < pi[0] and pi.sum() == pytest.approx(1.0)  # cats are rare
    # By hand: softmax(logits - tau log pi) is p * pi^-tau, renormalised.
    model = keras.models.clone_model(plain.model)
    model.set_weights(plain.model.get_weights())
    x = imbalanced.x[:5]
    before = model.predict(x, verbose=0).astype(np.float64)
    adjust(model, 1.0, pi)
    expected = before / pi
    np.testing.assert_allclose(model.predict(x, verbose=0), expected / expected.sum(1, keepdims=True), atol=1e-5)
    # tau is the validation balanced accuracy's argmax, the smallest on ties.
    probs = np.array([[0.95, 0.05], [0.6, 0.4], [0.55, 0.45]])
    best, scores = choose_tau(probs, np.array([0, 1, 1]), np.array([0.9, 0.1]), taus=(0.0, 1.0, 2.0))
    assert scores == {0.0: 0.5, 1.0: 1.0, 2.0: 0.5} and best == 1.0
    tie, _ = choose_tau(probs, np.array([0, 0, 0]), np.array([0.5, 0.5]), taus=(0.0, 1.0))
    assert tie == 0.0


def test_oversampling_adds_exact_copies_of_originals_of_the_class(imbalanced):
    from cifar10.augmentation.rebalance import augment
    from cifar10.schema.augment import AugmentParams

    out = augment(imbalanced, ["cat"], "max", AugmentParams(policy="oversample"), seed=0)
    synthetic = out.extra["synthetic"]
    assert out.counts()["cat"] == 12 and synthetic.sum() == 9
    np.testing.assert_array_equal(out.x[synthetic], imbalanced.x[out.extra["source"][synthetic]])
    assert set(out.y[synthetic]) == {3}


@pytest.mark.parametrize("section, key, value, allowed", [
    ("train", "class_weight", "balanced", "'none' or 'inverse_frequency'"),
    ("train", "loss", {"name": "hinge"}, "'cross_entropy' or 'focal'"),
    ("train", "loss", {"focal_gamma": -1}, "greater than or equal to 0"),
    ("train", "online_augmentation", {"translate": 0.5}, "less than 0.5"),
    ("train", "mix", {"kind": "mixup", "alpha": 0}, "greater than 0"),
    ("train", "mix", {"kind": "blend"}, "'none', 'mixup' or 'cutmix'"),
    ("train", "logit_adjustment", "test", "'none' or 'validation'"),
    ("train", "optimizer", {"schedule": "step"}, "'constant', 'cosine', 'warmup_cosine' or 'one_cycle'"),
    ("augment", "policy", "smote", "'seed', 'randaugment' or 'oversample'"),
])
def test_a_bad_remedy_value_is_one_line_naming_the_key(section, key, value, allowed):
    with pytest.raises(PipelineError) as err:
        parse_params({section: {key: value}})
    message = str(err.value)
    assert "\n" not in message and f"{section}.{key}" in message and allowed in message, message


def test_mixing_under_a_distribution_strategy_is_refused_before_any_work():
    with pytest.raises(PipelineError, match=r"train: .*mix.kind: none under distribution mirrored"):
        parse_params({"train": {"mix": {"kind": "mixup"}, "distribution": "mirrored"}})
