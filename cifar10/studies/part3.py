"""Part 3 of STUDIES.md: the imbalance models over seeds, the gap to the study and what each setup moves.

A setup is compared with the defaults seed by seed (same seed, so the same split and initial weights),
which keeps seed noise out of the shift it causes. Setups are judged on validation figures only: the
val balanced accuracy (mean per-class recall) of the weights a run keeps (its best epoch when early
stopping restores them, its last epoch otherwise), the validation estimate of accuracy on the
balanced test set; plain val accuracy follows the imbalanced split and is shown beside it. Test
figures are reported and never used to choose. What explains the gap is read off the bands: the study's
figure inside the defaults' seed band (seed noise), inside a candidate setup's band, or inside neither.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable

from cifar10.reporting.reference import STUDY
from cifar10.studies.plan import SEEDS, SETUPS
from cifar10.studies.records import Trained

MODELS = ("baseline", "augmented")
# (label, metric logged on the training run, the study's figure from its published report)
FIGURES: tuple[tuple[str, str, Callable[[dict], float]], ...] = (
    ("accuracy", "test_accuracy", lambda s: s["accuracy"]),
    ("macro F1", "test_macro_f1", lambda s: s["macro"]["f1"]),
    ("cat recall", "test_recall_cat", lambda s: s["per_class"]["cat"]["recall"]),
    ("dog recall", "test_recall_dog", lambda s: s["per_class"]["dog"]["recall"]),
)
UNMEASURED = ("Not measurable here, so still open: the local images are a JPEG re-encoding of CIFAR-10 (the study "
              "trained on the original pixels); the study's dropout rates are not published (ours are the "
              "params' defaults); and whether its early stopping watched the test set, which ours never does.")
Setups = dict[str, dict[int, dict[str, Trained]]]  # setup -> seed -> model -> run


def metric(key: str) -> Callable[[Trained], float]:
    """A getter of one logged summary metric of a run."""
    return lambda r: r.metrics[key]


def kept(key: str) -> Callable[[Trained], float | None]:
    """The curve `key` at the epoch whose weights the run ended with (early stopping's best epoch if it
    restored them, else the last); None for a run that did not log that curve."""
    def value(r: Trained) -> float | None:
        curve = r.curves.get(key) or []
        restored = r.params.get("train.early_stopping.restore_best_weights", "True").lower() == "true"
        epoch = int(r.metrics["best_epoch"]) if restored else len(curve)
        return curve[epoch - 1] if curve and len(curve) >= epoch else None
    return value


kept_val_accuracy = kept("val_accuracy")
kept_val_balanced = kept("val_balanced_accuracy")


def setups_of(records: dict[str, dict[str, Trained]]) -> Setups:
    """Every part-3 setup's finished runs by seed; bfloat16 parity is a setup of one seed."""
    out: Setups = {setup: {s: records[f"part3-{setup}-seed{s}"] for s in SEEDS if records.get(f"part3-{setup}-seed{s}")}
                   for setup in SETUPS}
    out["mixed_bfloat16"] = {42: records["bf16-seed42"]} if records.get("bf16-seed42") else {}
    return out


def _band(values: list[float], sign: str = "") -> str:
    """`mean (min to max)`; one value alone has no band."""
    if len(values) < 2:
        return f"{values[0]:{sign}.3f}" if values else "–"
    return f"{statistics.mean(values):{sign}.3f} ({min(values):{sign}.3f} to {max(values):{sign}.3f})"


def _values(runs: dict[int, dict[str, Trained]], model: str, value: Callable[[Trained], float | None]) -> list[float]:
    return [v for r in runs.values() if model in r and (v := value(r[model])) is not None]


def band_tables(setups: Setups) -> list[str]:
    """Per model: mean (min to max) (n) of each figure under each setup, beside the study's figure."""
    out = []
    for model in MODELS:
        header = ["figure", "study", *(f"{k} (n)" for k in setups)]
        out += [f"### {model}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for label, key, study in FIGURES:
            cells = [f"{_band(v)} ({len(v)})" for v in (_values(runs, model, metric(key))
                                                        for runs in setups.values())]
            out.append(f"| {label} | {study(STUDY[model]):.2f} | " + " | ".join(cells) + " |")
        for label, value in (("val accuracy", kept_val_accuracy), ("val balanced accuracy", kept_val_balanced)):
            cells = [f"{_band(v)} ({len(v)})" for v in (_values(runs, model, value) for runs in setups.values())]
            out.append(f"| {label} of the kept weights | – | " + " | ".join(cells) + " |")
        out.append("")
    return out


def band_figure(setups: Setups, path: Path) -> None:
    """One panel per model and test figure: each seed's value under each setup, the study's as a line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5))
    axes = fig.subplots(len(MODELS), len(FIGURES), sharex=True)
    names = list(setups)
    for row, model in zip(axes, MODELS):
        for ax, (label, key, study) in zip(row, FIGURES):
            for x, runs in enumerate(setups.values()):
                for seed, r in runs.items():
                    if model in r:  # seeds side by side, so equal values stay visible
                        i = SEEDS.index(seed)
                        ax.plot(x + 0.12 * (i - 1), r[model].metrics[key], "o", color=f"C{i}", label=f"seed {seed}")
            ax.axhline(study(STUDY[model]), color="black", linestyle="--", linewidth=1, label="study")
            ax.set_title(f"{model}: {label}", fontsize=9)
            ax.set_xticks(range(len(names)), names, rotation=30, fontsize=7)
            ax.set_xlim(-0.5, len(names) - 0.5)
            ax.grid(alpha=0.3)
    handles: dict = {}  # one legend entry per seed and the study line, from whichever panels have them
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="upper right", fontsize=7)
    fig.suptitle("Part 3: test figures per seed and setup (dashed: the study)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)


def _paired(runs: dict[int, dict[str, Trained]], defaults: dict[int, dict[str, Trained]], model: str,
            value: Callable[[Trained], float | None]) -> tuple[list[int], list[float]]:
    """Seeds both have a value for, and the setup's value minus the defaults' on each."""
    pairs = [(s, value(runs[s][model]), value(defaults[s][model])) for s in runs
             if model in runs[s] and model in defaults.get(s, {})]
    pairs = [(s, a, b) for s, a, b in pairs if a is not None and b is not None]
    return [s for s, _, _ in pairs], [a - b for _, a, b in pairs]


def gap_lines(setups: Setups) -> list[str]:
    """The gap to the study over the default seeds, then each setup's paired shift and the gap left after it."""
    out = ["### The gap, and what moves it", ""]
    defaults = setups["defaults"]
    for model in MODELS:
        ours = {label: _values(defaults, model, metric(key)) for label, key, _ in FIGURES}
        if not ours["accuracy"]:
            continue
        parts = [f"{label} {study(STUDY[model]) - statistics.mean(ours[label]):+.3f}" + (
                 f" (study {'inside' if min(ours[label]) <= study(STUDY[model]) <= max(ours[label]) else 'outside'}"
                 " our band)" if len(ours[label]) > 1 else "") for label, _, study in FIGURES]
        out.append(f"- **{model}**, the study minus our mean over {len(ours['accuracy'])} default seed(s): "
                   + "; ".join(parts) + ".")
        for setup, runs in setups.items():
            if setup != "defaults":
                out += _setup_line(setup, runs, defaults, model, ours)
    return out + explained_lines(setups) + ["", UNMEASURED, ""]


def _explains(study: float, values: list[float]) -> bool:
    return len(values) > 1 and min(values) <= study <= max(values)


def explained_lines(setups: Setups) -> list[str]:
    """Per model and test figure, what the measured runs say about the gap: the study's figure inside the
    defaults' seed band (seed noise can explain it), inside a candidate setup's band (that setup can),
    or inside neither (unexplained by what was measured; the closest setup mean is named)."""
    candidates = {k: v for k, v in setups.items() if k not in ("defaults", "mixed_bfloat16")}
    out = []
    for model in MODELS:
        found = []
        for label, key, study in FIGURES:
            target, ours = study(STUDY[model]), _values(setups["defaults"], model, metric(key))
            if len(ours) < 2:
                continue
            if _explains(target, ours):
                found.append(f"{label}: seed noise (the study's {target:.2f} is inside the defaults' band)")
                continue
            bands = {k: v for k, runs in candidates.items() if len(v := _values(runs, model, metric(key))) > 1}
            inside = [k for k, v in bands.items() if _explains(target, v)]
            closest = min(bands, key=lambda k: abs(target - statistics.mean(bands[k])), default=None)
            found.append(f"{label}: " + (f"the setup {' or '.join(inside)} (the study's {target:.2f} is inside its "
                                         "band, not the defaults')" if inside else
                                         "unexplained by seed noise" + (f" and by {len(bands)} setup(s) (closest: {closest}, "
                                         f"the study minus its mean {target - statistics.mean(bands[closest]):+.3f})"
                                         if closest else "")))
        if found:
            out.append(f"- **What explains the {model} gap**, figure by figure: " + "; ".join(found) + ".")
    return ["", *out] if out else []


def _setup_line(setup: str, runs, defaults, model: str, ours: dict[str, list[float]]) -> list[str]:
    seeds = _paired(runs, defaults, model, metric("test_accuracy"))[0]
    if not seeds:
        return []
    judged, balanced = _paired(runs, defaults, model, kept_val_balanced)
    shifts = [f"{label} {_band(_paired(runs, defaults, model, metric(key))[1], '+')}"
              for label, key, _ in FIGURES]
    left = STUDY[model]["accuracy"] - statistics.mean(_values(runs, model, metric("test_accuracy")))
    line = (f"  - {setup} minus the defaults, seed by seed ({', '.join(map(str, seeds))}): kept weights' val "
            f"balanced accuracy {_band(balanced, '+')} (seeds with it: {', '.join(map(str, judged)) or 'none'}), "
            f"val accuracy {_band(_paired(runs, defaults, model, kept_val_accuracy)[1], '+')}; test "
            f"{'; '.join(shifts)}. The study's accuracy is {left:+.3f} from this setup's mean.")
    if setup == "mixed_bfloat16":
        outside = [label for label, key, _ in FIGURES if not min(ours[label]) <= statistics.mean(
            _values(runs, model, metric(key))) <= max(ours[label])]
        speed = [runs[s][model].metrics["train_images_per_s"] / defaults[s][model].metrics["train_images_per_s"]
                 for s in seeds]
        band = ("Inside the float32 seed band on all four test figures" if not outside
                else "Outside the float32 seed band on " + ", ".join(outside))
        line += f" {band}; {statistics.mean(speed):.2f}x the float32 images/s of the same seed."
    elif len(judged) == len(SEEDS):
        line += (" Raises val balanced accuracy on every seed: proposed as the default (chosen on validation only)."
                 if min(balanced) > 0 else " Does not raise val balanced accuracy on every seed: the defaults stay.")
    else:
        line += f" {len(judged)} of {len(SEEDS)} seeds judged so far: no verdict yet."
    return [line]
