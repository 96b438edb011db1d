"""Params of the CNN training stages (train-baseline, train-augmented)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from cifar10.schema.common import Distribution, Precision, Section

PositiveInt = Annotated[int, Field(ge=1)]
Rate = Annotated[float, Field(ge=0, lt=1)]

Activation = Literal["relu", "sigmoid", "tanh", "elu", "selu", "gelu", "swish", "leaky_relu"]
IMAGE_SIDE = 32
MAX_BLOCKS = IMAGE_SIDE.bit_length() - 1  # every block halves the map: 32 -> 1 takes 5 halvings


def feature_map_sizes(n_blocks: int, size: int = IMAGE_SIDE) -> list[int]:
    """Side length of the feature map each conv block sees (every block ends with a 2x2 max pool)."""
    return [size // 2**i for i in range(n_blocks)]


class ModelParams(Section):
    """The CNN's architecture. Field order matters: each check sees the fields declared above it, and
    defaults are checked too (the default dropout list does not fit 2 blocks)."""

    filters: list[PositiveInt] = Field([32, 64, 128], min_length=1)
    convs_per_block: int = Field(2, ge=1, le=8)
    kernel_size: int = Field(3, ge=1, le=15, validate_default=True)
    batch_norm: bool = True
    batch_norm_momentum: float = Field(0.99, gt=0, lt=1)
    conv_dropout: list[Rate] = Field([0.2, 0.3, 0.4], validate_default=True)
    dense_units: list[PositiveInt] = [128]
    dense_dropout: float = Field(0.5, ge=0, lt=1)
    activation: Activation = "relu"
    kernel_initializer: Literal[
        "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal", "random_normal"
    ] = "glorot_uniform"
    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)

    @field_validator("filters")
    @classmethod
    def _fits_the_image(cls, filters: list[int]) -> list[int]:
        if len(filters) > MAX_BLOCKS:
            raise ValueError(f"{len(filters)} conv blocks halve the {IMAGE_SIDE}x{IMAGE_SIDE} image below 1x1; "
                             f"at most {MAX_BLOCKS} blocks")
        return filters

    @field_validator("kernel_size")
    @classmethod
    def _fits_every_block(cls, size: int, info: ValidationInfo) -> int:
        for block, side in enumerate(feature_map_sizes(len(info.data.get("filters", []))), start=1):
            if size > side:
                raise ValueError(f"{size} is larger than the {side}x{side} feature map of block {block}; "
                                 f"use a kernel of at most {side} or fewer blocks")
        return size

    @field_validator("conv_dropout")
    @classmethod
    def _one_rate_per_block(cls, rates: list[float], info: ValidationInfo) -> list[float]:
        filters = info.data.get("filters")
        if filters is not None and len(rates) != len(filters):
            raise ValueError(f"one rate per conv block is needed, {len(filters)} for filters {filters} "
                             f"(got {len(rates)})")
        return rates


WARMUP_SCHEDULES = ("warmup_cosine", "one_cycle")  # the schedules that start with a linear warm-up


class OptimizerParams(Section):
    """The optimizer and its learning rate over training (cifar10.training.optimizer builds both)."""

    name: Literal["adam", "adamw", "sgd", "rmsprop", "adadelta"] = "adam"
    learning_rate: float = Field(0.001, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0, lt=1)
    schedule: Literal["constant", "cosine", "warmup_cosine", "one_cycle"] = "constant"
    warmup_fraction: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _settings_of_another_optimizer_are_refused(self) -> "OptimizerParams":
        # Silently ignored, each would leave a run that looks tuned and is not.
        if self.nesterov and self.name != "sgd":
            raise ValueError(f"nesterov: true needs name: sgd, not {self.name}")
        if self.weight_decay and self.name != "adamw":
            raise ValueError(f"weight_decay {self.weight_decay} needs name: adamw, not {self.name} "
                             "(sgd decays through train.model.l2)")
        if self.warmup_fraction and self.schedule not in WARMUP_SCHEDULES:
            raise ValueError(f"warmup_fraction {self.warmup_fraction} needs schedule: "
                             f"{' or '.join(WARMUP_SCHEDULES)}, not {self.schedule}")
        return self


# Remedies for the class imbalance (all off by default: the defaults are the study's setup).
class LossParams(Section):
    name: Literal["cross_entropy", "focal"] = "cross_entropy"
    focal_gamma: float = Field(2.0, ge=0, le=10)
    label_smoothing: float = Field(0.0, ge=0, lt=1)


class OnlineAugmentationParams(Section):
    """Random transforms of the training batches, as layers of the model (cifar10.models.online)."""

    flip: bool = False
    translate: float = Field(0.0, ge=0, lt=0.5)
    crop: int = Field(0, ge=0, le=16)
    cutout: int = Field(0, ge=0, le=IMAGE_SIDE)


class MixParams(Section):
    kind: Literal["none", "mixup", "cutmix"] = "none"
    alpha: float = Field(0.2, gt=0, le=10)


class EarlyStoppingParams(Section):
    monitor: Literal["val_loss", "val_accuracy", "val_balanced_accuracy"] = "val_loss"
    patience: int = Field(5, ge=0)
    restore_best_weights: bool = True


class TrainParams(Section):
    model: ModelParams = ModelParams()
    optimizer: OptimizerParams = OptimizerParams()
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()
    batch_size: int = Field(64, ge=1, le=65536)
    epochs: int = Field(50, ge=1, le=10000)
    train_size: int | None = Field(None, ge=10)
    validation_split: float = Field(0.1, gt=0, lt=0.5)
    validation_from: Literal["all", "originals"] = "all"
    precision: Precision = "auto"
    distribution: Distribution = "none"
    class_weight: Literal["none", "inverse_frequency"] = "none"
    loss: LossParams = LossParams()
    online_augmentation: OnlineAugmentationParams = OnlineAugmentationParams()
    mix: MixParams = MixParams()
    logit_adjustment: Literal["none", "validation"] = "none"

    @model_validator(mode="after")
    def _mixing_needs_one_device(self) -> "TrainParams":
        if self.mix.kind != "none" and self.distribution != "none":
            raise ValueError(f"mix.kind: none under distribution {self.distribution} (mixup and cutmix run in the "
                             f"single-device input stream; got {self.mix.kind})")
        return self
