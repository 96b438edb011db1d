"""Params of the evaluate stage."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from cifar10.schema.common import Precision, Section

# frozen: the transfer stage's model after its head phase (the study's method); transfer: after fine-tuning.
Model = Literal["baseline", "augmented", "frozen", "transfer"]


class EvaluateParams(Section):
    models: list[Model] = Field(["baseline", "augmented", "frozen", "transfer"], min_length=1)
    batch_size: int = Field(128, ge=1, le=65536)
    precision: Precision = "auto"
