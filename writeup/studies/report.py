"""STUDIES.md and its figures, from the MLflow records of the study experiments alone (as STUDIES.json
keeps them).

Every number on the page is one a run logged, or an interval from the counts a run logged; each run is
named by experiment, seed, commit, precision and CPU. The page opens with the answers, states its rule for
intervals and verdicts once, and gives the reasoning as tables. Experiments without records are listed as
still to run.
"""
from __future__ import annotations

from pathlib import Path

from cifar10.reporting.intervals import METHOD
from writeup.studies.answers import answer_lines
from writeup.studies.capacity import capacity_section
from writeup.studies.capacity_plan import resolve
from writeup.studies.gap import gap_lines
from writeup.studies.part2 import part2_section
from writeup.studies.part3 import band_figure, setups_of
from writeup.studies.plan import RERUN, SETUP_TARGETS, experiments
from writeup.studies.records import Trained
from writeup.studies.remedies_section import remedies_section
from writeup.studies.stopping import stop_figure, stop_lines
from writeup.studies.uncertainty import with_interval
from writeup.studies.verdicts import RULE

FIGURES = Path("figures/studies")


def how_to_read(records: dict[str, dict[str, Trained]]) -> list[str]:
    """The page's two conventions, stated once: intervals and the verdict rule."""
    runs = [r for models in records.values() for r in models.values()]
    kept = sum(r.confusion is not None for r in runs)
    matrices = ("none of these records has one" if not kept else
                f"{kept} of these {len(runs)} records {'has' if kept == 1 else 'have'} one")
    return ["How to read it:", "",
            f"- `0.761 [0.753, 0.770]`: a run's test figure and its 95% interval ({METHOD}, from the per-class counts "
            "each record keeps); `0.713 (0.685 to 0.738) ±0.009`: a figure over seeds, their mean and range, and the "
            f"largest half-width of their intervals. Macro F1 gets an interval only from a recorded confusion matrix "
            f"({matrices}). Validation balanced accuracy: the same bootstrap over the validation split's class "
            "counts, each class at its test recall.",
            f"- {RULE}", ""]


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
           "Both CNNs on seeds 42, 43 and 44 under the defaults and under each setup. " + " ".join(
               f"`{setup}` trains the {target.split('@')[1]} model only: {why}."
               for setup, (target, why) in SETUP_TARGETS.items()) + f" `{RERUN}` is the defaults of seed 42 once more, "
           "on whichever CPU ran it.", ""]
    if any(setups.values()):
        path = figures / "part3.png"
        band_figure(setups, path)
        out += [f"![part 3]({path.as_posix()})", ""]
    if stop_lines(setups):
        path = figures / "stopping.png"
        stop_figure(setups, path)
        out += [f"![where early stopping ends a run]({path.as_posix()})", ""]
    out += gap_lines(setups)
    out += ["### Runs", "",
            "| experiment | model | seed | precision | commit | CPU | training data (MD5) | epochs (best) | test accuracy "
            "| images/s |", "| --- | --- | ---: | --- | --- | --- | --- | ---: | ---: | ---: |"]
    for name in _setup_by_setup([n for n in records if n.startswith(("part3-", "bf16-", "rerun-", "f32-"))]):
        for model, r in records[name].items():
            out.append(f"| `{name}` | {model} | {r.seed} | {r.precision} | `{r.commit}` | {r.cpu} | {r.training_data} | "
                       f"{int(r.metrics['epochs_run'])} ({int(r.metrics['best_epoch'])}) | "
                       f"{with_interval(r, 'test_accuracy', 4)} | {r.metrics['train_images_per_s']:.0f} |")
    return out + [""]


def _todo_line(todo: list[str]) -> list[str]:
    partners = [e.name for e in experiments() if e.name in todo and e.same_sitting_as]
    return ["**Still to run** (`python -m scripts.studies run` resumes): " + ", ".join(f"`{t}`" for t in todo)
            + (f". {_names(partners)} {'runs' if len(partners) == 1 else 'run'} in one sitting with "
               f"{'its' if len(partners) == 1 else 'their'} bfloat16 mate, on a CPU with bfloat16 units."
               if partners else "."), ""]


def _names(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def studies_markdown(records: dict[str, dict[str, Trained]], command: str, figures: Path = FIGURES) -> str:
    """The whole page. `records`: experiment name -> model -> its finished, evaluated training run."""
    planned = [resolve(e, records) for e in experiments()]  # a chosen combination may train the other model
    todo = [e.name for e in planned if not set(e.models) <= set(records.get(e.name, {}))]
    out = ["# The study's experiments on the real data", "",
           f"Written by `{command}` from the MLflow records of the experiments alone, as STUDIES.json keeps them. "
           f"{len(planned) - len(todo)} of {len(planned)} planned experiments have finished.", ""]
    out += _todo_line(todo) if todo else []
    answers = answer_lines(records)
    out += answers + (how_to_read(records) if answers else [])
    return "\n".join(out + part2_section(records, figures) + part3_section(records, figures)
                     + remedies_section(records, figures) + capacity_section(records))
