"""The MLflow layer every stage uses: where runs go, how they are named, tagged and grouped.

Stages get a `Tracker` from `stage_run()` in their `main()` and hand it (or a callback made from it)
to their core; cores never import MLflow. Logging failures after the start of a run never lose the
stage's outputs: they are collected and reported when the run ends.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from stages.errors import PipelineError
from stages.schema import Params, flatten

DB_NAME = "mlflow.db"
# A queued or --temp DVC experiment runs in a copy of the repo under this folder of the real one.
_DVC_TEMP_WORKSPACES = (".dvc", "tmp", "exps")
_PARENT_TAG = "pipeline.parent"


def project_root(start: Path | None = None) -> Path:
    """The repository the pipeline belongs to, also from inside a DVC temporary workspace."""
    path = (start or Path.cwd()).resolve()
    parts = path.parts
    for i in range(len(parts) - len(_DVC_TEMP_WORKSPACES) + 1):
        if parts[i : i + len(_DVC_TEMP_WORKSPACES)] == _DVC_TEMP_WORKSPACES:
            return Path(*parts[:i])
    return path


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the SQLite database at the project root (absolute path).

    The busy timeout lets parallel queue workers wait for the write lock instead of failing with
    "database is locked".
    """
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{project_root() / DB_NAME}?timeout=60"


def _check_reachable(uri: str) -> None:
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


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _dvc_process() -> tuple[int, str] | None:
    """The (pid, start time) of the `dvc` process this stage runs under, if any (Linux /proc)."""
    pid = os.getppid()
    for _ in range(8):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        if any(Path(arg.decode(errors="replace")).name == "dvc" for arg in cmdline[:2]):
            return pid, stat[19]  # field 22 of stat: start time in clock ticks since boot
        pid = int(stat[1])
        if pid <= 1:
            return None
    return None


def pipeline_group() -> str:
    """An id shared by the stages of one pipeline execution.

    PIPELINE_RUN_GROUP wins; inside `dvc repro`/`dvc exp run` it is derived from the dvc process, so
    every stage it runs lands in the same group; a stage run by hand is a group of its own.
    """
    explicit = os.environ.get("PIPELINE_RUN_GROUP")
    if explicit:
        return explicit
    proc = _dvc_process()
    seed = f"{proc[0]}-{proc[1]}" if proc else f"{os.getpid()}-{time.time_ns()}"
    seed += os.environ.get("DVC_EXP_NAME", "")
    return hashlib.sha1(seed.encode()).hexdigest()[:12]


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
    """Logging calls for one stage run; failures are recorded, not raised, once the run is open.

    A circuit breaker: after a call fails because the server is unreachable, the remaining calls of
    the run are skipped (and recorded as such) instead of each waiting for its own retries.
    """

    def __init__(self, client: Any, run_id: str, stage: str):
        self.client = client
        self.run_id = run_id
        self.stage = stage
        self.not_logged: list[str] = []
        self.unreachable: str | None = None  # the failure that opened the breaker

    def _safe(self, what: str, fn, *args, **kwargs) -> None:
        if self.unreachable is not None:
            self.not_logged.append(f"{what} (skipped)")
            return
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the stage's outputs matter more than its logs
            reason = f"{type(exc).__name__}: {str(exc)[:120]}"
            if is_connection_failure(exc):
                self.unreachable = reason
                reason = "server unreachable; later calls skipped"
            self.not_logged.append(f"{what} ({reason})")


    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._safe("params", self.client.log_batch, self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            what = f"metrics at step {step}" if step is not None else "metrics"
            self._safe(what, self.client.log_batch, self.run_id, metrics=items[i : i + 500])

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self._safe(f"tag {key}", self.client.set_tag, self.run_id, key, str(value))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._safe(f"artifact {path}", self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_dict(self, obj: Any, name: str) -> None:
        self._safe(f"artifact {name}", self.client.log_dict, self.run_id, obj, name)

    def log_text(self, text: str, name: str) -> None:
        self._safe(f"artifact {name}", self.client.log_text, self.run_id, text, name)

    def log_figure(self, figure: Any, name: str) -> None:
        self._safe(f"artifact {name}", self.client.log_figure, self.run_id, figure, name)


class NullTracker:
    """The Tracker of a process that records nothing (a non-chief worker of a multi-worker run)."""

    def __init__(self, stage: str):
        self.stage = stage
        self.not_logged: list[str] = []
        self.unreachable = None

    def _noop(self, *args, **kwargs) -> None:
        return None

    log_params = log_metrics = set_tags = log_artifact = log_dict = log_text = log_figure = _noop


def _parent_run(client: Any, experiment_id: str, group: str, tags: dict[str, str]) -> str:
    """Find or create the run that groups this pipeline execution's stage runs in the UI."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`pipeline.group` = '{group}' and tags.`{_PARENT_TAG}` = 'true'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    name = os.environ.get("DVC_EXP_NAME") or f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}"
    run = client.create_run(experiment_id, run_name=name, tags={**tags, _PARENT_TAG: "true"})
    return run.info.run_id


def _store_lock(uri: str):
    """Serialise opening a local SQLite store: parallel queue workers would otherwise race to create
    its tables or the experiment. A tracking server serialises on its own."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(uri.removeprefix("sqlite:///").split("?")[0] + ".lock", timeout=120)


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    # With the default local store, artifacts sit beside mlflow.db at the project root, not
    # relative to whichever (possibly temporary) workspace created the experiment.
    local = None if "MLFLOW_TRACKING_URI" in os.environ else (project_root() / "mlruns").as_uri()
    return client.create_experiment(name, artifact_location=local)


@contextlib.contextmanager
def stage_run(stage: str, params: Params, sections: Sequence[str]) -> Iterator[Tracker]:
    """Open the MLflow run of one stage: named after it, tagged, grouped, params logged.

    The run ends FINISHED, or FAILED if the block raises. Call it after params are validated and
    before heavy work, so an unreachable server fails the stage at its start.
    """
    with bounded_http_client():
        with _stage_run(stage, params, sections) as tracker:
            yield tracker


@contextlib.contextmanager
def _stage_run(stage: str, params: Params, sections: Sequence[str]) -> Iterator[Tracker]:
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    _check_reachable(uri)
    try:
        # MlflowClient opens the store (creating a new SQLite database's tables) as it is built.
        with _store_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            experiment_id = _experiment_id(client, params.tracking.experiment)
    except Exception as exc:  # noqa: BLE001 - any store failure here means we cannot track
        raise PipelineError(f"cannot open MLflow tracking store {uri}: {str(exc)[:200]}") from None

    group = pipeline_group()
    tags = {"pipeline.group": group, "git_commit": _git_commit()}
    for env, tag in (("DVC_EXP_NAME", "dvc_exp_name"), ("DVC_EXP_BASELINE_REV", "dvc_exp_baseline")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    parent = _parent_run(client, experiment_id, group, tags)
    run = client.create_run(
        experiment_id,
        run_name=stage,
        tags={**tags, "stage": stage, "mlflow.parentRunId": parent},
    )
    tracker = Tracker(client, run.info.run_id, stage)
    logged: dict[str, Any] = {}
    for section in sections:
        logged.update(flatten(getattr(params, section), section))
    tracker.log_params(logged)
    status = "FAILED"
    started = time.perf_counter()
    try:
        yield tracker
        status = "FINISHED"
    finally:
        # Every stage reports its cost the same way, so the benchmark and RESULTS read them from MLflow.
        tracker.log_metrics({"stage_wall_time_s": time.perf_counter() - started, "peak_rss_mb": _peak_rss_mb()})
        tracker._safe("run status", client.set_terminated, run.info.run_id, status)
        tracker._safe("group status", client.set_terminated, parent, status)
        if tracker.not_logged:
            shown = tracker.not_logged[:20]
            print(
                f"warning: {stage}: outputs written, but MLflow ({uri}) did not record: "
                + "; ".join(shown)
                + (f" (+{len(tracker.not_logged) - len(shown)} more)" if len(tracker.not_logged) > len(shown) else "")
                + (f". First failure: {tracker.unreachable}" if tracker.unreachable else ""),
                file=sys.stderr,
            )


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def class_metric_names(cls: str, prefix: str = "test") -> dict[str, str]:
    """The fixed per-class metric names, e.g. test_precision_cat."""
    return {k: f"{prefix}_{k}_{cls}" for k in ("precision", "recall", "f1", "support")}


def artifact_tempdir() -> tempfile.TemporaryDirectory:
    """A scratch folder for artifacts built only to be logged."""
    return tempfile.TemporaryDirectory(prefix="mlflow-artifacts-")
