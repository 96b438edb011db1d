"""The top of STUDIES.md: the few figures a reader comes for, each one also in a section below.

The study's two CNNs over seeds beside its published figures (part 3's defaults), the remedy first on
validation, and the combination chosen before any remedy ran, against the goal set for it.
"""
from __future__ import annotations

import statistics

from cifar10.reporting.reference import STUDY
from writeup.studies.part3 import FIGURES, MODELS, metric, setups_of, values_of
from writeup.studies.plan import REMEDIES, SEEDS
from writeup.studies.records import Trained
from writeup.studies.remedies import (GOAL, LABEL, STUDY_REMEDY, balanced_reference, goal_means, goal_text,
                                      mean_selected_on, ranked, remedy_runs)

COMBINATION = list(REMEDIES)[-1]  # the plan lists the pre-registered combination last


def glance_lines(records: dict[str, dict[str, Trained]]) -> list[str]:
    """`## At a glance` with a line per headline figure; nothing while no run has finished."""
    lines = _study_lines(records) + _remedy_lines(records)
    return ["## At a glance", "", *lines, ""] if lines else []


def _study_lines(records: dict[str, dict[str, Trained]]) -> list[str]:
    defaults = setups_of(records)["defaults"]
    out = []
    for model in MODELS:
        figures = [(label, values_of(defaults, model, metric(key)), study(STUDY[model]))
                   for label, key, study in FIGURES]
        seeds = max(len(values) for _, values, _ in figures)
        if seeds:
            out.append(f"- The study's {model} CNN (part 3, mean over {seeds} of {len(SEEDS)} seeds, the study's "
                       "figure in brackets): " + ", ".join(f"{label} {statistics.mean(values):.3f} ({ref:.2f})"
                                                          for label, values, ref in figures if values) + ".")
    return out


def _remedy_lines(records: dict[str, dict[str, Trained]]) -> list[str]:
    runs = remedy_runs(records)
    if not runs:
        return []

    def summary(name: str) -> str:
        seeds = runs[name]
        return (f"**{name}** ({len(seeds)} of {len(SEEDS)} seeds): validation balanced accuracy "
                f"{mean_selected_on(seeds):.3f}; on test {goal_text(goal_means(seeds))}")

    best = ranked(runs)[0]
    goal, study = (" / ".join(f"{v:.2f}" for v in figures.values()) for figures in (GOAL, STUDY_REMEDY))
    reached = [f"{name} ({len(seeds)} of {len(SEEDS)} seeds)" for name, seeds in runs.items()
               if all(v >= GOAL[k] for k, v in goal_means(seeds).items())]
    out = [f"- First of {len(runs)} remedies for the imbalance on validation: {summary(best)}."]
    if COMBINATION in runs and COMBINATION != best:
        out.append(f"- The combination chosen before any remedy ran: {summary(COMBINATION)}.")
    out.append(f"- The goal ({', '.join(LABEL.values())} >= {goal}, mean over {len(SEEDS)} seeds; the study's "
               f"offline augmentation reached {study}): "
               + (f"reached by {', '.join(reached)}." if reached else _unreached(runs, balanced_reference(records))))
    return out


def _unreached(runs: dict[str, dict[int, Trained]], reference: Trained | None) -> str:
    """The goal line's end when no remedy reached it: "so far" while remedies are still to run, and for scale
    what the same CNN reached with no imbalance at all, once that run has finished."""
    finished = len(runs) == len(REMEDIES) and all(len(seeds) == len(SEEDS) for seeds in runs.values())
    text = "reached by no remedy" + ("" if finished else " so far") + "; the remedies section says how far each got"
    if reference is None:
        return text + "."
    return (text + ", and what the same CNN reached with no imbalance at all: "
            + goal_text(reference.metrics) + " (part 2, one run).")
