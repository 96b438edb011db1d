"""Where runs are stored: the tracking URI, a reachability check, and the experiment."""
from __future__ import annotations

import contextlib
import os
from typing import Any

from cifar10.errors import PipelineError
from cifar10.paths import project_root

DB_NAME = "mlflow.db"
# MLflow 3 opens an experiment in its GenAI view unless told it holds model training. The UI of
# 3.17 decides from the page's `workflowType` (README: the URL to open), older 3.x from this tag.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the SQLite database at the project root (absolute path).

    The busy timeout lets parallel queue workers wait for the write lock instead of failing with
    "database is locked".
    """
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{project_root() / DB_NAME}?timeout=60"


def check_reachable(uri: str) -> None:
    """Fail in seconds, naming the URI, rather than after an hour of training."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        raise PipelineError(
            f"MLflow tracking server {uri} is not reachable ({type(exc).__name__}); "
            "start it or unset MLFLOW_TRACKING_URI"
        ) from None


def store_lock(uri: str):
    """Serialise opening a local SQLite store: parallel queue workers would otherwise race to create
    its tables or the experiment. A tracking server serialises on its own."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(uri.removeprefix("sqlite:///").split("?")[0] + ".lock", timeout=120)


def experiment_id(client: Any, name: str) -> str:
    """The id of experiment `name` (a model-training experiment), created if needed."""
    experiment = client.get_experiment_by_name(name)
    if experiment:
        if experiment.tags.get(KIND_TAG) != KIND:
            client.set_experiment_tag(experiment.experiment_id, KIND_TAG, KIND)
        return experiment.experiment_id
    # With the default local store, artifacts sit beside mlflow.db at the project root, not
    # relative to whichever (possibly temporary) workspace created the experiment.
    local = None if "MLFLOW_TRACKING_URI" in os.environ else (project_root() / "mlruns").as_uri()
    return client.create_experiment(name, artifact_location=local, tags={KIND_TAG: KIND})


def open_store(uri: str, experiment: str) -> tuple[Any, str]:
    """(MlflowClient, experiment id); PipelineError naming the URI if the store cannot be used."""
    from mlflow.tracking import MlflowClient

    check_reachable(uri)
    try:
        # MlflowClient opens the store (creating a new SQLite database's tables) as it is built.
        with store_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            return client, experiment_id(client, experiment)
    except Exception as exc:  # noqa: BLE001 - any store failure here means we cannot track
        raise PipelineError(f"cannot open MLflow tracking store {uri}: {str(exc)[:200]}") from None


def runs_url(server: str, experiment_id: str) -> str:
    """The UI page of an experiment's runs table. `workflowType=machine_learning` is what makes
    MLflow 3.17's UI show it as model training (the bare experiment URL opens the GenAI overview)."""
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
