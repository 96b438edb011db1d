"""Building blocks shared by the params sections: a strict base model and common field types."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from cifar10.classes import CIFAR10_CLASSES


class Section(BaseModel):
    """A params section: unknown keys and silently coerced types are errors, not surprises."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _known_class(name: str) -> str:
    if name not in CIFAR10_CLASSES:
        raise ValueError(f"unknown class {name!r}; valid classes: {', '.join(CIFAR10_CLASSES)}")
    return name


def _unique(items: list) -> list:
    if len(set(items)) != len(items):
        raise ValueError(f"duplicate entries in {items}")
    return items


ClassName = Annotated[str, AfterValidator(_known_class)]
ClassList = Annotated[list[ClassName], AfterValidator(_unique)]


def ordered_range(lo_min: float | None = None, strictly_positive: bool = False):
    """A validator for a `[low, high]` list: two numbers, low <= high, optionally low > 0."""

    def check(pair: list[float]) -> list[float]:
        if len(pair) != 2:
            raise ValueError(f"must be a [low, high] pair, got {len(pair)} numbers")
        lo, hi = pair
        if lo > hi:
            raise ValueError(f"inverted range: low {lo} > high {hi}")
        if strictly_positive and lo <= 0:
            raise ValueError(f"must be > 0, got low {lo}")
        if lo_min is not None and lo < lo_min:
            raise ValueError(f"low must be >= {lo_min}, got {lo}")
        return [float(lo), float(hi)]

    return AfterValidator(check)


Distribution = Literal["none", "mirrored", "multi_worker"]
# auto: by a fixed rule from this machine's devices, a GPU's compute capability or the CPU's features
# (cifar10.training.precision); mixed_float16 is for GPUs (Keras scales the loss)
Precision = Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"]
