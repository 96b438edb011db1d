"""STUDIES.md and its figures, from the MLflow records of the study experiments alone (as STUDIES.json
keeps them).

Every number on the page is one a run logged; each run is named by experiment, seed, commit,
precision and CPU. Experiments without records are listed as still to run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from cifar10.studies.gap import gap_lines
from cifar10.studies.part3 import band_figure, band_tables, setups_of
from cifar10.studies.plan import PART2, RERUN, SEEDS, SETUP_TARGETS, experiments, variants_of
from cifar10.studies.records import Trained
from cifar10.studies.stopping import stop_figure, stop_lines

FIGURES = Path("figures/studies")
CLAIMS: dict[str, str] = {
    "hidden layers": "more hidden layers give higher accuracy",
    "activation": "relu is best; sigmoid suffers (vanishing gradients)",
    "optimizer": "adam is above sgd at every epoch",
    "training images": "with 6,000 images the model overfits from about epoch 14 and early stopping ends the run",
    "convs per block": "two 3x3 convs per block beat one 3x3 and one 7x7 (deeper beats wider)",
}


def _best(run: Trained) -> float:
    return max(run.curves["val_accuracy"]) if run.curves["val_accuracy"] else float("nan")


def _chain(labels: list[str], values: list[float]) -> str:
    """`a < b > c`: each neighbouring pair joined by its true relation."""
    out = labels[0]
    for i in range(1, len(values)):
        sign = "<" if values[i - 1] < values[i] else (">" if values[i - 1] > values[i] else "=")
        out += f" {sign} {labels[i]}"
    return out


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


def _noise_caveat(margin: float | None, spread: tuple[float, int] | None) -> str:
    """How the difference a verdict rests on compares with one CNN's seed-to-seed spread."""
    if margin is None or spread is None:
        return ""
    if margin >= spread[0]:
        return (f" The difference it rests on ({margin:.3f}) is at least the seed spread ({spread[0]:.3f}) "
                f"measured over {spread[1]} seeds: outside seed noise as far as it is measured.")
    return (f" The difference it rests on ({margin:.3f}) is smaller than the seed spread ({spread[0]:.3f}): "
            "within seed noise, so another seed could flip it.")


def _verdicts() -> dict[str, Callable[[dict[str, Trained]], tuple[bool, str, float | None]]]:
    """Per study: (whether the claim holds, the evidence, the test-accuracy difference the verdict rests on,
    or None where it rests on curves or epochs rather than one difference)."""
    def acc(r: Trained) -> float:
        return r.metrics["test_accuracy"]

    def hidden(v):
        a = [acc(v[k]) for k in ("0", "1", "2")]
        steps = [a[1] - a[0], a[2] - a[1]]
        holds = min(steps) > 0
        # Holding rests on the smaller rise; failing on the larger fall.
        return (holds, "test accuracy " + _chain([f"{x:.4f} ({k})" for k, x in zip(("0", "1", "2"), a)], a),
                min(steps) if holds else -min(steps))

    def activation(v):
        ranked = sorted(v, key=lambda k: acc(v[k]), reverse=True)
        holds = ranked[0] == "relu" and ranked[-1] == "sigmoid"
        others = [k for k in v if k not in ("relu", "sigmoid")]
        # Holding rests on relu's lead and sigmoid's lag; failing on the larger of the two misses.
        lead = acc(v["relu"]) - max(acc(v[k]) for k in others + ["sigmoid"])
        lag = min(acc(v[k]) for k in others + ["relu"]) - acc(v["sigmoid"])
        return holds, "ranking by test accuracy: " + ", ".join(
            f"{k} {acc(v[k]):.4f}" for k in ranked), min(lead, lag) if holds else -min(lead, lag)

    def optimizer(v):
        a, s = v["adam"].curves["val_accuracy"], v["sgd"].curves["val_accuracy"]
        n = min(len(a), len(s))
        below = [e + 1 for e in range(n) if a[e] <= s[e]]
        return not below, (f"val_accuracy of adam above sgd at all {n} common epochs" if not below
                           else f"adam not above sgd at epoch(s) {below[:10]} of {n}"), None

    def size(v):
        r = v["6,000"]
        stopped = r.metrics["epochs_run"] < float(r.params.get("train.epochs", "50"))
        best = int(r.metrics["best_epoch"])
        return stopped and 9 <= best <= 19, (f"6,000 images: best epoch {best} (lowest val_loss), "
                                            f"{int(r.metrics['epochs_run'])} epochs run"
                                            f"{', stopped early' if stopped else ', no early stop'}"), None

    def convs(v):
        runner_up = max(acc(v["1x3x3"]), acc(v["1x7x7"]))
        return acc(v["2x3x3"]) > runner_up, ", ".join(
            f"{k} {acc(v[k]):.4f}" for k in ("2x3x3", "1x3x3", "1x7x7")), abs(acc(v["2x3x3"]) - runner_up)

    return {"hidden layers": hidden, "activation": activation, "optimizer": optimizer, "training images": size,
            "convs per block": convs}


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
        rests = f"{margin:.3f} ({'within' if margin < spread[0] else 'outside'} seed noise)"
    return f"| [{study}](#{study.replace(' ', '-')}) | {CLAIMS[study]} | **{verdict}** | {rests} |"


def part2_section(records: dict[str, dict[str, Trained]], figures: Path) -> list[str]:
    head = ["| variant | experiment | seed | commit | precision | CPU | epochs run | best epoch | best val accuracy | "
            "test accuracy | images/s |", "| --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    verdicts = _verdicts()
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
            holds, evidence, margin = verdicts[study](runs)
            verdict = "Holds" if holds else "Does not hold"
            out += [f"{claim} **{verdict}** here: {evidence}.{_noise_caveat(margin, spread)}", ""]
            summary.append(_summary_row(study, verdict.lower(), margin, spread))
    return ["## Part 2: five parameter studies (the study's CNN on all 50,000 training images)", "",
            _noise_line(spread), "", *summary, "", *out]


def _setup_by_setup(names: list[str]) -> list[str]:
    """Part-3 experiment names grouped by setup (in the order setups first run), seeds ascending within
    each: the candidates run seed by seed, but the table reads one setup at a time."""
    planned = [e for e in experiments() if e.part != "part2"]
    first: dict[str, int] = {}
    for i, e in enumerate(planned):
        first.setdefault(e.labels["setup"], i)
    key = {e.name: (first[e.labels["setup"]], e.labels["seed"]) for e in planned}
    return sorted(names, key=lambda n: key.get(n, (len(planned), 0)))


def part3_section(records: dict[str, dict[str, Trained]], figures: Path) -> list[str]:
    setups = setups_of(records)
    out = ["## Part 3: the imbalance models over seeds", "",
           "Mean (min to max) (n) over the seeds that have finished, beside the study's published figure. Each "
           "setup runs on the same seeds; the runs are listed below with their CPU. " + " ".join(
               f"`{setup}` trains the {target.split('@')[1]} model only: {why}."
               for setup, (target, why) in SETUP_TARGETS.items()) + f" `{RERUN}` is the defaults of seed 42 once more, "
           "on whichever CPU ran it: the CPU's share of a difference, or a check that a run repeats.", ""]
    if any(setups.values()):
        path = figures / "part3.png"
        band_figure(setups, path)
        out += [f"![part 3]({path.as_posix()})", ""]
    if stop_lines(setups):
        path = figures / "stopping.png"
        stop_figure(setups, path)
        out += [f"![where early stopping ends a run]({path.as_posix()})", ""]
    out += band_tables(setups) + gap_lines(setups)
    out += ["### Runs", "",
            "| experiment | model | seed | precision | commit | CPU | training data (MD5) | epochs (best) | test accuracy "
            "| images/s |", "| --- | --- | ---: | --- | --- | --- | --- | ---: | ---: | ---: |"]
    for name in _setup_by_setup([n for n in records if n.startswith(("part3-", "bf16-", "rerun-"))]):
        for model, r in records[name].items():
            out.append(f"| `{name}` | {model} | {r.seed} | {r.precision} | `{r.commit}` | {r.cpu} | {r.training_data} | "
                       f"{int(r.metrics['epochs_run'])} ({int(r.metrics['best_epoch'])}) | "
                       f"{r.metrics['test_accuracy']:.4f} | {r.metrics['train_images_per_s']:.0f} |")
    return out + [""]


def studies_markdown(records: dict[str, dict[str, Trained]], command: str, figures: Path = FIGURES) -> str:
    """The whole page. `records`: experiment name -> model -> its finished, evaluated training run."""
    planned = experiments()
    todo = [e.name for e in planned if not set(e.models) <= set(records.get(e.name, {}))]
    out = ["# The study's experiments on the real data", "",
           f"Written by `{command}` from the MLflow records of the experiments alone, as STUDIES.json keeps them "
           f"(every figure below is one a run logged). {len(planned) - len(todo)} of {len(planned)} planned "
           "experiments have finished.", ""]
    if todo:
        out += ["**Still to run** (`python -m scripts.studies run` resumes): " + ", ".join(f"`{t}`" for t in todo), ""]
    return "\n".join(out + part2_section(records, figures) + part3_section(records, figures))
