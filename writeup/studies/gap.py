"""Part 3 of STUDIES.md, the gap to the study, as one table: each figure, the study's, ours over the default
seeds with its interval, whether ours is below the study's, and each setup's paired shift against the
defaults with the verdict of the one rule (writeup.studies.verdicts); bfloat16 is set against its float32
partners alone, the pairs that differ in nothing but the precision.

A setup is proposed as a default only on validation (the kept weights' val balanced accuracy); test figures
are shown beside it and never used to choose.
"""
from __future__ import annotations

import statistics

from cifar10.reporting.reference import STUDY
from writeup.studies.pairing import identical, pairs
from writeup.studies.part3 import (
    FIGURES,
    KEPT_VAL_BALANCED,
    MODELS,
    Setups,
    band,
    compared_figures,
    kept_val_balanced,
)
from writeup.studies.plan import MIXED, OWN_VALIDATION, PARTNER, RERUN, SEEDS, SITTING_TAG
from writeup.studies.records import Trained
from writeup.studies.stopping import stop_lines
from writeup.studies.uncertainty import Figure, mean_with
from writeup.studies.verdicts import BETTER, NO_VERDICT, UNDECIDED, WORSE, Comparison, against_reference, \
    compare, cpu_kind

UNMEASURED = ("Not measurable here, so still open: the local images are a JPEG re-encoding of CIFAR-10 (the study "
              "trained on the original pixels); the study's dropout rates are not published (ours are the "
              "params' defaults); and whether its early stopping watched the test set, which ours never does.")
WAITS = "waits for runs on a CPU with bfloat16 units"
AGAINST_STUDY = {BETTER: "above", WORSE: "below", UNDECIDED: "not distinguishable", NO_VERDICT: "no verdict"}


def columns(setups: Setups) -> list[str]:
    """The setups the table sets against the defaults, in the page's order (bfloat16 last)."""
    return [k for k in setups if k not in ("defaults", PARTNER, MIXED)] + ([MIXED] if MIXED in setups else [])


def setup_comparison(setup: str, setups: Setups, model: str, figure: Figure) -> Comparison | None:
    """The setup minus what it is set against (the defaults, or bfloat16's float32 partner), seed by seed."""
    found = pairs(setup, setups, model)
    return compare(found, figure) if found else None


def bf16_waits(comparison: Comparison) -> bool:
    """bfloat16's verdict rests on like-for-like pairs with its float32 partners, one per seed: until every seed
    has one, it waits."""
    return len(comparison.judged) < len(SEEDS)


def against_study(setups: Setups, model: str, label: str) -> Comparison | None:
    """Our default seeds' figure minus the study's, judged by the rule with our runs' intervals."""
    key, study = next((k, s) for lbl, k, s in FIGURES if lbl == label)
    runs = {s: r[model] for s, r in setups["defaults"].items() if model in r}
    figure = next(f for f in compared_figures() if f.label == label)
    return against_reference(runs, study(STUDY[model]), figure) if runs else None


def _cell(setup: str, setups: Setups, model: str, figure: Figure) -> str:
    if setup in OWN_VALIDATION and figure is KEPT_VAL_BALANCED:
        return "– (validates on other rows)"
    found = setup_comparison(setup, setups, model, figure)
    if found is None:
        return "–"
    if setup == MIXED and bf16_waits(found):
        return f"{found.shift()} ({len(found.judged)} of {len(SEEDS)} like-for-like pairs): {WAITS}"
    return found.cell()


def gap_table(setups: Setups) -> list[str]:
    """One row per model and figure: the study's, ours, ours against the study, each setup's paired shift."""
    names = columns(setups)
    head = ["model", "figure", "study", f"ours: defaults, {len(SEEDS)} seeds", "ours against the study",
            *(f"{n} minus its float32 partner" if n == MIXED else f"{n} minus the defaults" for n in names)]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for model in MODELS:
        defaults = [r[model] for r in setups["defaults"].values() if model in r]
        if not defaults:
            continue
        for figure in compared_figures():
            study = next((s(STUDY[model]) for label, _, s in FIGURES if label == figure.label), None)
            judged = against_study(setups, model, figure.label) if study is not None else None
            why = judged.why() if judged else ""
            verdict = (f"{judged.shift()}: {AGAINST_STUDY[judged.verdict]}" + (f" ({why})" if why else "")
                       if judged else "–")
            out.append(f"| {model} | {figure.label} | {'–' if study is None else f'{study:.2f}'} | "
                       f"{mean_with(defaults, figure)} | {verdict} | "
                       + " | ".join(_cell(n, setups, model, figure) for n in names) + " |")
    return out


def details(setups: Setups) -> list[str]:
    """Every pair behind the table: its runs, what differs besides the setup, each figure's difference."""
    figures = compared_figures()
    rows = []
    for setup in columns(setups):
        for model in MODELS:
            for seed, (a, b) in pairs(setup, setups, model).items():
                found = [compare({seed: (a, b)}, f) for f in figures
                         if not (setup in OWN_VALIDATION and f is KEPT_VAL_BALANCED)]
                besides = "; ".join(found[0].mixed.get(seed, [])) or "nothing"
                rows.append(f"| {setup} | {model} | {seed} | `{a.experiment}` − `{b.experiment}` | {besides} | "
                            + " | ".join(f"{c.diffs[seed]:+.3f}" if seed in c.diffs else "–" for c in found)
                            + " | –" * (len(figures) - len(found)) + " |")
    if not rows:
        return []
    head = ["compared", "model", "seed", "runs", "besides the setup", *(f.label for f in figures)]
    return ["<details><summary>Each pair behind the table: its runs, what else differs, each figure's "
            "difference</summary>", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head), *rows, "",
            "</details>", ""]


def proposal_line(setups: Setups) -> str:
    """Which setup the rule proposes as a default: better on the kept weights' val balanced accuracy."""
    better = [f"{setup} for the {model}" for setup in columns(setups) if setup not in (RERUN, MIXED, *OWN_VALIDATION)
              for model in MODELS if (c := setup_comparison(setup, setups, model, KEPT_VAL_BALANCED))
              and c.verdict == BETTER and len(c.judged) == len(SEEDS)]
    if better:
        return ("Proposed as a default (better on the kept weights' val balanced accuracy, like for like on every "
                f"seed; chosen on validation only): {', '.join(better)}.")
    return ("No setup is proposed as a default: none is better on the kept weights' val balanced accuracy by the rule, "
            "like for like on every seed.")


def rerun_line(setups: Setups) -> str:
    """What the defaults' rerun showed: a run that repeats exactly on another CPU model and commit, or not."""
    found = []
    for model in MODELS:
        for seed, (again, first) in pairs(RERUN, setups, model).items():
            how = "repeated exactly" if identical(again, first) else "did not repeat"
            found.append(f"the {model} of seed {seed} {how} ({cpu_kind(again)} at {again.commit[:7]}, "
                         f"{cpu_kind(first)} at {first.commit[:7]}"
                         + ("" if again.training_data == first.training_data else
                            f"; training sets {again.training_data} / {first.training_data}") + ")")
    return ("The defaults' rerun: " + "; ".join(found) + ".") if found else ""


def speed_line(setups: Setups) -> str:
    """bfloat16's images/s over its float32 partner's, pairs trained in one sitting on one CPU (two sittings on one
    CPU can differ by a third, and a run restored from a backup was timed in another sitting)."""
    def sitting(run: Trained) -> str | None:
        return None if run.restored else run.tags.get(SITTING_TAG)

    ratios, cpus = [], set()
    for model in MODELS:
        for bf16, f32 in pairs(MIXED, setups, model).values():
            if bf16.cpu == f32.cpu and sitting(bf16) and sitting(bf16) == sitting(f32):
                ratios.append(bf16.metrics["train_images_per_s"] / f32.metrics["train_images_per_s"])
                cpus.add(cpu_kind(bf16))
    if not ratios:
        return ""
    spread = f" ({min(ratios):.2f}x to {max(ratios):.2f}x)" if len(ratios) > 1 else ""
    return (f"Speed: bfloat16 trains at {statistics.mean(ratios):.2f}x{spread} float32's images/s ({len(ratios)} "
            f"pair(s) of one sitting on one CPU, {', '.join(sorted(cpus))}).")


def _overstatement(runs: dict[int, dict[str, Trained]], model: str) -> list[float]:
    """Per seed: the kept weights' val balanced accuracy minus test accuracy (seeds that logged the curve)."""
    pairs_ = [(kept_val_balanced(r[model]), r[model].metrics["test_accuracy"]) for r in runs.values() if model in r]
    return [v - t for v, t in pairs_ if v is not None]


def validation_line(defaults: dict[int, dict[str, Trained]]) -> str:
    """How far the kept weights' val balanced accuracy (what proposes a setup) is from test accuracy, per model."""
    diffs = {model: found for model in MODELS if (found := _overstatement(defaults, model))}
    if not diffs:
        return ""
    line = ("Validation against test (the defaults' kept weights, val balanced accuracy minus test accuracy): "
            + "; ".join(f"{m} {band(d, '+')} ({len(d)} seed(s))" for m, d in diffs.items()) + ".")
    if len(diffs) == 2 and statistics.mean(diffs["augmented"]) > statistics.mean(diffs["baseline"]):
        line += (" The augmented model's validation split holds synthetic variants of images it trains on, so its "
                 "validation figures overstate its test figures more.")
    return line


def gap_lines(setups: Setups) -> list[str]:
    """The gap section: the table, the pairs behind it, what the rule proposes, and the notes."""
    if not any(setups["defaults"].values()):
        return []
    notes = [proposal_line(setups), rerun_line(setups), speed_line(setups), validation_line(setups["defaults"]),
             *stop_lines(setups), UNMEASURED]
    return ["### The gap, and what moves it", "",
            "Each setup minus the defaults (bfloat16 minus its float32 partner), seed by seed: the mean (min to max) "
            "over the pairs, then the rule's verdict.", "", *gap_table(setups), "", *details(setups),
            *(line for note in notes if note for line in (note, ""))]
