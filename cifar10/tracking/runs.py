"""Opening the MLflow run of one stage: named after it, tagged, grouped under its pipeline execution.

Every stage opens exactly one run with `stage_run()`, after its params are validated and before any
heavy work, so an unreachable server fails the stage at its start. Runs of one `dvc repro` (or one
`dvc exp run`) sit under one parent run, named after the DVC experiment, in the UI; the parent carries
the execution's state (cifar10.tracking.pipeline_state).
"""
from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from typing import Any, Iterator, Sequence

from cifar10.schema import Params, flatten
from cifar10.tracking.pipeline_state import open_state
from cifar10.tracking.provenance import run_tags
from cifar10.tracking.store import open_store, tracking_uri
from cifar10.tracking.tracker import Tracker, bounded_http_client

PARENT_TAG = "pipeline.parent"


def _parent_run(client: Any, experiment_id: str, tags: dict[str, str]) -> tuple[str, bool]:
    """Find or create the run that groups this pipeline execution's stage runs in the UI: (its id,
    whether it was created now)."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`pipeline.group` = '{tags['pipeline.group']}' and tags.`{PARENT_TAG}` = 'true'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id, False
    name = os.environ.get("DVC_EXP_NAME") or f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}"
    run = client.create_run(experiment_id, run_name=name, tags={**tags, PARENT_TAG: "true"})
    return run.info.run_id, True


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@contextlib.contextmanager
def stage_run(stage: str, params: Params, sections: Sequence[str]) -> Iterator[Tracker]:
    """Open the run of `stage` with the params of `sections` logged; yield its Tracker.

    The run ends FINISHED, KILLED on Ctrl-C, or FAILED if the block raises; either way it gets the stage's cost
    (`stage_wall_time_s`, `peak_rss_mb`) and, if MLflow missed anything, a warning on stderr.
    """
    with bounded_http_client():
        uri = tracking_uri()
        client, experiment_id = open_store(uri, params.tracking.experiment)
        tags = run_tags()
        parent, opened = _parent_run(client, experiment_id, tags)
        client.update_run(parent, status="RUNNING")  # the group runs while any of its stages does
        run = client.create_run(experiment_id, run_name=stage,
                                tags={**tags, "stage": stage, "mlflow.parentRunId": parent})
        tracker = Tracker(client, run.info.run_id, stage, experiment_id, group_run_id=parent)
        if opened:  # every stage of one execution reads the same params.yaml
            open_state(tracker, params)
        logged: dict[str, Any] = {}
        for section in sections:
            logged.update(flatten(getattr(params, section), section))
        tracker.log_params(logged)
        status = "FAILED"
        started = time.perf_counter()
        try:
            yield tracker
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"  # stopped by the user, not broken: the UI's status column tells them apart
            raise
        finally:
            # Every stage reports its cost the same way, so the benchmark and RESULTS read them from MLflow.
            tracker.log_metrics({"stage_wall_time_s": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()})
            tracker.safe("run status", client.set_terminated, run.info.run_id, status)
            tracker.safe("group status", client.set_terminated, parent, status)
            _warn_not_logged(tracker, uri)


def _warn_not_logged(tracker: Tracker, uri: str) -> None:
    if not tracker.not_logged:
        return
    shown = tracker.not_logged[:20]
    more = len(tracker.not_logged) - len(shown)
    print(
        f"warning: {tracker.stage}: outputs written, but MLflow ({uri}) did not record: " + "; ".join(shown)
        + (f" (+{more} more)" if more > 0 else "")
        + (f". First failure: {tracker.unreachable}" if tracker.unreachable else ""),
        file=sys.stderr,
    )
