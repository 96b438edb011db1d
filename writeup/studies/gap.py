"""Part 3 of STUDIES.md, the gap to the study: what each setup moves, how well validation predicts the
test set, and what explains the gap, read off the seed bands: the study's figure inside the defaults'
band (seed noise), inside a candidate setup's band, or inside neither.

A setup is compared with the defaults seed by seed (same seed, so the same split and initial weights),
which keeps seed noise out of the shift it causes; writeup.studies.pairing picks the pairs.
"""
from __future__ import annotations

import statistics

from cifar10.reporting.reference import STUDY
from writeup.studies.pairing import apart_line, cpu_note, cpu_shift, crossed, paired, partners, rerun_lines
from writeup.studies.part3 import (
    FIGURES,
    MODELS,
    Setups,
    band,
    kept_val_accuracy,
    kept_val_balanced,
    metric,
    values_of,
)
from writeup.studies.plan import MIXED, OWN_VALIDATION, PARTNER, RERUN, SEEDS, SITTING_TAG
from writeup.studies.records import Trained
from writeup.studies.stopping import stop_lines

UNMEASURED = ("Not measurable here, so still open: the local images are a JPEG re-encoding of CIFAR-10 (the study "
              "trained on the original pixels); the study's dropout rates are not published (ours are the "
              "params' defaults); and whether its early stopping watched the test set, which ours never does.")


def gap_lines(setups: Setups) -> list[str]:
    """The gap to the study over the default seeds, then each setup's paired shift and the gap left after it."""
    out = ["### The gap, and what moves it", ""]
    defaults = setups["defaults"]
    for model in MODELS:
        ours = {label: values_of(defaults, model, metric(key)) for label, key, _ in FIGURES}
        if not ours["accuracy"]:
            continue
        parts = [f"{label} {study(STUDY[model]) - statistics.mean(ours[label]):+.3f}" + (
                 f" (study {'inside' if _explains(study(STUDY[model]), ours[label]) else 'outside'}"
                 " our band)" if len(ours[label]) > 1 else "") for label, _, study in FIGURES]
        out.append(f"- **{model}**, the study minus our mean over {len(ours['accuracy'])} default seed(s): "
                   + "; ".join(parts) + ".")
        out += rerun_lines(setups, model)
        for setup in setups:
            if setup not in ("defaults", RERUN, PARTNER):
                out += _setup_line(setup, setups, model, ours)
    return out + validation_lines(setups["defaults"]) + stop_lines(setups) + explained_lines(setups) + ["", UNMEASURED, ""]


def _speed(bf16: dict[int, dict[str, Trained]], setups: Setups, model: str) -> str:
    """bfloat16's images/s over that of every float32 run of the model trained in the same sitting of the
    runner on the same CPU, whatever its setup and seed (a rate: neither the epochs nor the seed change it).
    The same training measured in two sittings can differ by a third here, so pairs never cross sittings,
    and a run restored from a backup (trained in another sitting) pairs with nothing."""
    def trained_here(run: Trained) -> str | None:
        return None if run.restored else run.tags.get(SITTING_TAG)

    ratios, cpus = [], set()
    for run in (models[model] for models in bf16.values() if model in models):
        peers = [r[model] for setup, runs in setups.items() if setup != MIXED for r in runs.values()
                 if model in r and r[model].cpu == run.cpu and trained_here(r[model])
                 and trained_here(r[model]) == trained_here(run)]
        ratios += [run.metrics["train_images_per_s"] / p.metrics["train_images_per_s"] for p in peers]
        cpus |= {run.cpu} if peers else set()
    if not ratios:
        return "Speed: no float32 run trained in the same sitting on the same CPU to set it against"
    spread = f" ({min(ratios):.2f}x to {max(ratios):.2f}x)" if len(ratios) > 1 else ""
    return (f"Speed: {statistics.mean(ratios):.2f}x{spread} the images/s of float32 runs trained in the same "
            f"sitting on the same CPU ({len(ratios)} pair(s), {'; '.join(sorted(cpus))})")


def _overstatement(runs: dict[int, dict[str, Trained]], model: str) -> list[float]:
    """Per seed: the kept weights' val balanced accuracy minus test accuracy (seeds that logged the curve)."""
    pairs = [(kept_val_balanced(r[model]), r[model].metrics["test_accuracy"]) for r in runs.values() if model in r]
    return [v - t for v, t in pairs if v is not None]


def validation_lines(defaults: dict[int, dict[str, Trained]]) -> list[str]:
    """How far the kept weights' val balanced accuracy (the setups' judge) is from test accuracy, per model;
    why, when the augmented model's validation overstates more than the baseline's."""
    diffs = {model: found for model in MODELS if (found := _overstatement(defaults, model))}
    if not diffs:
        return []
    line = ("- **How well validation predicts the test set** (the defaults' kept weights, val balanced accuracy minus "
            "test accuracy): " + "; ".join(f"{m} {band(d, '+')} ({len(d)} seed(s))" for m, d in diffs.items()) + ".")
    if len(diffs) == 2 and statistics.mean(diffs["augmented"]) > statistics.mean(diffs["baseline"]):
        line += (" The augmented model's validation split is drawn from the rebalanced set, so most of its validation "
                 "cats and dogs are synthetic variants of the same originals its training part holds: its validation "
                 "figures overstate its test figures more, and early stopping on them sees little of the cat and dog "
                 "errors the test set finds.")
    return [line]


def _explains(study: float, values: list[float]) -> bool:
    return len(values) > 1 and min(values) <= study <= max(values)


def _reaching(target: float, ours: list[float], runs: dict[int, Trained], key: str) -> str:
    """Which of a setup's runs land on the study's side of the defaults' band, with where each stopped."""
    above = target > max(ours)
    seeds = [s for s, r in sorted(runs.items()) if (r.metrics[key] >= target if above else r.metrics[key] <= target)]
    epochs = ", ".join(str(int(runs[s].metrics["best_epoch"])) for s in seeds)
    if len(seeds) == 1:
        return f"run of seed {seeds[0]} (best epoch {epochs}) reaches it"
    return f"runs of seeds {', '.join(map(str, seeds))} (best epochs {epochs}) reach it"


def _explanation(target: float, ours: list[float], bands: dict[str, dict[int, Trained]], key: str) -> str:
    """What explains one figure's gap: seed noise, a candidate setup's runs, or nothing measured (closest named)."""
    if _explains(target, ours):
        return f"seed noise (the study's {target:.2f} is inside the defaults' band)"
    values = {k: [r.metrics[key] for r in runs.values()] for k, runs in bands.items()}
    if inside := [k for k, v in values.items() if _explains(target, v)]:
        return (" or ".join(f"{k}'s {_reaching(target, ours, bands[k], key)}" for k in inside)
                + f" (the study's {target:.2f} is inside that setup's band, not the defaults')")
    if not bands:
        return "unexplained by seed noise (no candidate setup has run every seed yet)"
    closest = min(values, key=lambda k: abs(target - statistics.mean(values[k])))
    return (f"unexplained by seed noise and by {len(bands)} setup(s) (closest: {closest}, the study minus its mean "
            f"{target - statistics.mean(values[closest]):+.3f})")


def explained_lines(setups: Setups) -> list[str]:
    """Per model and test figure, what the measured runs say about the gap: the study's figure inside the
    defaults' seed band (seed noise can explain it), inside the band of a candidate setup that ran every
    seed (its runs that reach it are named, with where they stopped), or inside neither (unexplained by
    what was measured; the closest setup mean is named)."""
    candidates = {k: v for k, v in setups.items() if k not in ("defaults", MIXED, RERUN, PARTNER)}
    out = []
    for model in MODELS:
        # Like with like: the defaults' band spans every seed, so a setup's counts once it does too.
        bands = {k: v for k, runs in candidates.items()
                 if len(v := {s: r[model] for s, r in runs.items() if model in r}) == len(SEEDS)}
        found = []
        for label, key, study in FIGURES:
            ours = values_of(setups["defaults"], model, metric(key))
            if len(ours) > 1:
                found.append((label, _explanation(study(STUDY[model]), ours, bands, key)))
        if len({why for _, why in found}) == 1 and len(found) == len(FIGURES):  # one answer for all: say it once
            out.append(f"- **What explains the {model} gap**, every figure: {found[0][1]}.")
        elif found:
            out.append(f"- **What explains the {model} gap**, figure by figure: "
                       + "; ".join(f"{label}: {why}" for label, why in found) + ".")
    return out


def _verdict(balanced: list[float], across: bool, moved: float | None) -> str:
    """A setup raising val balanced accuracy on every seed is proposed, unless a pair across CPUs leaves the
    rise inside what the CPU alone moves (or that is not measured)."""
    if min(balanced) <= 0:
        return " Does not raise val balanced accuracy on every seed: the defaults stay."
    if across and moved is None:
        return (" Raises val balanced accuracy on every seed, but some pairs cross CPUs and what the CPU alone "
                "moves is not measured: no verdict yet.")
    if across and min(balanced) <= moved:
        return (f" Raises val balanced accuracy on every seed, but its smallest rise ({min(balanced):+.3f}) is not "
                f"above what the CPU alone moved ({moved:.3f}) and some pairs cross CPUs: no verdict until they "
                "pair on one CPU.")
    return " Raises val balanced accuracy on every seed: proposed as the default (chosen on validation only)."


def _parity(runs: dict, model: str, ours: dict[str, list[float]]) -> str:
    """Where bfloat16's mean lands against the float32 seed band: below it on test accuracy or macro F1 is
    a loss, and `precision: auto` must then pick float32 for the CNN; above it costs nothing."""
    mean = {label: statistics.mean(values_of(runs, model, metric(key))) for label, key, _ in FIGURES}
    below = [label for label in mean if mean[label] < min(ours[label])]
    above = [label for label in mean if mean[label] > max(ours[label])]
    if not below and not above:
        return " Inside the float32 seed band on all four test figures."
    text = "".join(f" {side} the float32 seed band on {', '.join(labels)}." for side, labels in
                   (("Below", below), ("Above", above)) if labels)
    lost = [label for label in below if label in ("accuracy", "macro F1")]
    return text + (f" A loss on {' and '.join(lost)}: `precision: auto` must pick float32 for the CNN."
                   if lost else " No loss on test accuracy or macro F1: `precision: auto` keeps bfloat16.")


def _setup_line(setup: str, setups: Setups, model: str, ours: dict[str, list[float]]) -> list[str]:
    runs, defaults = setups[setup], partners(setup, setups, model)
    seeds = paired(runs, defaults, model, metric("test_accuracy"))[0]
    apart = apart_line(runs, defaults, model)
    if not seeds:
        return [f"  - {setup}: no run on the same training set as the defaults' yet.{apart}"] if apart else []
    shifts = [f"{label} {band(paired(runs, defaults, model, metric(key))[1], '+')}"
              for label, key, _ in FIGURES]
    left = STUDY[model]["accuracy"] - statistics.mean(values_of(runs, model, metric("test_accuracy")))
    head = f"  - {setup} minus the defaults, seed by seed ({', '.join(map(str, seeds))}): "
    test = f"test {'; '.join(shifts)}. The study's accuracy is {left:+.3f} from this setup's mean."
    moved = cpu_shift(setups, model)
    note = cpu_note(runs, defaults, model, seeds, moved)
    if setup in OWN_VALIDATION:
        return [head + test + " Not judged on validation: it validates on other rows than the defaults (theirs hold "
                f"variants of images they trained on). Kept weights' val balanced accuracy minus test accuracy: "
                f"{band(_overstatement(runs, model), '+')}; the defaults': "
                # The defaults' own runs, not their same-CPU partners: the figure the validation line gives.
                f"{band(_overstatement(setups['defaults'], model), '+')}."
                + note + apart]
    judged, balanced = paired(runs, defaults, model, kept_val_balanced)
    line = (head + f"kept weights' val balanced accuracy {band(balanced, '+')} (seeds with it: "
            f"{', '.join(map(str, judged)) or 'none'}), val accuracy "
            f"{band(paired(runs, defaults, model, kept_val_accuracy)[1], '+')}; " + test)
    if setup == MIXED:
        line += _parity(runs, model, ours) + f" {_speed(runs, setups, model)}."
    elif len(judged) == len(SEEDS):
        line += _verdict(balanced, bool(crossed(runs, defaults, model, judged)), moved)
    elif balanced and min(balanced) <= 0:
        # Proposing needs a rise on every seed, so one seed without it settles the verdict early.
        flat = [str(seed) for seed, shift in zip(judged, balanced) if shift <= 0]
        line += (f" Does not raise val balanced accuracy on seed{'s' * (len(flat) > 1)} {', '.join(flat)}: the "
                 f"defaults stay, whatever its other seeds show ({len(judged)} of {len(SEEDS)} judged).")
    else:
        line += f" {len(judged)} of {len(SEEDS)} seeds judged so far: no verdict yet."
    return [line + note + apart]
