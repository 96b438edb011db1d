"""STUDIES.md's section beyond the study: the remedies for the class imbalance ranked on validation, each
set against the first by the one rule, their test figures with intervals, the goal, and what their runs
and curves say (writeup.studies.remedies holds the judgements)."""
from __future__ import annotations

import statistics
from itertools import groupby
from pathlib import Path

from cifar10.training.backup_folders import ADOPTED_TAG
from cifar10.training.logit_adjustment import TAUS, tau_metric
from writeup.studies.plan import BALANCED_REFERENCE, REMEDIES, REMEDY_PROTOCOL, SEEDS
from writeup.studies.records import Trained
from writeup.studies.remedies import (GOAL, LABEL, RANKING_HALF, STUDY_REMEDY, TESTS, VALIDATION, Ranking,
                                      balanced_reference, goal_means, misses_goal, ranking, reaches_goal,
                                      remedy_runs)
from writeup.studies.uncertainty import mean_with, validation_support, with_interval
from writeup.studies.verdicts import cpu_kind

TUNED = "tuned on the ranking's own split"


def _split_text(run: Trained) -> str:
    """The validation split's class counts: `500 images a class, 50 cat, 50 dog`."""
    support = validation_support(run) or {}
    by_count = sorted(support.items(), key=lambda x: -x[1])
    groups = [(n, [c for c, _ in g]) for n, g in groupby(by_count, key=lambda x: x[1])]
    return ", ".join(f"{n} images a class" if len(cs) > 2 else ", ".join(f"{n} {c}" for c in cs) for n, cs in groups)


def ranking_table(runs: dict[str, dict[int, Trained]], ranked: Ranking) -> list[str]:
    out = ["| rank | remedy | seeds | validation balanced accuracy | minus the first, seed by seed | "
           + " | ".join(f.label for f in TESTS) + " |", "| ---: | --- | ---: | --- | --- |" + " --- |" * len(TESTS)]
    for i, name in enumerate([*ranked.order, *ranked.tuned], 1):
        seeds = list(runs[name].values())
        if name in ranked.tuned:
            rank, val = "–", f"{mean_with(seeds, VALIDATION).split(' ±')[0]}, {TUNED}"
            against = "no verdict until rerun"
        else:
            rank, val = str(i), mean_with(seeds, VALIDATION)
            against = ranked.against_first[name].cell() if name in ranked.against_first else "–"
        out.append(f"| {rank} | {name} | {len(seeds)} | {val} | {against} | "
                   + " | ".join(mean_with(seeds, f) for f in TESTS) + " |")
    return out


def ranking_details(ranked: Ranking) -> list[str]:
    """Each remedy minus the first, seed by seed, with what else differs in a pair left out."""
    rows = [f"| {name} | {c.per_seed()} | " + ("–" if c.yardstick is None else f"{c.yardstick:.3f}")
            + f" | {c.why(detail=True) or 'nothing'} |" for name, c in ranked.against_first.items()]
    if not rows:
        return []
    return [f"<details><summary>Each remedy minus {ranked.first}, seed by seed (* left out)</summary>", "",
            "| remedy | per seed | yardstick | left out |", "| --- | --- | ---: | --- |", *rows, "", "</details>", ""]


def summary_line(ranked: Ranking) -> str:
    """The ranking in a sentence: the first, and what the rule says of the others against it."""
    if not ranked.order:
        return ""
    verdicts = ranked.by_verdict()
    return (f"**{ranked.first}** ranks first; against it, " + "; ".join(
        f"{verdict}: {', '.join(names)}" for verdict, names in verdicts.items()) + "." if verdicts else
        f"**{ranked.first}** ranks first (no other remedy has run).")


def tuned_line(runs: dict[str, dict[int, Trained]], ranked: Ranking) -> str:
    if not ranked.tuned:
        return ""
    taus = "; ".join(f"{name}: tau " + ", ".join(f"{r.metrics['logit_adjustment_tau']:g} (seed {s})"
                                                 for s, r in sorted(runs[name].items())) for name in ranked.tuned)
    return (f"Chosen the old way ({taus}): each seed's tau the best of {len(TAUS)} on the whole validation split that "
            "ranks the remedies, the grid's figures not recorded. Their validation figures are "
            f"{TUNED}: shown, not ranked, no verdict until rerun; the train stage now chooses tau on one half of "
            f"the split, scores the other, and logs every tau's figure on both (`{tau_metric('choosing', 0.25)}`, "
            f"`{tau_metric('ranking', 0.25)}`, ...).")


def tau_lines(runs: dict[str, dict[int, Trained]]) -> list[str]:
    """Logit adjustment chosen on one half: per seed, the tau and both halves' figures before and after."""
    lines = []
    for name, seeds in runs.items():
        for s, r in sorted(seeds.items()):
            if RANKING_HALF in r.metrics:
                m = r.metrics
                lines.append(f"- {name}, seed {s}: tau {m['logit_adjustment_tau']:g}; choosing half "
                             f"{m['val_balanced_accuracy_unadjusted']:.3f} -> "
                             f"{m['val_balanced_accuracy_adjusted']:.3f}; ranking half "
                             f"{m[RANKING_HALF + '_unadjusted']:.3f} -> {m[RANKING_HALF]:.3f}.")
    head = [f"Logit adjustment's tau, chosen among {TAUS[0]:g}, {TAUS[1]:g}, ..., {TAUS[-1]:g} on one half of the "
            "validation split; the other half ranks it (validation balanced accuracy unadjusted -> adjusted):", ""]
    return head + lines + [""] if lines else []


def goal_lines(runs: dict[str, dict[int, Trained]], reference: Trained | None) -> list[str]:
    """Whether a remedy reaches the goal: the goal figures every remedy is below by the rule, those only some
    are, and for scale what the same CNN reached with no imbalance at all (`reference`)."""
    goal, study = (" / ".join(f"{v:.2f}" for v in figures.values()) for figures in (GOAL, STUDY_REMEDY))
    reached = [name for name, seeds in runs.items() if reaches_goal(seeds)]
    text = (f"The goal ({', '.join(LABEL.values())} >= {goal}, mean over {len(SEEDS)} seeds; the study's offline "
            f"augmentation reached {study}): ")
    if reached:
        text += f"reached by {', '.join(reached)}."
    else:
        missed = {name: misses_goal(seeds) for name, seeds in runs.items()}
        shared = [label for label in LABEL.values() if all(label in found for found in missed.values())]
        text += "reached by no remedy" + (f": all {len(runs)} are below it on {', '.join(shared)}" if shared else "")
        for label in LABEL.values():
            some = [name for name, found in missed.items() if label in found]
            if label not in shared and some:
                text += f"; {', '.join(some)} also on {label}" if shared else f"; {', '.join(some)} below on {label}"
        text += " (every seed below, beyond its runs' intervals)"
        means = [goal_means(seeds)["test_macro_f1"] for seeds in runs.values()]
        text += f"; macro F1 has no interval (means {min(means):.3f} to {max(means):.3f})."
    lines = [text]
    if reference is not None:
        lines.append(f"For scale, the same CNN with no imbalance to remedy (`{BALANCED_REFERENCE}`, all 50,000 training "
                     f"images, seed {reference.seed}, one run): macro F1 {reference.metrics['test_macro_f1']:.3f}, "
                     f"cat recall {with_interval(reference, 'test_recall_cat')}, dog recall "
                     f"{with_interval(reference, 'test_recall_dog')}.")
    return [line for text_ in lines for line in (text_, "")]


def adopted_lines(runs: dict[str, dict[int, Trained]]) -> list[str]:
    """The remedies that restored another experiment's finished training instead of training again."""
    lines = []
    for name, seeds in runs.items():
        adopted = {s: r.tags[ADOPTED_TAG] for s, r in sorted(seeds.items()) if ADOPTED_TAG in r.tags}
        if adopted:
            lines.append(f"{name}: seed(s) {', '.join(map(str, adopted))} restored the finished training of "
                         f"{', '.join(f'`{e}`' for e in adopted.values())} (it acts after training), so epochs, "
                         "training minutes and images/s there are that training's.")
    return [line for text in lines for line in (text, "")]


def _epoch_cap() -> int:
    return int(next(o.split("=")[1] for o in REMEDY_PROTOCOL if o.startswith("train.epochs=")))


def _altered(name: str) -> bool:
    """Whether training batches are mixed or transformed: training accuracy is then not like validation's."""
    return any(k in o for o in REMEDIES.get(name, ("", ()))[1] for k in ("mix.kind", "online_augmentation"))


def _train_gap(seeds: dict[int, Trained]) -> float | None:
    gaps = [r.curves["accuracy"][b - 1] - r.curves["val_accuracy"][b - 1] for r in seeds.values()
            if (b := int(r.metrics["best_epoch"])) and len(r.curves.get("accuracy", [])) >= b
            and len(r.curves.get("val_accuracy", [])) >= b]
    return statistics.mean(gaps) if gaps else None


def runs_table(runs: dict[str, dict[int, Trained]], overfit: float = 0.10) -> list[str]:
    """Per remedy: its runs' commits and CPU, epochs, the cap, training against validation accuracy, cost; then
    what the curves point to."""
    cap = _epoch_cap()
    out = [f"| remedy | commit per seed | CPU | epochs run (kept) | ended by the {cap}-epoch cap | training minus "
           "validation accuracy at the kept epoch | training min | images/s |",
           "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    capped, gapped = [], []
    for name, seeds in runs.items():
        at_cap = sum(r.metrics["epochs_run"] >= cap for r in seeds.values())
        gap = _train_gap(seeds)
        gap_text = "–" if gap is None else f"{gap:+.3f}" + (" (batches mixed or transformed)" if _altered(name) else "")
        out.append(f"| {name} | " + ", ".join(f"`{r.commit[:7]}`" for _, r in sorted(seeds.items())) + " | "
                   + "; ".join(sorted({cpu_kind(r) for r in seeds.values()})) + " | "
                   + "; ".join(f"{r.metrics['epochs_run']:.0f} ({r.metrics['best_epoch']:.0f})"
                               for _, r in sorted(seeds.items()))
                   + f" | {at_cap} of {len(seeds)} | {gap_text}"
                   + f" | {statistics.mean(r.metrics['train_seconds'] / 60 for r in seeds.values()):.1f} | "
                   f"{statistics.mean(r.metrics['train_images_per_s'] for r in seeds.values()):.0f} |")
        capped += [name] if at_cap else []
        gapped += [name] if gap is not None and not _altered(name) and gap > overfit else []
    curves = ("Still improving when the cap ended them: " + ", ".join(capped) + "; a longer schedule is their next "
              "step." if capped else "Early stopping ended every remedy before the cap: more epochs would not help.")
    if gapped:
        curves += (f" Training accuracy more than {overfit:.2f} above validation: {', '.join(gapped)}: more varied "
                   "images or stronger regularisation is what their curves point to.")
    return [*out, "", curves, ""]


def remedies_section(records: dict[str, dict[str, Trained]], figures: Path) -> list[str]:
    runs = remedy_runs(records)
    if not runs:
        return []
    ranked = ranking(runs)
    first = next(iter(next(iter(runs.values())).values()))
    out = ["## Beyond the study: remedies for the class imbalance", "",
           "The study's CNN on the same imbalanced set, each remedy over seeds " + ", ".join(map(str, SEEDS)) + " under "
           f"one protocol (`{' '.join('-S ' + o for o in REMEDY_PROTOCOL)}`): validation from original images only "
           f"({_split_text(first)}), early stopping and every choice on validation balanced accuracy. Ranked on it; "
           "each remedy minus the first, seed by seed, judged by the rule. Test figures are scored once and not used "
           "to choose.", "", *ranking_table(runs, ranked), "", *ranking_details(ranked)]
    out += [line for text in (summary_line(ranked), tuned_line(runs, ranked)) if text for line in (text, "")]
    out += tau_lines(runs) + goal_lines(runs, balanced_reference(records)) + adopted_lines(runs) + runs_table(runs)
    path = figures / "remedies.png"
    remedies_figure(runs, path)
    return out + [f"![remedies]({path.as_posix()})", ""]


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
