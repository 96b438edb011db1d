"""Params of the fetch-weights and transfer stages (frozen EfficientNet-B0 with a trained head)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from cifar10.schema.common import Distribution, Section
from cifar10.schema.data import Checksum

WEIGHTS_URL = (
    "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"
)
# The md5 Keras itself checks this file against (keras.applications.efficientnet.WEIGHTS_HASHES["b0"][1];
# keras.utils.get_file picks md5 for a 32-digit hash).
WEIGHTS_CHECKSUM = "md5:50bc09e76180e00e4465e1a485ddc09d"
# Keras chooses the weights format from the file name: legacy HDF5 (.h5/.hdf5, the published file),
# Keras 3 weights (.weights.h5) or a whole .keras archive.
WEIGHTS_SUFFIXES = (".h5", ".hdf5", ".keras")


def _check_weights(value: str) -> str:
    if value not in ("imagenet", "none") and not value.endswith(WEIGHTS_SUFFIXES):
        raise ValueError(
            "must be imagenet, none or the path of a Keras weights file ending in "
            + ", ".join(WEIGHTS_SUFFIXES)
        )
    return value


class HeadParams(Section):
    units: list[Annotated[int, Field(ge=1)]] = [256, 256]
    activation: Literal["relu", "sigmoid", "tanh", "elu", "selu", "gelu", "swish"] = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)
    standardize: bool = True


class TransferParams(Section):
    weights: Annotated[str, Field(min_length=1), AfterValidator(_check_weights)] = "imagenet"
    weights_url: str = Field(WEIGHTS_URL, min_length=1)
    weights_checksum: Checksum = WEIGHTS_CHECKSUM
    image_size: int = Field(224, ge=32, le=1024)
    head: HeadParams = HeadParams()
    learning_rate: float = Field(0.001, gt=0, le=10)
    epochs: int = Field(20, ge=1, le=10000)
    batch_size: int = Field(256, ge=1, le=65536)
    embed_batch_size: int = Field(64, ge=1, le=4096)
    train_set: Literal["full", "imbalanced", "augmented"] = "full"
    validation_split: float = Field(0.1, gt=0, lt=0.5)
    fine_tune_layers: int = Field(0, ge=0)  # at most the backbone's layer count, checked when built
    fine_tune_learning_rate: float = Field(1e-5, gt=0, le=1)
    fine_tune_epochs: int = Field(5, ge=1, le=10000)
    fine_tune_batch_size: int = Field(32, ge=1, le=4096)
    distribution: Distribution = "none"
