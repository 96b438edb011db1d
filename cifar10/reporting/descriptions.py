"""What each evaluated model is, in words made from the params that trained it, and how it stands to the
study's: which of the study's models it is compared with, where its setup differs from that one's
(cifar10.reporting.reference.SETUP), or that it goes beyond the study's method and has no study figure.

Every function takes params.yaml flattened to dotted keys (`train.optimizer.name`); a key it reads that
the schema no longer has is a KeyError, not a silently wrong sentence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from cifar10.reporting.reference import SETUP
from cifar10.schema.transfer import BACKBONE_NAMES, BLOCKS


@dataclass(frozen=True)
class About:
    """An evaluated model: what it is, the study's model it is compared with (None: beyond the study's
    method, with `beyond` saying why) and where its setup differs from that one's."""

    description: str
    reference: str | None
    differences: tuple[str, ...] = ()
    beyond: str | None = None


def _join(values) -> str:
    return "/".join(str(v) for v in values) or "none"


def _on(value: bool) -> str:
    return "on" if value else "off"


def _span(values) -> str:
    return f"{values[0]:g}–{values[1]:g}"


# How a setting reads where it differs from the study's: (label, value as text).
_SETTINGS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "train.model.filters": ("conv filters", _join),
    "train.model.convs_per_block": ("convolutions per block", str),
    "train.model.kernel_size": ("kernel", lambda v: f"{v}×{v}"),
    "train.model.batch_norm": ("batch norm", _on),
    "train.model.dense_units": ("hidden dense layers", _join),
    "train.model.activation": ("activation", str),
    "train.optimizer.name": ("optimizer", str),
    "train.optimizer.learning_rate": ("learning rate", lambda v: f"{v:g}"),
    "train.optimizer.schedule": ("learning-rate schedule", str),
    "train.batch_size": ("batch", str),
    "train.early_stopping.patience": ("early-stopping patience", str),
    "train.train_size": ("training images", lambda v: "all" if v is None else f"{v:,}"),
    "imbalance.classes": ("classes made rare", lambda v: ", ".join(v) or "none"),
    "imbalance.keep_fraction": ("share of their images kept", lambda v: f"{v:.0%}"),
    "train.class_weight": ("class weights", str),
    "train.loss.name": ("loss", str),
    "train.online_augmentation.flip": ("random flips in training", _on),
    "train.online_augmentation.translate": ("random shifts in training", lambda v: f"{v:g}"),
    "train.mix.kind": ("image mixing", str),
    "train.logit_adjustment": ("logit adjustment", str),
    "augment.policy": ("augmentation policy", str),
    "augment.classes": ("augmented classes", lambda v: ", ".join(v) or "none"),
    "augment.target": ("images per augmented class", str),
    "augment.rotation": ("rotation (degrees)", _span),
    "augment.width_shift": ("width shift", lambda v: f"{v:g}"),
    "augment.height_shift": ("height shift", lambda v: f"{v:g}"),
    "augment.brightness": ("brightness", _span),
    "augment.zoom": ("zoom", _span),
    "augment.horizontal_flip": ("horizontal flips", _on),
    "transfer.backbone": ("", lambda v: BACKBONE_NAMES[v]),
    "transfer.weights": ("weights", lambda v: {"imagenet": "ImageNet", "none": "random"}.get(v, v)),
    "transfer.image_size": ("", lambda v: f"{v} px"),
    "transfer.head.units": ("head", lambda v: f"Dense {_join(v)}"),
    "transfer.head.activation": ("head activation", str),
    "transfer.epochs": ("head epochs", str),
    "transfer.batch_size": ("head batch", str),
    "transfer.flip_train": ("mirror images in training", _on),
    "transfer.flip_test": ("test-time mirror averaging", _on),
}


def differences(setup: Mapping[str, Any], flat: Mapping[str, Any]) -> tuple[str, ...]:
    """Each setting of `setup` (dotted key -> the study's value) that `flat` sets otherwise, as
    "160 px (the study: 224 px)"."""
    resolved = {**flat, "augment.classes": flat["augment.classes"] or flat["imbalance.classes"]}
    out = []
    for key, theirs in setup.items():
        if resolved[key] != theirs:
            label, text = _SETTINGS[key]
            out.append(f"{label} {text(resolved[key])} (the study: {text(theirs)})".strip())
    return tuple(out)


def _training_set(model: str, f: Mapping[str, Any]) -> str:
    rare = ", ".join(f["imbalance.classes"])
    imbalanced = (f"the imbalanced set ({rare} cut to {f['imbalance.keep_fraction']:.0%} of their images)" if rare
                  else "the whole training set (no class made rare)")
    if model == "augmented":
        policy = {"seed": "the study's five transforms", "randaugment": "RandAugment",
                  "oversample": "copies of random originals"}.get(f["augment.policy"], f["augment.policy"])
        target = "the largest class's count" if f["augment.target"] == "max" else f"{f['augment.target']:,} images"
        topped = ", ".join(f["augment.classes"] or f["imbalance.classes"])
        imbalanced += f" rebalanced by offline augmentation ({policy}: {topped or 'no class'} topped up to {target})"
    if f["train.train_size"] is not None:
        return f"a stratified subset of {f['train.train_size']:,} images of {imbalanced}"
    return imbalanced


_OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adadelta": "Adadelta"}


def _remedies(f: Mapping[str, Any]) -> list[str]:
    out = []
    if f["train.class_weight"] != "none":
        out.append(f"class weights {f['train.class_weight']}")
    if f["train.loss.name"] == "focal":
        out.append(f"focal loss (gamma {f['train.loss.focal_gamma']:g})")
    if f["train.online_augmentation.flip"]:
        out.append("random flips")
    if f["train.online_augmentation.translate"]:
        out.append(f"random shifts up to {f['train.online_augmentation.translate']:g}")
    if f["train.mix.kind"] != "none":
        out.append(f"{f['train.mix.kind']} (alpha {f['train.mix.alpha']:g})")
    if f["train.logit_adjustment"] != "none":
        out.append(f"logit adjustment on the {f['train.logit_adjustment']} split")
    return out


def cnn_description(model: str, f: Mapping[str, Any]) -> str:
    """The CNN `model` (baseline or augmented): architecture, training settings, training set."""
    filters, k = f["train.model.filters"], f["train.model.kernel_size"]
    arch = (f"CNN: {len(filters)} conv blocks ({_join(filters)} filters; {f['train.model.convs_per_block']} "
            f"convolutions of {k}×{k} each{'; batch norm' if f['train.model.batch_norm'] else ''}), hidden dense "
            f"{_join(f['train.model.dense_units'])}, {f['train.model.activation']}")
    schedule = ", cosine" if f["train.optimizer.schedule"] != "constant" else ""
    optimizer = _OPTIMIZERS.get(f["train.optimizer.name"], f["train.optimizer.name"])
    training = (f"{optimizer} (learning rate {f['train.optimizer.learning_rate']:g}{schedule}), "
                f"batch {f['train.batch_size']}, early stopping on {f['train.early_stopping.monitor']} (patience "
                f"{f['train.early_stopping.patience']}, at most {f['train.epochs']} epochs)")
    remedies = _remedies(f)
    with_ = f", with {', '.join(remedies)}" if remedies else ""
    held = f"{f['train.validation_split']:.0%} of it held out for validation"
    return f"{arch}; {training}{with_}; trained on {_training_set(model, f)}, {held}"


def frozen_description(f: Mapping[str, Any]) -> str:
    """The frozen model: the backbone as published, the head trained on its features."""
    weights = {"imagenet": "ImageNet weights", "none": "random weights: not transfer learning"}.get(
        f["transfer.weights"], f"weights from {f['transfer.weights']}")
    schedule = ", cosine" if f["transfer.schedule"] != "constant" else ""
    train_set = {"raw": "all training images", "imbalanced": "the imbalanced set",
                 "augmented": "the rebalanced (augmented) set"}[f["transfer.train_set"]]
    head = [f"Dense {_join(f['transfer.head.units'])}", f["transfer.head.activation"]]
    head += ["on standardised features"] if f["transfer.head.standardize"] else []
    head += [f"dropout {f['transfer.head.dropout']:g}"] if f["transfer.head.dropout"] else []
    head += [f"L2 {f['transfer.head.l2']:g}"] if f["transfer.head.l2"] else []
    out = (f"{BACKBONE_NAMES[f['transfer.backbone']]} ({weights}) frozen, at {f['transfer.image_size']} px; a head "
           f"({', '.join(head)}) trained {f['transfer.epochs']} epochs (batch {f['transfer.batch_size']}, Adam learning "
           f"rate {f['transfer.learning_rate']:g}{schedule}) on {train_set}")
    if f["transfer.flip_train"]:
        out += " and their mirror images"
    out += f", {f['transfer.validation_split']:.0%} of them held out for validation"
    if f["transfer.flip_test"]:
        out += "; predictions averaged over each image and its mirror image"
    return out


def about(model: str, flat: Mapping[str, Any]) -> About:
    """What `model` (baseline, augmented, frozen or transfer) is under the params `flat`, beside the study's."""
    if model in ("baseline", "augmented"):
        return About(cnn_description(model, flat), model, differences(SETUP[model], flat))
    frozen = frozen_description(flat)
    if model == "frozen":
        return About(frozen, "frozen", differences(SETUP["frozen"], flat))
    blocks = flat["transfer.fine_tune_blocks"]
    if not blocks:
        return About(f"{frozen}; no block fine-tuned (transfer.fine_tune_blocks: 0): the same model as frozen",
                     "frozen", differences(SETUP["frozen"], flat))
    schedule = ", cosine" if flat["transfer.schedule"] != "constant" else ""
    tuned = (f"{frozen}; then the top {blocks} of {BLOCKS} blocks fine-tuned with the head, "
             f"{flat['transfer.fine_tune_epochs']} epochs (learning rate {flat['transfer.fine_tune_learning_rate']:g}"
             f"{schedule}, batch {flat['transfer.fine_tune_batch_size']}, batch norm frozen)")
    return About(tuned, None, beyond=(f"beyond the study's method: it trained the head on a frozen backbone, this "
                                      f"model also fine-tunes {blocks} of its {BLOCKS} blocks; no study figure "
                                      "stands beside it"))
