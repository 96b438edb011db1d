"""STUDIES.md and its figures, from the MLflow records of the study experiments alone (as STUDIES.json
keeps them).

Every number on the page is one a run logged; each run is named by experiment, seed, commit,
precision and CPU. Experiments without records are listed as still to run.
"""
from __future__ import annotations

from pathlib import Path

from writeup.studies.capacity import capacity_section
from writeup.studies.capacity_plan import resolve
from writeup.studies.gap import gap_lines
from writeup.studies.glance import glance_lines
from writeup.studies.part2 import part2_section
from writeup.studies.part3 import band_figure, band_tables, setups_of
from writeup.studies.plan import RERUN, SETUP_TARGETS, experiments
from writeup.studies.remedies import remedies_section
from writeup.studies.records import Trained
from writeup.studies.stopping import stop_figure, stop_lines

FIGURES = Path("figures/studies")


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
    for name in _setup_by_setup([n for n in records if n.startswith(("part3-", "bf16-", "rerun-", "f32-"))]):
        for model, r in records[name].items():
            out.append(f"| `{name}` | {model} | {r.seed} | {r.precision} | `{r.commit}` | {r.cpu} | {r.training_data} | "
                       f"{int(r.metrics['epochs_run'])} ({int(r.metrics['best_epoch'])}) | "
                       f"{r.metrics['test_accuracy']:.4f} | {r.metrics['train_images_per_s']:.0f} |")
    return out + [""]


def studies_markdown(records: dict[str, dict[str, Trained]], command: str, figures: Path = FIGURES) -> str:
    """The whole page. `records`: experiment name -> model -> its finished, evaluated training run."""
    planned = [resolve(e, records) for e in experiments()]  # a chosen combination may train the other model
    todo = [e.name for e in planned if not set(e.models) <= set(records.get(e.name, {}))]
    out = ["# The study's experiments on the real data", "",
           f"Written by `{command}` from the MLflow records of the experiments alone, as STUDIES.json keeps them "
           f"(every figure below is one a run logged). {len(planned) - len(todo)} of {len(planned)} planned "
           "experiments have finished.", ""] + glance_lines(records)
    if todo:
        out += ["**Still to run** (`python -m scripts.studies run` resumes): " + ", ".join(f"`{t}`" for t in todo), ""]
    return "\n".join(out + part2_section(records, figures) + part3_section(records, figures)
                     + remedies_section(records, figures) + capacity_section(records))
