"""Params of the data stages: base, tracking, download, imbalance-subsample."""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from cifar10.schema.common import ClassList, Section

OFFICIAL_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
OFFICIAL_CHECKSUM = "md5:c32a1d4ab5d03f1284b67883e8d87530"

_HEX_LENGTH = {"md5": 32, "sha256": 64}


def parse_checksum(value: str) -> tuple[str, str] | None:
    """Split 'md5:<hex>' / 'sha256:<hex>' (or a bare hex digest) into (algorithm, digest)."""
    if value == "":
        return None
    algo, sep, digest = value.partition(":")
    if not sep:
        digest = value
        algo = {32: "md5", 64: "sha256"}.get(len(value), "")
    digest = digest.lower()
    if algo not in _HEX_LENGTH or not re.fullmatch(rf"[0-9a-f]{{{_HEX_LENGTH.get(algo, 0)}}}", digest):
        raise ValueError(
            f"{value!r} is not a checksum; use 'md5:<32 hex>', 'sha256:<64 hex>' or '' to record one"
        )
    return algo, digest


def _checksum(allow_default: bool) -> AfterValidator:
    def check(value: str) -> str:
        if not (allow_default and value == "default"):
            parse_checksum(value)
        return value

    return AfterValidator(check)


# A checksum param: 'md5:<hex>', 'sha256:<hex>', a bare hex digest, or '' (record one).
Checksum = Annotated[str, _checksum(allow_default=False)]
# The same, or 'default': the published checksum of what the other params name.
ChecksumOrDefault = Annotated[str, _checksum(allow_default=True)]


class BaseParams(Section):
    seed: int = Field(42, ge=0, le=2**31 - 1)
    deterministic: bool = True


class TrackingParams(Section):
    experiment: str = Field("cifar10-imbalance", min_length=1)
    registered_model: str = Field("cifar10-classifier", min_length=1)


class DownloadParams(Section):
    source: str = Field(OFFICIAL_SOURCE, min_length=1)
    checksum: Checksum = OFFICIAL_CHECKSUM
    retries: int = Field(3, ge=0, le=20)
    timeout: float = Field(60.0, gt=0, le=3600)
    train_per_class: int | None = Field(None, ge=1)
    test_per_class: int | None = Field(None, ge=1)


class ImbalanceParams(Section):
    classes: ClassList = ["cat", "dog"]
    keep_fraction: float = Field(0.1, gt=0, le=1)
