"""The logging handle of one run: failures after the run opened are recorded, never raised.

A stage's outputs matter more than its logs: if the tracking server dies mid-run, the stage still
writes its outputs and ends with a warning listing what MLflow did not record.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

# Defaults for MLflow's HTTP client while a stage runs (a user's own setting wins). MLflow's own (7 retries,
# backoff factor 2, 120 s timeout) make every call to a dead server wait minutes: an epoch would wait
# longer than it trains. With these a failing call gives up within seconds (connection refused) or
# ~45 s (a server that accepts but never answers), and then the circuit breaker skips the rest.
HTTP_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # waits ~1 s, then ~2 s (plus jitter) between tries
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


@contextlib.contextmanager
def bounded_http_client() -> Iterator[None]:
    """Apply HTTP_CLIENT_DEFAULTS for the block (only where the environment does not set them)."""
    added = {k: v for k, v in HTTP_CLIENT_DEFAULTS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def is_connection_failure(exc: BaseException) -> bool:
    """True if `exc` (or what it wraps) says the tracking server cannot be reached or does not answer.

    MLflow's REST client wraps the requests error in an MlflowException, keeping it as the context.
    """
    import requests

    kinds = (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError, ConnectionError,
             TimeoutError)
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, kinds) or "Max retries exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class Tracker:
    """Logging calls for one run; failures are recorded in `not_logged`, not raised.

    A circuit breaker: after a call fails because the server is unreachable, the remaining calls of
    the run are skipped (and recorded as such) instead of each waiting for its own retries.
    `for_run` gives a handle on another run (e.g. a model's training run) that shares the breaker.
    `group_run_id` is the parent run of the pipeline execution the run belongs to, if any.
    """

    def __init__(self, client: Any, run_id: str, stage: str, experiment_id: str | None = None,
                 parent: "Tracker | None" = None, group_run_id: str | None = None):
        self.client = client
        self.run_id = run_id
        self.stage = stage
        self.experiment_id = experiment_id
        self.group_run_id = group_run_id if parent is None else parent.group_run_id
        self._root = parent._root if parent is not None else self
        if parent is None:
            self.not_logged: list[str] = []
            self.unreachable: str | None = None  # the failure that opened the breaker

    def for_run(self, run_id: str) -> "Tracker":
        return Tracker(self.client, run_id, self.stage, self.experiment_id, parent=self)

    def safe(self, what: str, fn, *args, **kwargs) -> Any:
        """Call `fn`; on failure record `what` and return None."""
        root = self._root
        if root.unreachable is not None:
            root.not_logged.append(f"{what} (skipped)")
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the stage's outputs matter more than its logs
            reason = f"{type(exc).__name__}: {str(exc)[:120]}"
            if is_connection_failure(exc):
                root.unreachable = reason
                reason = "server unreachable; later calls skipped"
            root.not_logged.append(f"{what} ({reason})")
            return None

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.safe("params", self.client.log_batch, self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            what = f"metrics at step {step}" if step is not None else "metrics"
            self.safe(what, self.client.log_batch, self.run_id, metrics=items[i : i + 500])

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.safe(f"tag {key}", self.client.set_tag, self.run_id, key, str(value))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.safe(f"artifact {path}", self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_dict(self, obj: Any, name: str) -> None:
        self.safe(f"artifact {name}", self.client.log_dict, self.run_id, obj, name)

    def log_text(self, text: str, name: str) -> None:
        self.safe(f"artifact {name}", self.client.log_text, self.run_id, text, name)

    def log_figure(self, figure: Any, name: str) -> None:
        self.safe(f"artifact {name}", self.client.log_figure, self.run_id, figure, name)

    def log_datasets(self, inputs: list) -> None:
        """Record datasets (cifar10.tracking.datasets.dataset_input) on the run."""
        names = ", ".join(i.dataset.name for i in inputs)
        self.safe(f"datasets {names}", self.client.log_inputs, self.run_id, datasets=inputs)


class NullTracker:
    """The Tracker of a process that records nothing (a non-chief worker of a multi-worker run)."""

    def __init__(self, stage: str):
        self.stage = stage
        self.experiment_id = None
        self.group_run_id = None
        self.not_logged: list[str] = []
        self.unreachable = None

    def _noop(self, *args, **kwargs) -> None:
        return None

    def for_run(self, run_id: str) -> "NullTracker":
        return self

    safe = log_params = log_metrics = set_tags = log_artifact = log_dict = log_text = log_figure = log_datasets = _noop
