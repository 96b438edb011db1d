"""Part 2 of STUDIES.md: each study's verdict (writeup.studies.claims), then its curves and runs."""
from __future__ import annotations

from pathlib import Path

from writeup.studies.claims import CLAIMS, Judgement, judge
from writeup.studies.plan import PART2, variants_of
from writeup.studies.records import Trained
from writeup.studies.uncertainty import with_interval


def _best(run: Trained) -> float:
    return max(run.curves["val_accuracy"]) if run.curves["val_accuracy"] else float("nan")


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
            f"{int(m['best_epoch'])} | {_best(r):.4f} | {with_interval(r, 'test_accuracy', 4)} |")


def _common_epochs_line(runs: dict[str, Trained]) -> list[str]:
    """Best val accuracy of each variant within the epochs all of them ran: early stopping taken out."""
    n = min(len(r.curves["val_accuracy"]) for r in runs.values())
    if len(runs) < 2 or not n or all(len(r.curves["val_accuracy"]) == n for r in runs.values()):
        return []
    best = ", ".join(f"{v} {max(r.curves['val_accuracy'][:n]):.4f}" for v, r in runs.items())
    return [f"Within the epochs every variant ran (1-{n}), best val accuracy: {best}.", ""]


def rests_on(judged: Judgement) -> str:
    """The summary table's last cell: the steps that decide the verdict, or the one run's evidence."""
    parts = [c.sentence(label) for label, c in judged.resting()]
    return "; ".join(parts + ([judged.evidence] if judged.evidence else []))


def judgements(records: dict[str, dict[str, Trained]]) -> dict[str, Judgement | list[str]]:
    """study -> its judgement, or the experiments it still waits for."""
    out: dict[str, Judgement | list[str]] = {}
    for study in PART2:
        pairs = variants_of(study)
        runs = {v: records[e.name]["baseline"] for v, e in pairs if "baseline" in records.get(e.name, {})}
        missing = [e.name for v, e in pairs if v not in runs]
        out[study] = missing or judge(study, runs)
    return out


def part2_section(records: dict[str, dict[str, Trained]], figures: Path) -> list[str]:
    head = ["| variant | experiment | seed | commit | precision | CPU | epochs run | best epoch | best val accuracy | "
            "test accuracy |", "| --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    found = judgements(records)
    summary = ["| study | the study's claim | here (one seed) | what it rests on (test accuracy, A minus B) |",
               "| --- | --- | --- | --- |"]
    out = []
    for study, judged in found.items():
        anchor = f"[{study}](#{study.replace(' ', '-')})"
        out += [f"### {study}", ""]
        runs = {v: records[e.name]["baseline"] for v, e in variants_of(study) if "baseline" in records.get(e.name, {})}
        if runs:
            path = figures / f"{study.replace(' ', '-')}.png"
            study_figure(study, runs, path)
            out += [f"![{study}]({path.as_posix()})", "", *head, *(_row(v, r) for v, r in runs.items()), ""]
            out += _common_epochs_line(runs)
        claim = f"The study: *{CLAIMS[study]}*."
        if isinstance(judged, list):
            out += [f"{claim} **Not yet checked**: still to run: {', '.join(f'`{m}`' for m in judged)}.", ""]
            summary.append(f"| {anchor} | {CLAIMS[study]} | **not yet checked** | – |")
            continue
        steps = [c.sentence(label) for label, c in judged.steps] + ([judged.evidence] if judged.evidence else [])
        out += [f"{claim} **{judged.verdict.capitalize()}** here (one seed): " + "; ".join(steps) + ".", ""]
        summary.append(f"| {anchor} | {CLAIMS[study]} | **{judged.verdict}** | {rests_on(judged)} |")
    return ["## Part 2: five parameter studies (the study's CNN on all 50,000 training images)", "",
            "One seed per variant, so each difference is one pair: a verdict where it passes the yardstick of the "
            "runs' test-set intervals, like for like.", "", *summary, "", *out]
