"""The parent run of a pipeline execution as the pipeline's state, the row MLflow compares.

MLflow's runs table, Compare page and chart view compare runs by their own params and metrics, and a
stage run holds only a slice of either. So the parent run of each execution (one `dvc repro` or `dvc
exp run`) carries the whole params.yaml as params, under the dotted keys `dvc exp run -S` takes,
logged as the parent opens; and, once the compare stage has read them from the execution's DVC
outputs (every evaluated model's report, a model restored from DVC's cache included), the headline
figures of every model as metrics, with the transfer backbone and each model's precision policy as
tags.
"""
from __future__ import annotations

from typing import Any, Mapping

from cifar10.schema import Params, flatten_dict

# Metric names of the headline keys (the compare stage's); a class key is that class's recall.
_METRIC = {"acc": "test_accuracy", "f1": "test_macro_f1"}
# The training stage's params section of each model, for runs logged before they logged `precision`.
_SECTION = {"baseline": "train", "augmented": "train", "frozen": "transfer", "transfer": "transfer"}


def state_params(params: Params) -> dict[str, Any]:
    """Every key of params.yaml, dotted (`train.optimizer.name`)."""
    return flatten_dict(params.model_dump())


def state_metrics(headlines: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """model -> headline figures, as one run's metrics: `baseline_test_accuracy`, `baseline_test_macro_f1`,
    `baseline_test_recall_cat`, ... (the names the training runs carry, prefixed with the model)."""
    return {f"{model}_{_METRIC.get(key, f'test_recall_{key}')}": value
            for model, figures in headlines.items() for key, value in figures.items()}


def state_tags(reports: Mapping[str, dict], backbone: str | None) -> dict[str, str]:
    """`backbone` (the transfer models') and `precision.<model>`: the policy each model trained under, as
    its training run logged it (`precision`, else the params key), from the evaluate stage's report."""
    tags = {"backbone": backbone} if backbone else {}
    for model, report in reports.items():
        trained = report.get("training_params") or {}
        used = trained.get("precision") or trained.get(f"{_SECTION.get(model, 'train')}.precision")
        if used:
            tags[f"precision.{model}"] = str(used)
    return tags


def open_state(tracker: Any, params: Params) -> None:
    """Log the whole params.yaml on the execution's parent run (when the parent is opened)."""
    if tracker.group_run_id:
        tracker.for_run(tracker.group_run_id).log_params(state_params(params))


def record_figures(tracker: Any, headlines: Mapping[str, Mapping[str, float]], reports: Mapping[str, dict],
                   backbone: str | None) -> None:
    """Log the headline figures of every model and the tags on the execution's parent run.

    Args:
        tracker: the compare stage's Tracker (its `group_run_id` is the parent).
        headlines: model -> {acc, f1, <rare class>: recall}, as written to the DVC metrics.
        reports: model -> its evaluate report (reports/per_class/<model>.json).
        backbone: the transfer models' backbone, if one of them was evaluated.
    """
    if not tracker.group_run_id:
        return
    parent = tracker.for_run(tracker.group_run_id)
    parent.log_metrics(state_metrics(headlines))
    parent.set_tags(state_tags(reports, backbone))
