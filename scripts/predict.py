"""Classify image files with a trained model: the top-k CIFAR-10 classes and their probabilities.

    python -m scripts.predict IMAGE [IMAGE ...] [--model NAME|PATH|URI] [--top 3] [--json]

NAME is baseline, augmented, frozen or transfer (models/NAME.keras), PATH a saved .keras model, URI a
registered model such as models:/cifar10-classifier@champion.

Images of any size and mode are made 32x32 RGB exactly as the download stage makes image folders
into the dataset, and all of them are predicted in one call.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from cifar10.classes import CIFAR10_CLASSES
from cifar10.errors import PipelineError, cli_errors
from cifar10.paths import MODEL_STAGE, missing, model_path

DEFAULT_MODEL = "transfer"  # the study classified its example image with its transfer model (ours: fine-tuned)
BATCH_SIZE = 256


def registered_model_file(uri: str) -> Path:
    """The Keras file of a registered model (`models:/name@alias`, `models:/name/3`) from the tracking
    store the stages use (MLFLOW_TRACKING_URI, else the project's mlflow.db)."""
    import mlflow

    from cifar10.tracking.store import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    try:
        folder = Path(mlflow.artifacts.download_artifacts(uri))
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types for a bad URI or store
        raise PipelineError(f"{uri}: no such registered model version in {tracking_uri()} "
                            f"({type(exc).__name__}: {str(exc)[:120]})") from None
    return folder / "data" / "model.keras"


def resolve_model(spec: str) -> Path:
    """A model name (baseline, augmented, frozen, transfer), a path to a saved Keras model or a registered
    model URI (models:/...), as an existing path."""
    if spec.startswith("models:/"):
        return registered_model_file(spec)
    if spec in MODEL_STAGE:
        path = model_path(spec)
        if not path.exists():
            raise missing(path, f" (or run from the project root; looked in {Path.cwd()})")
        return path
    path = Path(spec)
    if path.suffix in (".keras", ".h5") or os.sep in spec:
        if not path.is_file():
            raise PipelineError(f"model file {path} not found")
        return path
    raise PipelineError(f"unknown model {spec!r}: use {', '.join(MODEL_STAGE)} or the path of a .keras file")


def top_k(probs: np.ndarray, classes: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """Per row of probabilities, the k most likely (class, probability), most likely first."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(classes[j], float(row[j])) for j in idx] for row, idx in zip(probs, order)]


def predict_images(model, images: np.ndarray, classes: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """Top-k predictions for a (N, 32, 32, 3) uint8 batch."""
    from cifar10.training.inputs import predict_proba

    probs = predict_proba(model, images, BATCH_SIZE)
    if probs.shape[1] != len(classes):
        raise PipelineError(f"the model outputs {probs.shape[1]} classes, expected {len(classes)} (CIFAR-10)")
    return top_k(probs, classes, k)


def format_text(paths: Sequence[str], results: list[list[tuple[str, float]]]) -> str:
    width = max(len(c) for c in CIFAR10_CLASSES)
    lines = []
    for path, top in zip(paths, results):
        lines.append(str(path))
        lines += [f"  {i}. {cls:<{width}} {p:7.2%}" for i, (cls, p) in enumerate(top, 1)]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cifar-predict", description="Top-k CIFAR-10 classes of PNG/JPEG images."
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files, any size and mode")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL,
        help=f"baseline, augmented, frozen, transfer (models/<name>.keras), a .keras path or a registered model URI "
             f"such as models:/cifar10-classifier@champion (default: {DEFAULT_MODEL})",
    )
    parser.add_argument("--top", type=int, default=3, help=f"classes shown per image, 1..{len(CIFAR10_CLASSES)}")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser.parse_args(argv)


@cli_errors
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if not 1 <= args.top <= len(CIFAR10_CLASSES):
        raise PipelineError(f"--top must be between 1 and {len(CIFAR10_CLASSES)} (got {args.top})")
    from cifar10.console import quiet_tensorflow
    from cifar10.data.sources.images import read_image
    from cifar10.models.saved import load_for_inference

    # Every file is decoded before TensorFlow starts, so a bad one fails in a moment.
    images = np.stack([read_image(p) for p in args.images])
    path = resolve_model(args.model)
    quiet_tensorflow()
    model = load_for_inference(path)
    results = predict_images(model, images, CIFAR10_CLASSES, args.top)
    if args.json:
        out = {
            "model": args.model if args.model.startswith("models:/") else str(path),
            "predictions": [
                {"image": img, "top": [{"class": c, "probability": p} for c, p in top]}
                for img, top in zip(args.images, results)
            ],
        }
        print(json.dumps(out, indent=2))
    else:
        print(f"model: {args.model if args.model.startswith('models:/') else path}")
        print(format_text(args.images, results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
