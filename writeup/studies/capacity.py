"""STUDIES.md's capacity section: the study's CNN under a training recipe chosen on validation, then the
imbalance models again under it (writeup.studies.capacity_plan says what runs and why).

The screen is ranked on the kept weights' validation balanced accuracy and scores no test image; the
confirmation's test figures are shown, never used to choose. Until the runs have records the section
lists what is planned and that it waits.
"""
from __future__ import annotations

import statistics

from writeup.studies.capacity_plan import (ARMS, CAPACITY_PROTOCOL, COMBINATION, EPOCHS, SCREEN, SCREEN_SEED,
                                           STUDY_SIDE, capacity_experiments, chosen_combination, screen_name,
                                           screen_scores, screen_winner)
from writeup.studies.part3 import band, kept_val_balanced, metric
from writeup.studies.plan import SEEDS, _slug
from writeup.studies.records import Trained
from writeup.studies.uncertainty import figure_on_test
from writeup.studies.verdicts import compare

BALANCED_GOAL = 0.90  # test accuracy of the balanced set's model (the test set is balanced: it is balanced accuracy)
REMEDY_GOAL = {"test_macro_f1": 0.85, "test_recall_cat": 0.70, "test_recall_dog": 0.70}
LABEL = {"test_accuracy": "test accuracy", "test_macro_f1": "macro F1", "test_recall_cat": "cat recall",
         "test_recall_dog": "dog recall"}
RECIPE, STUDYS = "chosen", "study's"
Runs = dict[int, Trained]  # seed -> the run


def _run(records: dict, name: str) -> Trained | None:
    models = records.get(name, {})
    return next(iter(models.values()), None)


def arm_runs(records: dict, arm: str, recipe: str) -> Runs:
    """Seed -> the finished run of an arm under the chosen recipe or the study's."""
    prefix = "capacity-study-" if recipe == STUDYS else "capacity-"
    return {s: r for s in SEEDS if (r := _run(records, f"{prefix}{_slug(arm)}-seed{s}"))}


def capacity_section(records: dict) -> list[str]:
    planned = capacity_experiments()
    ran = [e.name for e in planned if records.get(e.name)]
    out = ["## Capacity: the study's CNN trained to its capacity", "",
           f"The same CNN (552,874 parameters), with a training recipe of its own. A screen of {len(SCREEN)} recipes "
           f"on seed {SCREEN_SEED}, all 50,000 training images, {EPOCHS} epochs, training stages only (no test image "
           "is scored), chosen on the kept weights' validation balanced accuracy with validation from original "
           f"images; every recipe shares `{' '.join('-S ' + o for o in CAPACITY_PROTOCOL)}`. Then seeds "
           f"{', '.join(map(str, SEEDS))} under the chosen recipe: the balanced set, and the imbalanced set with no "
           "remedy, the study's offline augmentation, logit adjustment and the best combination of the remedies "
           "part's remedies on validation; beside them no remedy and offline augmentation under the study's recipe, "
           "run again on the same code. Goals: test accuracy >= 0.90 on the balanced set (1,000 test images of "
           "every class: its accuracy is its balanced accuracy), and a remedy at macro F1 >= 0.85 with cat and "
           "dog recall >= 0.70 (means over the seeds).", ""]
    if not ran:
        out += [f"**Planned, waiting**: none of the {len(planned)} runs has finished. They wait for a CPU with "
                "bfloat16 units (Intel AMX), where each takes at most 60 minutes: `python -m scripts.studies run "
                "--only capacity`.", ""]
    else:
        out += [f"{len(ran)} of {len(planned)} planned runs have finished.", ""]
    return out + screen_lines(records) + confirmation_lines(records) + goal_lines(records) + [""]


def screen_lines(records: dict) -> list[str]:
    scores, winner = screen_scores(records), screen_winner(records)
    order = sorted(SCREEN, key=lambda c: (c not in scores, -(scores.get(c) or 0.0)))
    out = [f"### The screen (seed {SCREEN_SEED}, {EPOCHS} epochs)", "",
           "| recipe | its overrides (of `train`) | val balanced accuracy | epochs (best) | precision | training min | images/s | "
           "CPU |", "| --- | --- | ---: | ---: | --- | ---: | ---: | --- |"]
    for config in order:
        run, sets = _run(records, screen_name(config)), " ".join(f"`{o.removeprefix('train.')}`" for o in SCREEN[config])
        name = f"**{config}**" if config == winner else config
        if run is None:
            out.append(f"| {name} | {sets} | waits | | | | | |")
            continue
        m, score = run.metrics, scores[config]
        out.append(f"| {name} | {sets} | {'–' if score is None else f'{score:.4f}'} | {m['epochs_run']:.0f} "
                   f"({m['best_epoch']:.0f}) | {run.precision} | {m['train_seconds'] / 60:.1f} | "
                   f"{m['train_images_per_s']:.0f} | {run.cpu} |")
    out.append("")
    if winner is None:
        out.append(f"{len(scores)} of {len(SCREEN)} recipes have finished: the confirmation waits for the rest.")
    else:
        out.append(f"Chosen on validation: **{winner}** ({scores[winner]:.4f}), the recipe of every run below.")
    return out + [""]


def confirmation_lines(records: dict) -> list[str]:
    winner, chosen = screen_winner(records), chosen_combination(records)
    combination = f"{COMBINATION} ({chosen[0]}, with logit adjustment)" if chosen else COMBINATION
    out = [f"### Over seeds {', '.join(map(str, SEEDS))}", "",
           "Each cell: mean (min to max) over the seeds that have finished. " + (
               f"The combination is the remedies part's first on validation among its other remedies: {chosen[0]}."
               if chosen else "The combination waits for the remedies part's ranking on validation."), "",
           "| arm | recipe | seeds | val balanced accuracy | " + " | ".join(LABEL.values()) + " |",
           "| --- | --- | ---: |" + " ---: |" * (len(LABEL) + 1)]
    rows = [(arm, RECIPE) for arm in [*ARMS, COMBINATION]] + [(arm, STUDYS) for arm in STUDY_SIDE]
    for arm, recipe in rows:
        runs = arm_runs(records, arm, recipe)
        label = combination if arm == COMBINATION else arm
        cells = [band([v for r in runs.values() if (v := kept_val_balanced(r)) is not None])]
        cells += [band([r.metrics[k] for r in runs.values() if k in r.metrics]) for k in LABEL]
        out.append(f"| {label} | {(winner or 'waits') if recipe == RECIPE else STUDYS} | {len(runs)} | "
                   + " | ".join(cells) + " |")
    out += ["", "The chosen recipe minus the study's, seed by seed, judged by the page's rule (a pair must share CPU "
            "model, training code and training set):", ""]
    for arm in STUDY_SIDE:
        ours, theirs = arm_runs(records, arm, RECIPE), arm_runs(records, arm, STUDYS)
        pairs = {s: (ours[s], theirs[s]) for s in ours if s in theirs}
        if not pairs:
            out.append(f"- {arm}: no seed has both runs yet.")
            continue
        found = [(label, compare(pairs, figure_on_test(label, key))) for key, label in LABEL.items()]
        out.append(f"- {arm}: " + "; ".join(f"{label} {c.cell()}" for label, c in found) + ".")
    return out + stale_lines(records, winner)


def stale_lines(records: dict, winner: str | None) -> list[str]:
    """Confirmation runs that ran under another recipe than the current choice (their tag says which)."""
    stale = [f"`{e.name}` ({r.tags.get('capacity_recipe', '?')})" for e in capacity_experiments() if e.waits_for
             and (r := _run(records, e.name)) and r.tags.get("capacity_recipe") != winner]
    return ["", "Ran under another recipe than the chosen one, so not its runs: " + ", ".join(stale) + "."] if stale else []


def goal_lines(records: dict) -> list[str]:
    out = ["", "### Against the goals", ""]
    balanced = arm_runs(records, "balanced", RECIPE)
    if balanced:
        accuracy = statistics.mean(r.metrics["test_accuracy"] for r in balanced.values())
        out.append(f"- The balanced set under the chosen recipe: test accuracy {accuracy:.3f} ({len(balanced)} of "
                   f"{len(SEEDS)} seeds): " + ("goal (>= 0.90) reached." if accuracy >= BALANCED_GOAL else
                                               f"{BALANCED_GOAL - accuracy:.3f} short of 0.90."))
    for arm in [a for a in ARMS if a != "balanced"] + [COMBINATION]:
        runs = arm_runs(records, arm, RECIPE)
        if not runs:
            continue
        means = {k: statistics.mean(r.metrics[k] for r in runs.values()) for k in REMEDY_GOAL}
        short = [f"{LABEL[k]} {REMEDY_GOAL[k] - v:.3f} short" for k, v in means.items() if v < REMEDY_GOAL[k]]
        out.append(f"- {arm} under the chosen recipe: " + ", ".join(f"{LABEL[k]} {v:.3f}" for k, v in means.items())
                   + f" ({len(runs)} of {len(SEEDS)} seeds): " + ("goal reached." if not short else "; ".join(short) + "."))
    return out if len(out) > 3 else out + ["Nothing to set against them yet: the confirmation has not run."]
