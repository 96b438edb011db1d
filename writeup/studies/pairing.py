"""Pairs of runs for part 3's comparisons: a setup's run and its seed's defaults run, on the same training
set and, where a rerun of the defaults makes it possible, the same CPU.

Runs repeat exactly on one CPU model, not across them (float results differ in the last bits, and where
early stopping ends a run moves with them), and augment's output differs between CPUs. So a pair is two
runs of one seed on the same training set; the defaults' rerun on another CPU measures what the CPU alone
moves and, on its CPU, stands in for the defaults.
"""
from __future__ import annotations

from typing import Callable

from writeup.studies.part3 import FIGURES, Setups, kept_val_accuracy, kept_val_balanced, metric
from writeup.studies.plan import RERUN
from writeup.studies.records import Trained


def same_data(a: Trained, b: Trained) -> bool:
    """Whether two runs trained on the same bytes (a run that did not record its training set counts as the same)."""
    return "–" in (a.training_data, b.training_data) or a.training_data == b.training_data


def both(runs: dict[int, dict[str, Trained]], defaults: dict[int, dict[str, Trained]], model: str,
         same: bool) -> list[int]:
    """Seeds with a run of `model` under both, on the same training set (`same`) or on different ones."""
    return [s for s in runs if model in runs[s] and model in defaults.get(s, {})
            and same_data(runs[s][model], defaults[s][model]) == same]


def paired(runs: dict[int, dict[str, Trained]], defaults: dict[int, dict[str, Trained]], model: str,
           value: Callable[[Trained], float | None]) -> tuple[list[int], list[float]]:
    """Seeds both have a value for, on the same training set, and the setup's value minus the defaults' on each.
    Augment's output differs between CPUs, so the same seed on another CPU is another augmented set: a shift
    between such runs mixes the setup's effect with the data's, and they are not paired."""
    pairs = [(s, value(runs[s][model]), value(defaults[s][model])) for s in both(runs, defaults, model, True)]
    pairs = [(s, a, b) for s, a, b in pairs if a is not None and b is not None]
    return [s for s, _, _ in pairs], [a - b for _, a, b in pairs]


def apart_line(runs: dict[int, dict[str, Trained]], defaults: dict[int, dict[str, Trained]], model: str) -> str:
    """The seeds whose run trained on another training set than the defaults' run of that seed, or ""."""
    apart = both(runs, defaults, model, False)
    if not apart:
        return ""
    return " Not paired (another training set than the defaults' run of the seed, so not a like-for-like shift): " + \
        "; ".join(f"seed {s} trained on {runs[s][model].training_data} ({runs[s][model].cpu}), the defaults on "
                  f"{defaults[s][model].training_data} ({defaults[s][model].cpu})" for s in apart) + "."


def _shifts(a: Trained, b: Trained) -> str:
    """Every figure of run `a` minus run `b`: the kept weights' validation figures, then the test figures."""
    def diff(value: Callable[[Trained], float | None]) -> str:
        x, y = value(a), value(b)
        return "–" if x is None or y is None else f"{x - y:+.3f}"

    return (f"kept weights' val balanced accuracy {diff(kept_val_balanced)}, val accuracy {diff(kept_val_accuracy)}; "
            "test " + "; ".join(f"{label} {diff(metric(key))}" for label, key, _ in FIGURES))


def _scores(r: Trained) -> dict[str, float]:
    return {k: v for k, v in r.metrics.items() if k.startswith("test_") or k in ("epochs_run", "best_epoch")}


def rerun_lines(setups: Setups, model: str) -> list[str]:
    """The defaults' run of a seed against its rerun: on one CPU whether a run repeats exactly, across two
    what the CPU alone moves (with the augmented set it made, where that differs)."""
    runs, defaults = setups.get(RERUN, {}), setups["defaults"]
    out = []
    for s in sorted(s for s in runs if model in runs[s] and model in defaults.get(s, {})):
        a, b = runs[s][model], defaults[s][model]
        where = f"both on {a.cpu}" if a.cpu == b.cpu else f"on {a.cpu} against {b.cpu}"
        what = ("the same setup, seed and training set" if same_data(a, b) else
                f"the same setup and seed, trained on {a.training_data} against {b.training_data}")
        head = f"  - {RERUN} minus the defaults (seed {s}, {what}, {where}): "
        if a.curves == b.curves and _scores(a) == _scores(b):  # the speed is the machine's load, not the run's
            out.append(head + "identical per-epoch curves and test figures, so a run repeats exactly " + (
                "there." if a.cpu == b.cpu else "across these two CPUs: a shift between them is the setup's alone."))
            continue
        line = (head + f"{int(a.metrics['epochs_run'])} epochs (best {int(a.metrics['best_epoch'])}) against "
                f"{int(b.metrics['epochs_run'])} ({int(b.metrics['best_epoch'])}); {_shifts(a, b)}.")
        if a.cpu == b.cpu:
            line += " Not identical on one CPU: runs do not repeat exactly there."
        elif same_data(a, b):
            line += " What the CPU alone moves: a shift between runs on these two CPUs includes it."
        else:
            line += (" What the CPU and the augmented set it made move together (augment's output differs between "
                     "CPUs).")
        out.append(line)
    return out


def crossed(runs: dict[int, dict[str, Trained]], defaults: dict[int, dict[str, Trained]], model: str,
            seeds: list[int]) -> list[int]:
    """The seeds among `seeds` whose two runs trained on different CPUs."""
    return [s for s in seeds if runs[s][model].cpu != defaults[s][model].cpu]


def cpu_shift(setups: Setups, model: str) -> float | None:
    """How far the CPU alone moved the kept weights' val balanced accuracy (the rerun across CPUs), if measured."""
    runs, defaults = setups.get(RERUN, {}), setups["defaults"]
    across = {s: runs[s] for s in crossed(runs, defaults, model, both(runs, defaults, model, True))}
    moved = paired(across, defaults, model, kept_val_balanced)[1]
    return max(map(abs, moved)) if moved else None


def partners(setup: str, setups: Setups, model: str) -> dict[int, dict[str, Trained]]:
    """Per seed, the runs a setup's run is set against: the defaults' own, or their rerun where only the rerun
    trained on the setup run's CPU and training set (a pair on one CPU keeps the CPU's share out)."""
    runs, out = setups[setup], dict(setups["defaults"])
    for s, again in setups.get(RERUN, {}).items():
        mine, theirs = runs.get(s, {}).get(model), out.get(s, {}).get(model)
        if (mine and model in again and theirs and theirs.cpu != mine.cpu and again[model].cpu == mine.cpu
                and same_data(mine, again[model])):
            out[s] = {**out[s], model: again[model]}
    return out


def cpu_note(runs: dict[int, dict[str, Trained]], defaults: dict[int, dict[str, Trained]], model: str,
             seeds: list[int], moved: float | None) -> str:
    """Which pairs are set against the rerun, and which cross CPUs (with what the CPU alone moved, `moved`, if
    the rerun measured it)."""
    again = [s for s in seeds if defaults[s][model].experiment.startswith("rerun-")]
    apart = crossed(runs, defaults, model, seeds)
    note = "".join(f" Seed {s} is set against the defaults' rerun, which trained on the same CPU." for s in again)
    if apart:
        cpus = sorted({f"{runs[s][model].cpu} against {defaults[s][model].cpu}" for s in apart})
        seeds_ = f"Seeds {', '.join(map(str, apart))} pair" if len(apart) > 1 else f"Seed {apart[0]} pairs"
        share = ("not measured yet" if moved is None
                 else f"{moved:.3f} of the kept weights' val balanced accuracy in the defaults' rerun")
        note += f" {seeds_} runs of two CPUs ({'; '.join(cpus)}): the shift includes what the CPU alone moves ({share})."
    return note
