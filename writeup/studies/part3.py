"""Part 3 of STUDIES.md: the imbalance models over seeds, their setups and the figures they are compared on.

A setup is proposed as a default (writeup.studies.gap) on a validation figure only: the val balanced
accuracy (mean per-class recall) of the weights a run keeps (its best epoch when early stopping restores
them, its last epoch otherwise), the validation estimate of accuracy on the balanced test set. Test
figures are reported beside it and never used to choose.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable

from cifar10.reporting.reference import STUDY
from writeup.studies.plan import MIXED, PARTNER, RERUN, SEEDS, SETUPS
from writeup.studies.records import Trained
from writeup.studies.uncertainty import Figure, figure_on_test, validation_half_width

MODELS = ("baseline", "augmented")
# (label, metric logged on the training run, the study's figure from its published report)
FIGURES: tuple[tuple[str, str, Callable[[dict], float]], ...] = (
    ("accuracy", "test_accuracy", lambda s: s["accuracy"]),
    ("macro F1", "test_macro_f1", lambda s: s["macro"]["f1"]),
    ("cat recall", "test_recall_cat", lambda s: s["per_class"]["cat"]["recall"]),
    ("dog recall", "test_recall_dog", lambda s: s["per_class"]["dog"]["recall"]),
)
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
KEPT_VAL_BALANCED = Figure("val balanced accuracy of the kept weights", kept_val_balanced, validation_half_width)


def compared_figures() -> list[Figure]:
    """The test figures (with their test-set intervals), then the kept weights' val balanced accuracy."""
    return [*(figure_on_test(label, key) for label, key, _ in FIGURES), KEPT_VAL_BALANCED]


def setups_of(records: dict[str, dict[str, Trained]]) -> Setups:
    """Every part-3 setup's finished runs by seed; bfloat16 parity and the defaults' rerun are setups of one seed."""
    def seeds(prefix: str) -> dict[int, dict[str, Trained]]:
        return {s: records[f"{prefix}-seed{s}"] for s in SEEDS if records.get(f"{prefix}-seed{s}")}

    out: Setups = {setup: seeds(f"part3-{setup}") for setup in SETUPS}
    # The rerun beside the defaults it repeats, bfloat16 and its float32 partner last.
    return {"defaults": out.pop("defaults"), RERUN: seeds("rerun-defaults"), **out, MIXED: seeds("bf16"),
            PARTNER: seeds("f32")}


def band(values: list[float], sign: str = "", digits: int = 3) -> str:
    """`mean (min to max)` with `digits` decimals; one value alone has no band."""
    def number(v: float) -> str:
        return f"{round(v, digits) + 0.0:{sign}.{digits}f}"  # + 0.0: a difference that rounds to zero shows as 0.000, not -0.000

    if len(values) < 2:
        return number(values[0]) if values else "–"
    return f"{number(statistics.mean(values))} ({number(min(values))} to {number(max(values))})"


def values_of(runs: dict[int, dict[str, Trained]], model: str, value: Callable[[Trained], float | None]) -> list[float]:
    return [v for r in runs.values() if model in r and (v := value(r[model])) is not None]


def figure_legend(fig, axes, **kwargs) -> None:
    """One legend for a figure of panels that each show only some of its series: one entry per label, from
    whichever panel first has it."""
    handles: dict = {}
    for ax in getattr(axes, "flat", axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), **kwargs)


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
            ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=7)
            ax.set_xlim(-0.5, len(names) - 0.5)
            ax.grid(alpha=0.3)
    figure_legend(fig, axes, loc="upper right", fontsize=7)
    fig.suptitle("Part 3: test figures per seed and setup (dashed: the study)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
