"""Part 2 of STUDIES.md: each study's curves, runs and verdict, set against the CNN's seed-to-seed spread."""
from __future__ import annotations

from pathlib import Path

from writeup.studies.claims import CLAIMS, verdicts
from writeup.studies.plan import PART2, SEEDS, variants_of
from writeup.studies.records import Trained


def _best(run: Trained) -> float:
    return max(run.curves["val_accuracy"]) if run.curves["val_accuracy"] else float("nan")


def _seed_spread(records: dict[str, dict[str, Trained]]) -> tuple[float, int] | None:
    """Max - min test accuracy of the baseline over the part-3 default seeds, and their count (2 or more)."""
    values = [records[f"part3-defaults-seed{s}"]["baseline"].metrics["test_accuracy"] for s in SEEDS
              if "baseline" in records.get(f"part3-defaults-seed{s}", {})]
    return (max(values) - min(values), len(values)) if len(values) >= 2 else None


def _noise_line(spread: tuple[float, int] | None) -> str:
    if spread is None:
        return ("One seed per variant, and the seed-to-seed spread of this CNN (part 3) is not measured yet: a "
                "verdict resting on a difference of a few points is provisional (where early stopping ends a run "
                "moves its test accuracy).")
    return (f"One seed per variant. The baseline's test accuracy spread over {spread[1]} seeds of part 3 (the same "
            f"CNN on the imbalanced set) is {spread[0]:.3f}: a difference smaller than that is within seed noise.")


def _within_noise(margin: float, spread: tuple[float, int]) -> bool:
    """Whether a difference is smaller than the baseline's seed-to-seed spread of test accuracy."""
    return margin < spread[0]


def _noise_caveat(margin: float | None, spread: tuple[float, int] | None) -> str:
    """How the difference a verdict rests on compares with one CNN's seed-to-seed spread."""
    if margin is None or spread is None:
        return ""
    if not _within_noise(margin, spread):
        return (f" The difference it rests on ({margin:.3f}) is at least the seed spread ({spread[0]:.3f}) "
                f"measured over {spread[1]} seeds: outside seed noise as far as it is measured.")
    return (f" The difference it rests on ({margin:.3f}) is smaller than the seed spread ({spread[0]:.3f}): "
            "within seed noise, so another seed could flip it.")


def study_figure(study: str, runs: dict[str, Trained], path: Path) -> None:
    """val_accuracy and val_loss per epoch of a study's variants, overlaid."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 2)
    for variant, run in runs.items():
        for ax, key in zip(axes, ("val_accuracy", "val_loss")):
            ax.plot(range(1, len(run.curves[key]) + 1), run.curves[key], marker=".", label=variant)
    for ax, key in zip(axes, ("val_accuracy", "val_loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0].legend(title=study, fontsize=8)
    fig.suptitle(f"Part 2: {study}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)


def _row(label: str, r: Trained) -> str:
    m = r.metrics
    return (f"| {label} | `{r.experiment}` | {r.seed} | `{r.commit}` | {r.precision} | {r.cpu} | {int(m['epochs_run'])} | "
            f"{int(m['best_epoch'])} | {_best(r):.4f} | {m['test_accuracy']:.4f} | {m['train_images_per_s']:.0f} |")


def _common_epochs_line(runs: dict[str, Trained]) -> list[str]:
    """Best val accuracy of each variant within the epochs all of them ran: early stopping taken out."""
    n = min(len(r.curves["val_accuracy"]) for r in runs.values())
    if len(runs) < 2 or not n or all(len(r.curves["val_accuracy"]) == n for r in runs.values()):
        return []
    best = ", ".join(f"{v} {max(r.curves['val_accuracy'][:n]):.4f}" for v, r in runs.items())
    return [f"Within the epochs every variant ran (1-{n}), best val accuracy: {best}.", ""]


def _cpus_line(runs: dict[str, Trained]) -> list[str]:
    """A warning when a study's variants ran on more than one CPU model."""
    cpus = sorted({r.cpu for r in runs.values()})
    if len(cpus) < 2:
        return []
    return [f"These variants ran on {len(cpus)} CPU models: compare images/s only between runs of one CPU. Their "
            "float results differ in the last bits too, so a small difference between CPUs is like one between "
            "seeds (README, Reproducibility).", ""]


def _summary_row(study: str, verdict: str, margin: float | None, spread: tuple[float, int] | None) -> str:
    if verdict == "not yet checked":
        rests = "–"
    elif margin is None:
        rests = "none: it rests on the per-epoch curves"
    elif spread is None:
        rests = f"{margin:.3f}"
    else:
        rests = f"{margin:.3f} ({'within' if _within_noise(margin, spread) else 'outside'} seed noise)"
    return f"| [{study}](#{study.replace(' ', '-')}) | {CLAIMS[study]} | **{verdict}** | {rests} |"


def part2_section(records: dict[str, dict[str, Trained]], figures: Path) -> list[str]:
    head = ["| variant | experiment | seed | commit | precision | CPU | epochs run | best epoch | best val accuracy | "
            "test accuracy | images/s |", "| --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    judges = verdicts()
    spread = _seed_spread(records)
    # The verdicts first, in one table: the sections below hold each study's curves and runs.
    summary = ["| study | the study's claim | here | test-accuracy difference it rests on |", "| --- | --- | --- | --- |"]
    out = []
    for study in PART2:
        pairs = variants_of(study)
        runs = {v: records[e.name]["baseline"] for v, e in pairs if "baseline" in records.get(e.name, {})}
        out += [f"### {study}", ""]
        if runs:
            path = figures / f"{study.replace(' ', '-')}.png"
            study_figure(study, runs, path)
            out += [f"![{study}]({path.as_posix()})", "", *head, *(_row(v, r) for v, r in runs.items()), ""]
            out += _common_epochs_line(runs) + _cpus_line(runs)
        missing = [e.name for v, e in pairs if v not in runs]
        claim = f"The study: *{CLAIMS[study]}*."
        if missing:
            out += [f"{claim} **Not yet checked**: still to run: {', '.join(f'`{m}`' for m in missing)}.", ""]
            summary.append(_summary_row(study, "not yet checked", None, spread))
        else:
            holds, evidence, margin = judges[study](runs)
            verdict = "Holds" if holds else "Does not hold"
            out += [f"{claim} **{verdict}** here: {evidence}.{_noise_caveat(margin, spread)}", ""]
            summary.append(_summary_row(study, verdict.lower(), margin, spread))
    return ["## Part 2: five parameter studies (the study's CNN on all 50,000 training images)", "",
            _noise_line(spread), "", *summary, "", *out]
