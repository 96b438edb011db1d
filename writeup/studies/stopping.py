"""Where early stopping ends a run, set beside its test accuracy: over every part-3 run of a model, whatever
its setup, the epoch early stopping judged best (the run stops `patience` epochs later) and the test
accuracy of the weights it kept.

Patience on a noisy validation curve decides that epoch, and a seed, a CPU or a setting can move it by
ten epochs; when test accuracy rises with it, much of a model's spread (and of its gap to the study)
goes with where its runs stopped rather than with the setting that moved them there.
"""
from __future__ import annotations

import statistics
from itertools import groupby
from pathlib import Path

from cifar10.reporting.reference import STUDY
from writeup.studies.part3 import MODELS, Setups, figure_legend


def stops(setups: Setups, model: str) -> list[tuple[int, float]]:
    """(best epoch, test accuracy) of every run of `model`, by best epoch."""
    return sorted((int(r[model].metrics["best_epoch"]), r[model].metrics["test_accuracy"])
                  for runs in setups.values() for r in runs.values() if model in r)


def _ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in order[i:j + 1]:
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    return statistics.correlation(_ranks(x), _ranks(y))


def _latest_stop(points: list[tuple[int, float]], study: float) -> str:
    """The runs that trained longest against the study's figure: if where a run stops were the whole gap,
    they would reach it."""
    epoch = points[-1][0]
    accs = [a for e, a in points if e == epoch]
    reach = f"{min(accs):.3f} to {max(accs):.3f}" if len(accs) > 1 else f"{accs[0]:.3f}"
    if max(accs) < study:
        where = f"the study's {study:.2f} is {study - max(accs):.3f} above the best of them"
    elif min(accs) > study:
        where = f"all of them pass the study's {study:.2f}"
    else:
        where = f"the study's {study:.2f} is within their range"
    return f"The latest stop (best epoch {epoch}, {len(accs)} run(s)) gives test accuracy {reach}: {where}."


def stop_lines(setups: Setups) -> list[str]:
    """Per model with three runs or more: test accuracy grouped by best epoch, and their rank correlation."""
    found = []
    for model in MODELS:
        points = stops(setups, model)
        if len(points) < 3 or len({epoch for epoch, _ in points}) < 2:
            continue
        rho = spearman([e for e, _ in points], [a for _, a in points])
        groups = "; ".join(f"{epoch}: " + ", ".join(f"{a:.3f}" for _, a in group)
                           for epoch, group in groupby(points, key=lambda p: p[0]))
        found.append(f"  - {model}: {groups}. Spearman's rank correlation {rho:+.2f} over {len(points)} runs. "
                     + _latest_stop(points, STUDY[model]["accuracy"]))
    if not found:
        return []
    return ["- **Where early stopping ends a run** (every part-3 run of any setup; best epoch: the test accuracy of "
            "each run whose best epoch it was). The defaults, their rerun and no-restore share a seed's training up to "
            "where it stops (a rerun on one CPU, or on two that agree, repeats it), so the runs are not independent: "
            "the correlation describes them, it tests nothing.", *found]


def stop_figure(setups: Setups, path: Path) -> None:
    """Test accuracy against best epoch, one panel per model, one colour per setup; dashed: the study's."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4))
    axes = fig.subplots(1, len(MODELS), sharey=True)
    for ax, model in zip(axes, MODELS):
        for i, (setup, runs) in enumerate(setups.items()):
            points = stops({setup: runs}, model)
            if points:
                ax.plot(*zip(*points), "o", color=f"C{i}", alpha=0.8, label=setup)
        ax.axhline(STUDY[model]["accuracy"], color="black", linestyle="--", linewidth=1, label="study")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("best epoch (early stopping's)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    figure_legend(fig, axes, loc="center right", fontsize=7)
    fig.suptitle("Part 3: where early stopping ends a run, and its test accuracy (dashed: the study)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.85, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
