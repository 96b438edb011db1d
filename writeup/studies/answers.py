"""The top of STUDIES.md: the questions a reader comes for, each answered in a few words beside the figure it
rests on with its interval. Every answer comes from a section below, by the same rule."""
from __future__ import annotations

from cifar10.reporting.reference import STUDY
from writeup.studies.claims import FAILS, HOLDS, Judgement
from writeup.studies.gap import WAITS, against_study, bf16_waits, columns, setup_comparison
from writeup.studies.part2 import judgements
from writeup.studies.part3 import FIGURES, MODELS, Setups, compared_figures, setups_of
from writeup.studies.plan import MIXED, RERUN, SEEDS
from writeup.studies.records import Trained
from writeup.studies.remedies import (GOAL, LABEL, TESTS, VALIDATION, misses_goal, ranking, reaches_goal,
                                      remedy_runs)
from writeup.studies.uncertainty import mean_with
from writeup.studies.verdicts import BETTER, NO_VERDICT, UNDECIDED, WORSE

Row = tuple[str, str, str]  # question, answer, the figure it rests on


def _listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def study_rows(setups: Setups) -> list[Row]:
    """Does each of the study's CNNs reach its published figures: ours over the default seeds against them."""
    rows = []
    for model in MODELS:
        runs = [r[model] for r in setups["defaults"].values() if model in r]
        if not runs:
            continue
        judged = {label: against_study(setups, model, label) for label, _, _ in FIGURES}
        named = {v: [label for label, c in judged.items() if c.verdict == v] for v in (WORSE, BETTER, UNDECIDED)}
        parts = [f"{word} on {_listed(named[v])}" for v, word in ((WORSE, "below it"), (BETTER, "above it"),
                                                                   (UNDECIDED, "not distinguishable")) if named[v]]
        unjudged = [label for label, c in judged.items() if c.verdict == NO_VERDICT]
        answer = ("No: " if named[WORSE] else "") + "; ".join(parts) + (
            f"; {_listed(unjudged)}: no interval" if unjudged else "")
        accuracy = compared_figures()[0]
        rows.append((f"Does the study's {model} CNN reach its published figures ({len(runs)} seeds)?", answer,
                     f"test accuracy {mean_with(runs, accuracy)} against the study's {STUDY[model]['accuracy']:.2f}"))
    return rows


def setup_row(setups: Setups) -> list[Row]:
    """Does any candidate setup of part 3 move test accuracy, like for like with the defaults."""
    candidates = [s for s in columns(setups) if s not in (RERUN, MIXED)]
    found = [(s, m, c) for s in candidates for m in MODELS
             if (c := setup_comparison(s, setups, m, compared_figures()[0]))]
    if not found:
        return []
    pairs = sum(len(c.diffs) for _, _, c in found)
    like = sum(len(c.judged) for _, _, c in found)
    judged = [f"{s} ({m}): {c.verdict}" for s, m, c in found if c.verdict != NO_VERDICT]
    answer = ("; ".join(judged) if judged else
              "Not judged: every pair with the defaults differs in CPU model, training code or training set as well")
    return [("Does a setup of part 3 (early stopping, validation split) move test accuracy?", answer,
             f"like-for-like pairs with the defaults: {like} of {pairs}")]


def bf16_row(setups: Setups) -> list[Row]:
    found = {m: c for m in MODELS if (c := setup_comparison(MIXED, setups, m, compared_figures()[0]))}
    if not found:
        return []
    if any(bf16_waits(c) for c in found.values()):
        answer = WAITS[0].upper() + WAITS[1:] + f" ({min(len(c.judged) for c in found.values())} of {len(SEEDS)} " \
                                                "like-for-like pairs)"
    else:
        answer = "; ".join(f"{m}: {c.verdict}" for m, c in found.items())
    rests = "; ".join(f"{m} {c.shift()}" + (f" (seed {', '.join(map(str, c.judged))})" if len(c.judged) == 1 else "")
                      for m, c in found.items())
    yard = max((c.yardstick for c in found.values() if c.yardstick is not None), default=None)
    return [("Does training in bfloat16 change test accuracy (against a float32 partner of the same seed, CPU "
             "model, training code and training set)?", answer,
             f"bfloat16 minus float32, test accuracy: {rests}" + (f"; yardstick {yard:.3f}" if yard else ""))]


def remedy_rows(records: dict[str, dict[str, Trained]]) -> list[Row]:
    runs = remedy_runs(records)
    if not runs:
        return []
    ranked = ranking(runs)
    rows = []
    if ranked.order:
        verdicts = ranked.by_verdict()
        said = {WORSE: "above {}", UNDECIDED: "not distinguishable from {}", BETTER: "below {}",
                NO_VERDICT: "no verdict against {} (pairs that mix)"}
        answer = ranked.first + "".join(f"; {said[v].format(_listed(names))}" for v, names in verdicts.items())
        if ranked.tuned:
            answer += f"; {_listed(ranked.tuned)} not ranked (tuned on the ranking's own split, until rerun)"
        rows.append(("Which remedy for the imbalance ranks first on validation?", answer,
                     f"validation balanced accuracy {mean_with(list(runs[ranked.first].values()), VALIDATION)}"))
    reached = [n for n, seeds in runs.items() if reaches_goal(seeds)]
    goal = " / ".join(f"{v:.2f}" for v in GOAL.values())
    question = f"Does any remedy reach the goal ({', '.join(LABEL.values())} >= {goal})?"
    if reached:
        rests = "; ".join(f"{n}: " + ", ".join(f"{f.label} {mean_with(list(runs[n].values()), f)}" for f in TESTS[1:])
                          for n in reached)
        rows.append((question, f"Yes: {_listed(reached)}", rests))
        return rows
    shared = set.intersection(*(set(misses_goal(seeds)) for seeds in runs.values()))
    if shared:
        label = next(k for k in GOAL if LABEL[k] in shared)
        best = max(runs, key=lambda n: sum(r.metrics[label] for r in runs[n].values()) / len(runs[n]))
        figure = next(f for f in TESTS if f.label == LABEL[label])
        rows.append((question, f"No: every remedy's {LABEL[label]} is below {GOAL[label]:.2f} on every seed",
                     f"the highest {LABEL[label]}: {best}, {mean_with(list(runs[best].values()), figure)}"))
    else:
        rows.append((question, "Not reached on the means; not every shortfall passes the runs' intervals",
                     "the remedies section"))
    return rows


def part2_row(records: dict[str, dict[str, Trained]]) -> list[Row]:
    found = {s: j for s, j in judgements(records).items() if isinstance(j, Judgement)}
    if not found:
        return []
    counts: dict[str, list[str]] = {}
    for study, judged in found.items():
        counts.setdefault(judged.verdict, []).append(study)
    answer = "; ".join(f"{verdict}: {_listed(names)}" for verdict, names in counts.items())
    decided = [(s, j) for s, j in found.items() if j.verdict in (HOLDS, FAILS) and j.steps]
    rests = "; ".join(f"{s}, {label}: test accuracy {c.shift()}, yardstick {c.yardstick:.3f}"
                      for s, j in decided for label, c in j.resting() if c.yardstick is not None)
    return [("Do the study's part-2 claims hold here (one seed a variant)?", answer, rests or "the part-2 table")]


def answer_lines(records: dict[str, dict[str, Trained]]) -> list[str]:
    """`## Answers` and its table; nothing while no run has finished."""
    setups = setups_of(records)
    rows = study_rows(setups) + part2_row(records) + setup_row(setups) + bf16_row(setups) + remedy_rows(records)
    if not rows:
        return []
    return ["## Answers", "", "| question | answer | the figure it rests on |", "| --- | --- | --- |",
            *(f"| {q} | {a} | {f} |" for q, a, f in rows), ""]
