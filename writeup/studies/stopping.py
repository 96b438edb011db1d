"""Where early stopping ends a run, set beside its test accuracy: over every part-3 run of a model, whatever
its setup, the epoch early stopping judged best (the run stops `patience` epochs later) and the test
accuracy of the weights it kept.

Patience on a noisy validation curve decides that epoch, and a seed, a CPU or a setting can move it by
ten epochs; when test accuracy rises with it, much of a model's spread (and of its gap to the study)
goes with where its runs stopped rather than with the setting that moved them there. The runs mix setups,
CPU models and commits, so the page describes this and concludes nothing from it.
"""
from __future__ import annotations

import statistics
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


def stop_lines(setups: Setups) -> list[str]:
    """One line: per model with three runs or more over two best epochs or more, the rank correlation of best
    epoch and test accuracy over every part-3 run; nothing otherwise."""
    found = []
    for model in MODELS:
        points = stops(setups, model)
        if len(points) >= 3 and len({epoch for epoch, _ in points}) >= 2:
            rho = spearman([e for e, _ in points], [a for _, a in points])
            found.append(f"{model} {rho:+.2f} over {len(points)} runs (best epochs {points[0][0]} to {points[-1][0]})")
    if not found:
        return []
    return ["Where early stopping ends a run (figure above): Spearman's rank correlation of best epoch and test "
            "accuracy over every part-3 run, " + "; ".join(found) + ". The runs span setups, CPU models and commits "
            "and share trainings up to where they stop: a description, no verdict."]


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
