"""The study's five part-2 claims, and how each is judged from its variants' runs (one seed each).

A claim that one variant beats another is a set of steps, each A minus B on test accuracy judged by the
one rule (writeup.studies.verdicts): it holds when every step is better, does not hold when a step is
worse, and is not distinguishable, or gets no verdict, when a step is. The optimizer's claim also needs
adam above sgd at every common epoch; the training-images claim is about one run's curve alone.
"""
from __future__ import annotations

from dataclasses import dataclass

from writeup.studies.records import Trained
from writeup.studies.uncertainty import figure_on_test
from writeup.studies.verdicts import NO_VERDICT, UNDECIDED, WORSE, Comparison, compare

CLAIMS: dict[str, str] = {
    "hidden layers": "more hidden layers give higher accuracy",
    "activation": "relu is best; sigmoid suffers (vanishing gradients)",
    "optimizer": "adam is above sgd at every epoch",
    "training images": "with 6,000 images the model overfits from about epoch 14 and early stopping ends the run",
    "convs per block": "two 3x3 convs per block beat one 3x3 and one 7x7 (deeper beats wider)",
}
# study -> the steps its claim makes: (A, B), A's test accuracy above B's
STEPS: dict[str, list[tuple[str, str]]] = {
    "hidden layers": [("1", "0"), ("2", "1")],
    "activation": [("relu", "tanh"), ("relu", "sigmoid"), ("tanh", "sigmoid")],
    "optimizer": [("adam", "sgd")],
    "convs per block": [("2x3x3", "1x3x3"), ("2x3x3", "1x7x7")],
}
HOLDS, FAILS = "holds", "does not hold"
TEST_ACCURACY = figure_on_test("test accuracy", "test_accuracy")


@dataclass(frozen=True)
class Judgement:
    verdict: str  # holds | does not hold | not distinguishable | no verdict
    steps: list[tuple[str, Comparison]]  # ("1 minus 0", its comparison)
    evidence: str  # what else it rests on (curves, epochs), or ""

    def resting(self) -> list[tuple[str, Comparison]]:
        """The steps the verdict rests on: those that decide it (all of them when it holds)."""
        decisive = {FAILS: WORSE, NO_VERDICT: NO_VERDICT, UNDECIDED: UNDECIDED}.get(self.verdict)
        found = [(label, c) for label, c in self.steps if c.verdict == decisive]
        return found or self.steps


def _overall(steps: list[Comparison]) -> str:
    verdicts = {c.verdict for c in steps}
    for found, overall in ((WORSE, FAILS), (NO_VERDICT, NO_VERDICT), (UNDECIDED, UNDECIDED)):
        if found in verdicts:
            return overall
    return HOLDS


def _seed(run: Trained) -> int:
    return int(run.seed) if run.seed.isdigit() else 0


def judge(study: str, runs: dict[str, Trained]) -> Judgement:
    """The claim's verdict from its variants' runs (variant -> run)."""
    if study == "training images":
        r = runs["6,000"]
        stopped = r.metrics["epochs_run"] < float(r.params.get("train.epochs", "50"))
        best = int(r.metrics["best_epoch"])
        return Judgement(HOLDS if stopped and 9 <= best <= 19 else FAILS, [],
                         f"6,000 images: best epoch {best} (lowest val_loss), {int(r.metrics['epochs_run'])} epochs "
                         f"run{', stopped early' if stopped else ', no early stop'}")
    steps = [(f"{a} minus {b}", compare({_seed(runs[a]): (runs[a], runs[b])}, TEST_ACCURACY)) for a, b in STEPS[study]]
    verdict, evidence = _overall([c for _, c in steps]), ""
    if study == "optimizer":
        adam, sgd = runs["adam"].curves["val_accuracy"], runs["sgd"].curves["val_accuracy"]
        n = min(len(adam), len(sgd))
        below = [e + 1 for e in range(n) if adam[e] <= sgd[e]]
        evidence = (f"val accuracy of adam above sgd at all {n} common epochs" if not below
                    else f"adam not above sgd at epoch(s) {below[:10]} of {n}")
        if below and verdict != NO_VERDICT:
            verdict = FAILS
    return Judgement(verdict, steps, evidence)
