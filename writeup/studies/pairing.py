"""Pairs of runs for part 3's comparisons: a setup's run of a seed and a defaults run of that seed, and a
bfloat16 run and its float32 partner.

Runs repeat exactly on one CPU model, not across them (float results differ in the last bits, and where
early stopping ends a run moves with them), code changes between commits, and augment's output once
differed between CPUs. So a setup's run is set against whichever defaults run of its seed differs from it
least (the defaults' own, or their rerun on another CPU); the verdict rule (writeup.studies.verdicts)
names and leaves out a pair that still differs in more than the setup.
"""
from __future__ import annotations

from writeup.studies.part3 import Setups
from writeup.studies.plan import MIXED, PARTNER, RERUN
from writeup.studies.records import Trained
from writeup.studies.verdicts import differences


def _closest(mine: Trained, candidates: list[Trained]) -> Trained:
    """The candidate that differs from `mine` in the fewest respects (the first on ties: the defaults' own)."""
    return min(candidates, key=lambda other: len(differences(mine, other)))


def pairs(setup: str, setups: Setups, model: str) -> dict[int, tuple[Trained, Trained]]:
    """seed -> (the setup's run, what it is set against): bfloat16's float32 partner for bfloat16, else the
    closest of the defaults' run and their rerun."""
    runs = setups.get(setup, {})
    out = {}
    for seed in sorted(runs):
        mine = runs[seed].get(model)
        if mine is None:
            continue
        if setup == MIXED:
            candidates = [r for r in (setups.get(PARTNER, {}).get(seed, {}).get(model),) if r]
        else:
            candidates = [r for key in ("defaults", RERUN) if key != setup
                          and (r := setups.get(key, {}).get(seed, {}).get(model))]
        if candidates:
            out[seed] = (mine, _closest(mine, candidates))
    return out


def _scores(r: Trained) -> dict[str, float]:
    return {k: v for k, v in r.metrics.items() if k.startswith("test_") or k in ("epochs_run", "best_epoch")}


def identical(a: Trained, b: Trained) -> bool:
    """Whether two runs trained alike: the same per-epoch curves and test figures (speed is the machine's load)."""
    return a.curves == b.curves and _scores(a) == _scores(b)
