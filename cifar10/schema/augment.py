"""Params of the augment stage (offline rebalancing)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from cifar10.schema.common import ClassList, Section, ordered_range


def _at_most_180(pair: list[float]) -> list[float]:
    if pair[1] > 180:
        raise ValueError(f"high must be <= 180 degrees, got {pair[1]}")
    return pair


class AugmentParams(Section):
    """Transforms and targets of the offline rebalancing; see cifar10/augmentation/layers.py for semantics."""

    policy: Literal["seed", "randaugment", "oversample"] = "seed"
    classes: ClassList | None = None
    target: Literal["max"] | Annotated[int, Field(ge=1)] = "max"
    rotation: Annotated[list[float], ordered_range(lo_min=0), AfterValidator(_at_most_180)] = [0.0, 30.0]
    width_shift: float = Field(0.2, ge=0, lt=1)
    height_shift: float = Field(0.2, ge=0, lt=1)
    brightness: Annotated[list[float], ordered_range(strictly_positive=True)] = [0.85, 1.15]
    zoom: Annotated[list[float], ordered_range(strictly_positive=True)] = [0.85, 1.15]
    fill_mode: Literal["nearest", "reflect", "wrap", "constant"] = "nearest"
    horizontal_flip: bool = False
    randaugment_magnitude: float = Field(0.5, ge=0, le=1)
    randaugment_layers: int = Field(2, ge=1, le=10)
    batch_size: int = Field(256, ge=1, le=65536)
    preview_variants: int = Field(8, ge=1, le=64)
