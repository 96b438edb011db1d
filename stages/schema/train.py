"""Params of the CNN training stages (train-baseline, train-augmented)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from stages.schema.common import Distribution, Section

PositiveInt = Annotated[int, Field(ge=1)]
Rate = Annotated[float, Field(ge=0, lt=1)]

Activation = Literal["relu", "sigmoid", "tanh", "elu", "selu", "gelu", "swish", "leaky_relu"]


class ModelParams(Section):
    filters: list[PositiveInt] = Field([32, 64, 128], min_length=1)
    convs_per_block: int = Field(2, ge=1, le=8)
    kernel_size: int = Field(3, ge=1, le=15)
    batch_norm: bool = True
    batch_norm_momentum: float = Field(0.99, gt=0, lt=1)
    conv_dropout: list[Rate] = [0.2, 0.3, 0.4]
    dense_units: list[PositiveInt] = [128]
    dense_dropout: float = Field(0.5, ge=0, lt=1)
    activation: Activation = "relu"
    kernel_initializer: Literal[
        "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal", "random_normal"
    ] = "glorot_uniform"
    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)


class OptimizerParams(Section):
    name: Literal["adam", "sgd", "rmsprop", "adadelta"] = "adam"
    learning_rate: float = Field(0.001, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)


class EarlyStoppingParams(Section):
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
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
    precision: Literal["float32", "mixed_bfloat16"] = "float32"
    distribution: Distribution = "none"
