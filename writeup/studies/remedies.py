"""STUDIES.md's section beyond the study: which remedy for the class imbalance works best, over seeds.

Every remedy trains the study's CNN under one protocol (writeup.studies.plan.REMEDY_PROTOCOL) and is
judged on validation balanced accuracy: the kept weights' (the adjusted model's, for logit adjustment).
Test figures are shown for every remedy, once each, and never used to choose.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from cifar10.training.backup_folders import ADOPTED_TAG
from cifar10.training.logit_adjustment import TAUS
from writeup.studies.part3 import band, kept_val_balanced
from writeup.studies.plan import BALANCED_REFERENCE, REMEDIES, REMEDY_PROTOCOL, SEEDS, experiments
from writeup.studies.records import Trained

GOAL = {"test_macro_f1": 0.85, "test_recall_cat": 0.65, "test_recall_dog": 0.65}  # for the best combination
LABEL = {"test_macro_f1": "macro F1", "test_recall_cat": "cat recall", "test_recall_dog": "dog recall"}
STUDY_REMEDY = {"test_macro_f1": 0.80, "test_recall_cat": 0.49, "test_recall_dog": 0.55}  # its offline augmentation
COLUMNS = (("test accuracy", "test_accuracy"), ("macro F1", "test_macro_f1"), ("cat recall", "test_recall_cat"),
           ("cat precision", "test_precision_cat"), ("dog recall", "test_recall_dog"),
           ("dog precision", "test_precision_dog"))


def remedy_runs(records: dict[str, dict[str, Trained]]) -> dict[str, dict[int, Trained]]:
    """remedy -> seed -> its finished run, for the remedies that have one."""
    out: dict[str, dict[int, Trained]] = {}
    for e in experiments():
        if e.part == "remedies" and records.get(e.name, {}).get(e.models[0]):
            out.setdefault(e.labels["setup"], {})[e.labels["seed"]] = records[e.name][e.models[0]]
    return out


def selected_on(run: Trained) -> float | None:
    """What a remedy is judged on: validation balanced accuracy of the model it ends with."""
    return run.metrics.get("val_balanced_accuracy_adjusted", kept_val_balanced(run))


def mean_selected_on(seeds: dict[int, Trained]) -> float:
    """A remedy's mean over seeds of what it is judged on (0 when no seed logged it)."""
    return statistics.mean([v for r in seeds.values() if (v := selected_on(r)) is not None] or [0.0])


def ranked(runs: dict[str, dict[int, Trained]]) -> list[str]:
    """The remedies, best first on mean validation balanced accuracy."""
    return sorted(runs, key=lambda name: -mean_selected_on(runs[name]))


def goal_means(seeds: dict[int, Trained]) -> dict[str, float]:
    """A remedy's mean over seeds of each figure the goal sets."""
    return {k: statistics.mean(r.metrics[k] for r in seeds.values()) for k in GOAL}


def goal_text(values: dict[str, float]) -> str:
    """The goal's figures of one model or mean, e.g. "macro F1 0.820, cat recall 0.691, dog recall 0.680"."""
    return ", ".join(f"{LABEL[k]} {values[k]:.3f}" for k in GOAL)


def balanced_reference(records: dict[str, dict[str, Trained]]) -> Trained | None:
    """The study's CNN trained with no imbalance to remedy (part 2's reference run), if it has finished."""
    return records.get(BALANCED_REFERENCE, {}).get("baseline")


def adjusted_remedies(runs: dict[str, dict[int, Trained]]) -> list[str]:
    """The remedies whose validation figure is the best of the tau grid on the split that ranks them."""
    return [name for name, seeds in runs.items() if any("logit_adjustment_tau" in r.metrics for r in seeds.values())]


def _cells(runs: dict[int, Trained], key, digits: int = 3) -> str:
    values = [v for r in runs.values() if (v := key(r)) is not None]
    return band(values, digits=digits)


def remedies_section(records: dict[str, dict[str, Trained]], figures: Path) -> list[str]:
    runs = remedy_runs(records)
    if not runs:
        return []
    out = ["## Beyond the study: remedies for the class imbalance", "",
           "The study's CNN on the same 41,000 images, each remedy over seeds " + ", ".join(map(str, SEEDS)) + ", all "
           f"under one protocol (`{' '.join('-S ' + o for o in REMEDY_PROTOCOL)}`): validation from original images "
           "only, early stopping and every choice on validation balanced accuracy. Each cell: mean (min to max) over "
           "the seeds that have run. Test figures are scored once per remedy and not used to choose.", ""]
    order = ranked(runs)
    out += ["| remedy | seeds | val balanced accuracy | " + " | ".join(c for c, _ in COLUMNS)
            + " | epochs (best) | training min | images/s | CPU |",
            "| --- | ---: |" + " ---: |" * (len(COLUMNS) + 4) + " --- |"]
    for name in order:
        seeds = runs[name]
        cpus = "; ".join(sorted({r.cpu for r in seeds.values()}))
        epochs = "; ".join(f"{r.metrics['epochs_run']:.0f} ({r.metrics['best_epoch']:.0f})" for r in seeds.values())
        out.append(f"| {name} | {len(seeds)} | {_cells(seeds, selected_on)} | "
                   + " | ".join(_cells(seeds, lambda r, k=k: r.metrics.get(k)) for _, k in COLUMNS)
                   + f" | {epochs} | {_cells(seeds, lambda r: r.metrics['train_seconds'] / 60, 1)} | "
                   f"{_cells(seeds, lambda r: r.metrics['train_images_per_s'], 0)} | {cpus} |")
    adjusted = adjusted_remedies(runs)
    out += ["", f"Ranked by validation balanced accuracy: **{order[0]}** first"
            + (" (chosen on validation alone)." if len(runs[order[0]]) == len(SEEDS) else
               f" so far ({len(runs[order[0]])} of {len(SEEDS)} seeds).")
            + (f" The figures of {' and '.join(adjusted)} are each seed's best of {len(TAUS)} tau values on the same "
               "validation split that ranks them, an edge the other remedies do not have: the test columns, scored "
               "once, are the check." if adjusted else "")]
    out += adopted_lines(runs)
    out += goal_lines(runs, balanced_reference(records))
    out += tau_lines(runs)
    out += curve_lines(runs)
    path = figures / "remedies.png"
    remedies_figure(runs, path)
    return out + ["", f"![remedies]({path.as_posix()})", ""]


def adopted_lines(runs: dict[str, dict[int, Trained]]) -> list[str]:
    """The remedies that restored another experiment's finished training instead of training again."""
    lines = []
    for name, seeds in runs.items():
        adopted = {s: r.tags[ADOPTED_TAG] for s, r in sorted(seeds.items()) if ADOPTED_TAG in r.tags}
        if adopted:
            lines.append(f"- {name}: seed(s) {', '.join(map(str, adopted))} restored the finished training of "
                         f"{', '.join(f'`{e}`' for e in adopted.values())} (the same params and data: it acts after "
                         "training), so epochs, training minutes and images/s there are that training's; its own cost "
                         "is the search on validation that follows.")
    return ["", "Trained once, used twice:", "", *lines] if lines else []


def goal_lines(runs: dict[str, dict[int, Trained]], reference: Trained | None = None) -> list[str]:
    """How far each remedy got towards the goal set for the best combination, and, for scale, what the same
    CNN reached with no imbalance at all (`reference`, part 2's run on every training image)."""
    lines = ["", "Against the goal for the best combination (macro F1 >= 0.85, cat and dog recall >= 0.65, mean over "
             "three seeds; the study's offline augmentation reached 0.80 / 0.49 / 0.55):", ""]
    for name, seeds in runs.items():
        means = goal_means(seeds)
        short = [f"{LABEL[k]} {GOAL[k] - v:.3f} short" for k, v in means.items() if v < GOAL[k]]
        lines.append(f"- {name}: {goal_text(means)}: " + ("goal reached" if not short else "; ".join(short))
                     + f" ({len(seeds)} seed(s)).")
    if reference is not None:
        above = [LABEL[k] for k in GOAL if reference.metrics[k] < GOAL[k]]
        lines += ["", f"For scale, the same CNN with no imbalance to remedy (`{BALANCED_REFERENCE}`: all 50,000 "
                  f"training images, seed {reference.seed}, part 2's protocol, one run): "
                  + goal_text(reference.metrics) + "."
                  + (f" The goal's {' and '.join(above)} is above what it reached with every cat and dog image "
                     "kept, so a remedy for the imbalance alone is unlikely to reach it on this CNN; the rest of the "
                     "goal is within that reach." if above else " Every figure of the goal is within that reach.")]
    return lines


def tau_lines(runs: dict[str, dict[int, Trained]]) -> list[str]:
    """The tau logit adjustment chose per seed, and what it moved on validation (the only split it saw)."""
    lines = []
    for name, seeds in runs.items():
        adjusted = {s: r.metrics for s, r in sorted(seeds.items()) if "logit_adjustment_tau" in r.metrics}
        if not adjusted:
            continue
        per_seed = ", ".join(f"{m['logit_adjustment_tau']:g} on seed {s}" for s, m in adjusted.items())
        before = statistics.mean(m["val_balanced_accuracy_unadjusted"] for m in adjusted.values())
        after = statistics.mean(m["val_balanced_accuracy_adjusted"] for m in adjusted.values())
        lines.append(f"- {name}: tau {per_seed}; validation balanced accuracy {before:.3f} -> {after:.3f} "
                     f"(mean over {len(adjusted)} seed(s)).")
    head = ["", f"Logit adjustment's tau, chosen on validation balanced accuracy among {TAUS[0]:g}, {TAUS[1]:g}, ..., "
            f"{TAUS[-1]:g} (0: no adjustment):", ""]
    return head + lines if lines else []


def _epoch_cap() -> int:
    return int(next(o.split("=")[1] for o in REMEDY_PROTOCOL if o.startswith("train.epochs=")))


def curve_lines(runs: dict[str, dict[int, Trained]], overfit: float = 0.10) -> list[str]:
    """What each remedy's curves say: whether early stopping ended it or the epoch cap did (still improving),
    and how far training accuracy ran above validation accuracy at the kept epoch (overfitting)."""
    cap = _epoch_cap()
    lines = ["", f"What the curves say (kept epoch = best validation balanced accuracy; cap {cap} epochs):", ""]
    capped, gapped = [], []
    for name, seeds in runs.items():
        at_cap = sum(r.metrics["epochs_run"] >= cap for r in seeds.values())
        gaps = [r.curves["accuracy"][b - 1] - r.curves["val_accuracy"][b - 1] for r in seeds.values()
                if (b := int(r.metrics["best_epoch"])) and len(r.curves.get("accuracy", [])) >= b
                and len(r.curves.get("val_accuracy", [])) >= b]
        altered = any(k in o for o in REMEDIES.get(name, ("", ()))[1] for k in ("mix.kind", "online_augmentation"))
        gap = (f"training accuracy {statistics.mean(gaps):+.3f} against validation at the kept epoch"
               + (" (training batches mixed or transformed: not like for like)" if altered else "")) if gaps else \
            "no training-accuracy curve"
        lines.append(f"- {name}: kept epoch {statistics.mean(r.metrics['best_epoch'] for r in seeds.values()):.0f} of "
                     f"{statistics.mean(r.metrics['epochs_run'] for r in seeds.values()):.0f} run; the cap ended "
                     f"{at_cap} of {len(seeds)} seed(s); {gap}.")
        capped += [name] if at_cap else []
        gapped += [name] if gaps and not altered and statistics.mean(gaps) > overfit else []
    lines += ["", ("Still improving when the cap ended them: " + ", ".join(capped) + "; a longer schedule is their next "
                   "step." if capped else "Early stopping ended every remedy before the cap: more epochs would not help.")
              + (" Training accuracy more than " + f"{overfit:.2f} above validation: " + ", ".join(gapped)
                 + "; they fit their training images far better than held-out ones, so more varied images or "
                 "stronger regularisation is what their curves point to." if gapped else "")]
    return lines


def remedies_figure(runs: dict[str, dict[int, Trained]], path: Path) -> None:
    """Macro F1 against cat and dog recall per remedy (mean, bars: min to max over seeds); dashed: the goal."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, cls in zip(axes, ("cat", "dog")):
        for i, (name, seeds) in enumerate(runs.items()):
            xs = [r.metrics[f"test_recall_{cls}"] for r in seeds.values()]
            ys = [r.metrics["test_macro_f1"] for r in seeds.values()]
            x, y = statistics.mean(xs), statistics.mean(ys)
            ax.errorbar(x, y, xerr=[[x - min(xs)], [max(xs) - x]], yerr=[[y - min(ys)], [max(ys) - y]], fmt="o",
                        color=f"C{i % 10}", label=name, capsize=2)
        ax.plot(STUDY_REMEDY[f"test_recall_{cls}"], STUDY_REMEDY["test_macro_f1"], "k*", label="study (offline)")
        ax.axvline(GOAL[f"test_recall_{cls}"], color="black", linestyle="--", linewidth=1)
        ax.axhline(GOAL["test_macro_f1"], color="black", linestyle="--", linewidth=1)
        ax.set_xlabel(f"{cls} recall (test)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("macro F1 (test)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7)
    fig.suptitle("Remedies for the imbalance: macro F1 against the rare classes' recall (dashed: the goal)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
