"""The one typed schema of params.yaml, and its loader.

Every stage calls `load_params()` first, so a typo or an out-of-range value stops the stage in a
second with the key path in the message, before any data is read or any model is built.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cifar10.errors import PipelineError
from cifar10.schema.augment import AugmentParams
from cifar10.schema.common import Section
from cifar10.schema.data import BaseParams, DownloadParams, ImbalanceParams, TrackingParams
from cifar10.schema.evaluate import EvaluateParams
from cifar10.schema.train import TrainParams
from cifar10.schema.transfer import TransferParams

PARAMS_FILE = "params.yaml"

# Pydantic adds the member of a union it tried to the error location; users never wrote those.
_UNION_TAG = re.compile(r"^(int|float|str|bool|none|[a-z]+(-[a-z]+)+|.*\[.*\])$")


class Params(Section):
    """All of params.yaml: one section per stage plus `base` and `tracking`."""

    base: BaseParams = BaseParams()
    tracking: TrackingParams = TrackingParams()
    download: DownloadParams = DownloadParams()
    imbalance: ImbalanceParams = ImbalanceParams()
    augment: AugmentParams = AugmentParams()
    train: TrainParams = TrainParams()
    transfer: TransferParams = TransferParams()
    evaluate: EvaluateParams = EvaluateParams()


def _allowed_keys(model: type[Section], path: tuple) -> list[str]:
    for key in path:
        field = model.model_fields.get(key) if isinstance(key, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, Section)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(exc: ValidationError, source: str) -> str:
    """Condense pydantic's report into one line: the first bad key path, what is allowed, what was given."""
    groups: dict[tuple, list[dict]] = {}
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))
        groups.setdefault(loc, []).append(err)
    loc, errs = next(iter(groups.items()))
    key = ".".join(str(p) for p in loc) or "<top level>"
    if errs[0]["type"] == "extra_forbidden":
        allowed = _allowed_keys(Params, loc[:-1])
        msg = f"unknown key; allowed keys here: {', '.join(allowed)}"
    else:
        reasons = []
        for err in errs:
            reason = err["msg"].removeprefix("Value error, ")
            if reason not in reasons:
                reasons.append(reason)
        got = repr(errs[0]["input"])
        msg = " or ".join(reasons) + (f" (got {got[:60]})" if errs[0]["type"] != "missing" else "")
    more = len(groups) - 1
    return f"{source}: {key}: {msg}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def parse_params(raw: Any, source: str = PARAMS_FILE) -> Params:
    """Validate an already-parsed params mapping."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PipelineError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(_describe(exc, source)) from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; raise PipelineError with one specific line if anything is off."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PipelineError(f"{path} not found in {Path.cwd()}: run from the project root") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PipelineError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_params(raw, str(path))


def flatten(section: Section, prefix: str) -> dict[str, Any]:
    """Flatten a section to dotted keys (`train.model.filters`), the form logged to MLflow."""
    return flatten_dict(section.model_dump(), prefix)


def flatten_dict(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys, the spelling of MLflow params and of `dvc exp run -S`."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten_dict(value, dotted))
        else:
            out[dotted] = value
    return out


__all__ = ["Params", "PARAMS_FILE", "load_params", "parse_params", "flatten"]
