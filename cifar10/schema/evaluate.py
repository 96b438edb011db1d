"""Params of the evaluate stage."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from cifar10.schema.common import Precision, Section


class EvaluateParams(Section):
    models: list[Literal["baseline", "augmented", "transfer"]] = Field(
        ["baseline", "augmented", "transfer"], min_length=1
    )
    batch_size: int = Field(128, ge=1, le=65536)
    precision: Precision = "auto"
