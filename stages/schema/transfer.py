"""Params of the transfer stage (frozen EfficientNet-B0 with a trained head)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from stages.schema.common import Distribution, Section

WEIGHTS_URL = (
    "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"
)


class HeadParams(Section):
    units: list[int] = [256, 256]
    activation: Literal["relu", "sigmoid", "tanh", "elu", "selu", "gelu", "swish"] = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)


class TransferParams(Section):
    weights: str = Field("imagenet", min_length=1)
    weights_url: str = Field(WEIGHTS_URL, min_length=1)
    weights_checksum: str = ""
    image_size: int = Field(224, ge=32, le=1024)
    head: HeadParams = HeadParams()
    learning_rate: float = Field(0.001, gt=0, le=10)
    epochs: int = Field(20, ge=1, le=10000)
    batch_size: int = Field(256, ge=1, le=65536)
    embed_batch_size: int = Field(64, ge=1, le=4096)
    train_set: Literal["full", "imbalanced", "augmented"] = "full"
    validation_split: float = Field(0.1, gt=0, lt=0.5)
    fine_tune_layers: int = Field(0, ge=0)
    fine_tune_learning_rate: float = Field(1e-5, gt=0, le=1)
    fine_tune_epochs: int = Field(5, ge=1)
    distribution: Distribution = "none"
