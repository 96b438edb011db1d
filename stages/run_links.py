"""Links from an evaluation run to the MLflow runs that trained the models it scored."""
from __future__ import annotations

from typing import Any, Mapping


def latest_training_run(client: Any, experiment_id: str, stage: str, group: str | None):
    """The latest FINISHED run of `stage`, preferring one of the same pipeline execution.

    Returns (run, how) with how = "pipeline.group" or "latest", or None if the stage never finished.
    A stage DVC did not rerun (cached) has its run in an earlier group, hence the fallback.
    """
    base = f"tags.stage = '{stage}' and attributes.status = 'FINISHED'"
    tries = [(f"{base} and tags.`pipeline.group` = '{group}'", "pipeline.group")] if group else []
    for filter_string, how in tries + [(base, "latest")]:
        found = client.search_runs(
            [experiment_id], filter_string=filter_string, order_by=["attributes.start_time DESC"], max_results=1
        )
        if found:
            return found[0], how
    return None


def link_training_runs(tracker: Any, stages: Mapping[str, str]) -> dict:
    """Tag the tracker's run with `evaluated.<model>.run_id` per model; returns model -> training run.

    Args:
        tracker: the open stage's Tracker (its client and run id are used).
        stages: model name -> the pipeline stage that trains it.
    """
    linked: dict = {}
    try:
        me = tracker.client.get_run(tracker.run_id)
        group = me.data.tags.get("pipeline.group")
        for model, stage in stages.items():
            hit = latest_training_run(tracker.client, me.info.experiment_id, stage, group)
            if hit:
                run, how = hit
                linked[model] = run
                tracker.set_tags({f"evaluated.{model}.run_id": run.info.run_id, f"evaluated.{model}.matched_by": how})
    except Exception as exc:  # noqa: BLE001 - links are a convenience, never a reason to fail
        tracker.not_logged.append(f"training run links ({type(exc).__name__}: {str(exc)[:120]})")
    return linked
