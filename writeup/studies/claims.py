"""The study's five part-2 claims, and how each is judged from its variants' runs."""
from __future__ import annotations

from typing import Callable

from writeup.studies.records import Trained

CLAIMS: dict[str, str] = {
    "hidden layers": "more hidden layers give higher accuracy",
    "activation": "relu is best; sigmoid suffers (vanishing gradients)",
    "optimizer": "adam is above sgd at every epoch",
    "training images": "with 6,000 images the model overfits from about epoch 14 and early stopping ends the run",
    "convs per block": "two 3x3 convs per block beat one 3x3 and one 7x7 (deeper beats wider)",
}


def _chain(labels: list[str], values: list[float]) -> str:
    """`a < b > c`: each neighbouring pair joined by its true relation."""
    out = labels[0]
    for i in range(1, len(values)):
        sign = "<" if values[i - 1] < values[i] else (">" if values[i - 1] > values[i] else "=")
        out += f" {sign} {labels[i]}"
    return out


def verdicts() -> dict[str, Callable[[dict[str, Trained]], tuple[bool, str, float | None]]]:
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
