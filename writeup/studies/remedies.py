"""Which remedy for the class imbalance ranks first, and whether any reaches the goal: the judgements the
remedies section (writeup.studies.remedies_section) and the answers show.

Every remedy trains the study's CNN under one protocol (writeup.studies.plan.REMEDY_PROTOCOL) and is ranked
on validation balanced accuracy: the kept weights', or for logit adjustment the adjusted model's on the half
of the validation split its tau never saw. Records of logit adjustment that chose tau on the whole split
(before the halves) are tuned on the ranking's own split: shown, not ranked, no verdict until rerun. Each
remedy is set against the first by the one rule (writeup.studies.verdicts). Test figures are shown once
and never used to choose.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from writeup.studies.part3 import kept_val_balanced
from writeup.studies.plan import BALANCED_REFERENCE, REMEDIES, experiments
from writeup.studies.records import Trained
from writeup.studies.uncertainty import Figure, figure_on_test, validation_half_width
from writeup.studies.verdicts import WORSE, Comparison, against_reference, compare

GOAL = {"test_macro_f1": 0.85, "test_recall_cat": 0.65, "test_recall_dog": 0.65}  # for the best combination
LABEL = {"test_macro_f1": "macro F1", "test_recall_cat": "cat recall", "test_recall_dog": "dog recall"}
STUDY_REMEDY = {"test_macro_f1": 0.80, "test_recall_cat": 0.49, "test_recall_dog": 0.55}  # its offline augmentation
TESTS = [figure_on_test(label, key) for label, key in (
    ("test accuracy", "test_accuracy"), ("macro F1", "test_macro_f1"), ("cat recall", "test_recall_cat"),
    ("dog recall", "test_recall_dog"))]
RANKING_HALF = "val_balanced_accuracy_ranking"  # logged since tau is chosen on the other half


def remedy_runs(records: dict[str, dict[str, Trained]]) -> dict[str, dict[int, Trained]]:
    """remedy -> seed -> its finished run, for the remedies that have one."""
    out: dict[str, dict[int, Trained]] = {}
    for e in experiments():
        if e.part == "remedies" and records.get(e.name, {}).get(e.models[0]):
            out.setdefault(e.labels["setup"], {})[e.labels["seed"]] = records[e.name][e.models[0]]
    return out


def tuned_on_ranking_split(run: Trained) -> bool:
    """A logit-adjustment record whose tau was the best on the whole validation split that ranks it."""
    return "logit_adjustment_tau" in run.metrics and RANKING_HALF not in run.metrics


def selected_on(run: Trained) -> float | None:
    """What a remedy is ranked on: validation balanced accuracy of the model it ends with (logit adjustment:
    on the ranking half; an old record: on the whole split its tau was chosen on)."""
    if RANKING_HALF in run.metrics:
        return run.metrics[RANKING_HALF]
    return run.metrics.get("val_balanced_accuracy_adjusted", kept_val_balanced(run))


VALIDATION = Figure("validation balanced accuracy", selected_on,
                    lambda run: validation_half_width(run, half=RANKING_HALF in run.metrics))


def mean_selected_on(seeds: dict[int, Trained]) -> float:
    """A remedy's mean over seeds of what it is ranked on (0 when no seed logged it)."""
    return statistics.mean([v for r in seeds.values() if (v := selected_on(r)) is not None] or [0.0])


def _training_set(name: str) -> tuple[str, tuple[str, ...]]:
    """What a remedy trains on: its model's set and the augment overrides that make it."""
    model, overrides = REMEDIES.get(name, ("baseline", ()))
    return model, tuple(o for o in overrides if o.startswith("augment."))


@dataclass(frozen=True)
class Ranking:
    order: list[str]  # the remedies ranked, best first on mean validation balanced accuracy
    tuned: list[str]  # shown, not ranked: tau tuned on the ranking's own split
    against_first: dict[str, Comparison]  # each ranked remedy but the first, minus the first

    @property
    def first(self) -> str:
        return self.order[0]

    def by_verdict(self) -> dict[str, list[str]]:
        """verdict -> the remedies the first was set against that got it."""
        out: dict[str, list[str]] = {}
        for name, c in self.against_first.items():
            out.setdefault(c.verdict, []).append(name)
        return out


def ranking(runs: dict[str, dict[int, Trained]]) -> Ranking:
    """Rank the remedies and set each against the first, seed by seed; a remedy on another training set than
    the first's (offline augmentation against none) changes that set by design, so it is not a mix."""
    tuned = [n for n, seeds in runs.items() if any(tuned_on_ranking_split(r) for r in seeds.values())]
    order = sorted((n for n in runs if n not in tuned), key=lambda n: -mean_selected_on(runs[n]))
    if not order:
        return Ranking([], tuned, {})
    first = order[0]
    against = {name: compare({s: (runs[name][s], runs[first][s]) for s in runs[name] if s in runs[first]}, VALIDATION,
                             same_data=_training_set(name) == _training_set(first)) for name in order[1:]}
    return Ranking(order, tuned, against)


def goal_verdicts(seeds: dict[int, Trained]) -> dict[str, Comparison]:
    """Goal figure -> the remedy's runs against the goal's threshold, by the rule."""
    return {k: against_reference(seeds, GOAL[k], next(f for f in TESTS if f.label == LABEL[k])) for k in GOAL}


def goal_means(seeds: dict[int, Trained]) -> dict[str, float]:
    """A remedy's mean over seeds of each figure the goal sets."""
    return {k: statistics.mean(r.metrics[k] for r in seeds.values()) for k in GOAL}


def misses_goal(seeds: dict[int, Trained]) -> list[str]:
    """The goal figures a remedy is below by the rule (every seed below, beyond its runs' intervals)."""
    return [LABEL[k] for k, c in goal_verdicts(seeds).items() if c.verdict == WORSE]


def reaches_goal(seeds: dict[int, Trained]) -> bool:
    return all(v >= GOAL[k] for k, v in goal_means(seeds).items())


def goal_text(values: dict[str, float]) -> str:
    """The goal's figures of one model or mean, e.g. "macro F1 0.820, cat recall 0.691, dog recall 0.680"."""
    return ", ".join(f"{LABEL[k]} {values[k]:.3f}" for k in GOAL)


def balanced_reference(records: dict[str, dict[str, Trained]]) -> Trained | None:
    """The study's CNN trained with no imbalance to remedy (part 2's reference run), if it has finished."""
    return records.get(BALANCED_REFERENCE, {}).get("baseline")
