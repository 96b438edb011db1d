"""The one rule behind every "A beats B" on STUDIES.md: runs paired by seed, like for like, each difference
set against the figure's 95% interval.

A pair is two runs of one seed. Float results differ between CPU models, the training code changes
between some commits (code_version.py says which), and augment's output once differed between CPUs, so a
pair whose runs differ in CPU model, training code or training set (where the comparison does not itself change the training set) mixes what it compares with
something else: it is shown, named, and left out of the verdict.
"""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from writeup.studies.code_version import same_training_code
from writeup.studies.records import Trained
from writeup.studies.uncertainty import Figure

BETTER, WORSE, UNDECIDED, NO_VERDICT = "better", "worse", "not distinguishable", "no verdict"
RULE = ("Every comparison pairs runs of one seed, A minus B. A pair whose runs differ in CPU model, training code "
        "(the files the train stage imports, at each run's commit) or training set (beyond what the comparison "
        "itself changes) is named and left out. Over the pairs left: "
        "**better** when every difference is above zero and their mean above the yardstick, **worse** when every "
        "difference is below zero and their mean below minus the yardstick, else **not distinguishable**; with no "
        "pair left, or no interval for the figure, **no verdict**. The yardstick is the largest half-width of the "
        "95% intervals of the runs paired. One seed is one pair: its difference must pass the yardstick alone.")


def verdict(diffs: list[float], yardstick: float | None) -> str:
    """The rule's verdict on like-for-like paired differences (A minus B)."""
    if not diffs or yardstick is None:
        return NO_VERDICT
    mean = statistics.mean(diffs)
    if all(d > 0 for d in diffs) and mean > yardstick:
        return BETTER
    if all(d < 0 for d in diffs) and mean < -yardstick:
        return WORSE
    return UNDECIDED


def cpu_kind(run: Trained) -> str:
    """A short name of the CPU model: `Xeon 6/207`, `EPYC 25/17`."""
    found = re.search(r"family (\d+) model (\d+)", run.cpu)
    if not found:
        return run.cpu
    maker = next((w for w in ("Xeon", "EPYC", "Ryzen", "Core") if w in run.cpu), run.cpu.split()[0])
    return f"{maker} {found[1]}/{found[2]}"


def differences(a: Trained, b: Trained, same_data: bool = True) -> list[str]:
    """What besides the compared setting differs between two runs (empty: like for like). A run that did not
    record its training set counts as on the same one. `same_data`: whether the comparison keeps the training
    set (False where it is what changes, e.g. one remedy's augmented set against another's)."""
    out = []
    if a.cpu != b.cpu:
        out.append(f"CPU {cpu_kind(a)} / {cpu_kind(b)}")
    if not same_training_code(a.commit, b.commit):
        out.append(f"code {a.commit[:7]} / {b.commit[:7]}")
    if same_data and "–" not in (a.training_data, b.training_data) and a.training_data != b.training_data:
        out.append(f"training set {a.training_data} / {b.training_data}")
    return out


@dataclass(frozen=True)
class Comparison:
    """A figure of runs A minus runs B, seed by seed, and the rule's verdict on the like-for-like pairs."""

    figure: str
    diffs: dict[int, float]  # seed -> A minus B, every pair with both values
    mixed: dict[int, list[str]]  # seed -> what else differs, the pairs left out
    yardstick: float | None  # over the like-for-like pairs
    verdict: str

    @property
    def judged(self) -> dict[int, float]:
        return {s: d for s, d in self.diffs.items() if s not in self.mixed}

    def shift(self) -> str:
        """`+0.020 (+0.010 to +0.030)` over the judged pairs (all pairs when none is like for like); one: `+0.010`."""
        values = list((self.judged or self.diffs).values())
        if not values:
            return "–"
        if len(values) == 1:
            return f"{values[0]:+.3f}"
        return f"{statistics.mean(values):+.3f} ({min(values):+.3f} to {max(values):+.3f})"

    def why(self, detail: bool = False) -> str:
        """Why there is no verdict, or which pairs were left out: "" when every pair was judged. `detail`: name
        what differs (`code 1e5d3c1 / 8e67e93`), not only its kind (`code`)."""
        if not self.diffs:
            return "no pair"
        left = [s for s in self.diffs if s in self.mixed]
        if detail:
            what = "; ".join((f"seed {s}: " if len(self.mixed) > 1 else "") + ", ".join(self.mixed[s]) for s in left)
        else:
            what = _kinds(self.mixed)
        if not self.judged:
            return "mixes " + what
        if self.yardstick is None:
            return "no interval"
        return f"seed{'s' * (len(left) > 1)} {', '.join(map(str, left))} left out: {what}" if left else ""

    def sentence(self, label: str) -> str:
        """`2 minus 1: -0.032 against a yardstick of 0.008: **worse**`, and what was left out, named."""
        text = f"{label}: {self.shift()}"
        if self.judged and self.yardstick is not None:
            text += f" against a yardstick of {self.yardstick:.3f}"
        why = self.why(detail=True)
        return text + f": **{self.verdict}**" + (f" ({why})" if why else "")

    def cell(self) -> str:
        """A table cell: the shift, the seeds it rests on where some were left out, the verdict."""
        seeds = "" if len(self.judged) in (0, len(self.diffs)) else (
            f" on seed{'s' * (len(self.judged) > 1)} {', '.join(map(str, self.judged))}")
        why = self.why()
        return f"{self.shift()}{seeds}: {self.verdict}" + (f" ({why})" if why else "")

    def per_seed(self) -> str:
        """Every pair's difference, `42: +0.010, 43: +0.020*` (* left out)."""
        return ", ".join(f"{s}: {d:+.3f}{'*' * (s in self.mixed)}" for s, d in sorted(self.diffs.items()))


def _kinds(mixed: dict[int, list[str]]) -> str:
    """The kinds of difference behind left-out pairs: `code`, `CPU, code, training set`."""
    kinds = sorted({what.split()[0] for found in mixed.values() for what in found},
                   key=["CPU", "code", "training"].index)
    return ", ".join({"training": "training set"}.get(k, k) for k in kinds)


def compare(pairs: dict[int, tuple[Trained, Trained]], figure: Figure, same_data: bool = True) -> Comparison:
    """A's figure minus B's on each seed's pair (A, B), and the rule's verdict on the like-for-like pairs."""
    diffs, mixed, halves = {}, {}, []
    for seed, (a, b) in sorted(pairs.items()):
        x, y = figure.value(a), figure.value(b)
        if x is None or y is None:
            continue
        diffs[seed] = x - y
        if found := differences(a, b, same_data):
            mixed[seed] = found
        else:
            halves += [figure.half_width(a), figure.half_width(b)]
    yardstick = None if not halves or None in halves else max(halves)
    return Comparison(figure.label, diffs, mixed, yardstick,
                      verdict([d for s, d in diffs.items() if s not in mixed], yardstick))


def against_reference(runs: dict[int, Trained], reference: float, figure: Figure) -> Comparison:
    """Runs against one published figure (the study's): each run's value minus it, judged by the same rule with
    the runs' own intervals (the study's figure has none)."""
    diffs = {s: v - reference for s, r in sorted(runs.items()) if (v := figure.value(r)) is not None}
    halves = [figure.half_width(r) for r in runs.values() if figure.value(r) is not None]
    yardstick = None if not halves or None in halves else max(halves)
    return Comparison(figure.label, diffs, {}, yardstick, verdict(list(diffs.values()), yardstick))
