"""Trained models in the MLflow model registry, as the very bytes DVC tracks in models/.

Every model a training stage saves becomes a version of one registered model (params
`tracking.registered_model`), tagged with its variant (baseline, augmented, frozen, transfer) and
the SHA-256 of models/<variant>.keras (frozen and transfer hold the same bytes when no block is
fine-tuned: versions are found by digest and variant). The version's artifact is an MLflow Keras model
(signature: uint8 N x 32 x 32 x 3 in, 10 probabilities out; an input example) whose model file is a
copy of DVC's file, byte for byte; DVC stays the owner of models/. The evaluate stages tag each
version with its test figures, and the compare stage points the alias `champion` at the best one by
test macro F1, so `mlflow models serve -m models:/<name>@champion` serves it.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cifar10.tracking.links import MODEL_DIGEST_TAG, model_digest

CHAMPION = "champion"
VARIANT_TAG = "variant"


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype("uint8"), (-1, 32, 32, 3), "image")]),
                          outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 10), "probabilities")]))


def register(tracker: Any, model: Any, model_file: Path, name: str, variant: str, example: np.ndarray) -> str | None:
    """Log `model` (saved at `model_file`) as an MLflow Keras model of the tracker's run and register it
    as a version of `name`; returns the version, or None if MLflow did not record it (the stage's
    outputs stand either way: failures are in tracker.not_logged)."""
    return tracker.safe(f"registered model {name}", _register, tracker, model, Path(model_file), name, variant,
                        example[:2])


def _register(tracker: Any, model: Any, model_file: Path, name: str, variant: str, example: np.ndarray) -> str:
    import keras
    import mlflow
    import mlflow.keras
    from mlflow.entities import LoggedModelOutput
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    client, run_id, digest = tracker.client, tracker.run_id, model_digest(model_file)
    # A SQL store's registry finds the logged model through the global tracking URI.
    mlflow.set_tracking_uri(client.tracking_uri)
    logged = client.create_logged_model(experiment_id=tracker.experiment_id, name=f"cifar10-{variant}",
                                        source_run_id=run_id, tags={MODEL_DIGEST_TAG: digest, VARIANT_TAG: variant})
    try:
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(scratch) / "model"
            local.mkdir()  # mlflow.keras writes the input example before it creates the folder
            info = Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id, run_id=run_id,
                         model_id=logged.model_id)
            mlflow.keras.save_model(model, str(local), mlflow_model=info, signature=_signature(), input_example=example,
                                    pip_requirements=[f"mlflow=={mlflow.__version__}", f"keras=={keras.__version__}",
                                                      "tensorflow"])  # explicit: inferring them takes 15 s
            shutil.copyfile(model_file, local / "data" / "model.keras")  # DVC's bytes, not a re-save
            client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.finalize_logged_model(logged.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    try:
        client.create_registered_model(name, description="CIFAR-10 classifiers of the pipeline (tag `variant`)")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(name, source=f"models:/{logged.model_id}", run_id=run_id,
                                          model_id=logged.model_id,
                                          tags={MODEL_DIGEST_TAG: digest, VARIANT_TAG: variant})
    client.set_logged_model_tags(logged.model_id, {"mlflow.modelVersions": json.dumps(
        [{"name": name, "version": version.version}])})
    return version.version


def version_by_digest(client: Any, name: str, digest: str, variant: str):
    """The latest registered version of `name` whose model file has this SHA-256, of this variant, or None."""
    found = client.search_model_versions(
        f"name = '{name}' and tags.{MODEL_DIGEST_TAG} = '{digest}' and tags.{VARIANT_TAG} = '{variant}'")
    return max(found, key=lambda v: int(v.version)) if found else None


def version_of(client: Any, name: str, model_file: Path, variant: str):
    """The latest registered version of `name` of this variant holding exactly these bytes, or None."""
    return version_by_digest(client, name, model_digest(model_file), variant)


def tag_version(tracker: Any, name: str, version: Any, metrics: dict[str, float]) -> None:
    """Tag a version with its test accuracy and macro F1 (the registry's view of the evaluation)."""
    for key in ("test_accuracy", "test_macro_f1"):
        tracker.safe(f"tag {key} on {name} v{version.version}", tracker.client.set_model_version_tag, name,
                     version.version, key, f"{metrics[key]:.4f}")


def crown(tracker: Any, name: str, scored: dict[str, dict[str, float]], versions: dict[str, Any]) -> str | None:
    """Alias the version of the best model by test macro F1 `champion`; return that model.

    Args:
        scored: model -> test figures (test_macro_f1, ...).
        versions: model -> its registered version, for the models that have one.
    """
    if not versions:
        return None
    best = max(versions, key=lambda m: scored[m]["test_macro_f1"])
    tracker.safe(f"alias {CHAMPION}", tracker.client.set_registered_model_alias, name, CHAMPION, versions[best].version)
    return best
