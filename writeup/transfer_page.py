"""TRANSFER.md, the page of `scripts.transfer_study`, rendered from the study's records alone.

A record holds, per step, its validation accuracies, its cost and the config it ran; `deeper` holds
the trials of `--deeper` the same way. Every figure on the page is one of those.
"""
from __future__ import annotations

import json


def markdown(result: dict, command: str, machine: str, commit: str) -> str:
    """TRANSFER.md from a study's records: every figure below is one the study measured."""
    deeper = result.get("deeper")
    final = deeper if deeper and deeper["chosen"] else result
    chosen = next(r for r in final["steps"] if r["step"] == final["chosen"])
    settings = {k: v for k, v in chosen["config"].items() if k in (
        "flip_train", "flip_test", "head", "schedule", "restore_best", "epochs", "fine_tune_blocks",
        "fine_tune_learning_rate", "fine_tune_epochs")}
    lines = [
        "# Transfer learning with EfficientNet-Lite0: what each step adds",
        "",
        (f"Written by `{command}` from its own measurements (commit `{commit[:10]}`, {machine}). "
         f"{result['train_images']:,} training and {result['val_images']:,} validation images (the stage's stratified "
         f"split of the full training set), 224 px, the ImageNet Lite0 of the pinned wheel. Each step is measured on "
         "the validation split and kept only if it raises validation accuracy; the test set is used once, at the end."),
        "",
        *_table(result),
        "",
        _cost_line(result),
        "",
        f"**Chosen on validation:** {result['chosen']}.",
        "",
        (f"**Test set, once** ({result['test_images']:,} images): the study's head on frozen features "
         f"{result['test']['floor']:.4f}; the chosen recipe **{result['test']['chosen']:.4f}** (the study's "
         "EfficientNet-B0: 0.87)."),
        "",
    ]
    if deeper:
        lines += _deeper_section(deeper, result, command)
    return "\n".join([*lines, f"**The chosen recipe:** `{json.dumps(settings)}`.", "", _defaults_line(settings), ""])


def _deeper_section(deeper: dict, first: dict, command: str) -> list[str]:
    trials = ",".join(f"{c['fine_tune_blocks']}:{c['fine_tune_learning_rate']:g}:{c['fine_tune_epochs']}"
                      for c in (r["config"] for r in deeper["steps"]))
    rows = []
    for r in deeper["steps"]:
        gain = r["val"] - deeper["first_chosen_val"]
        cost = (r["extra_pass_seconds"] + r["train_seconds"]) / 60
        rows.append(f"| {r['step']} | {r['val_before_fine_tune']:.4f} | {r['val_accuracy_final']:.4f} | "
                    f"{r['val_accuracy_flip_average']:.4f} | {gain:+.4f} | "
                    f"{'yes' if r['step'] == deeper['chosen'] else 'no'} | {cost:.1f} |")
    if deeper["chosen"]:
        tested = (f"**Test set, once** ({deeper['test_images']:,} images): the recipe chosen here "
                  f"**{deeper['test']['chosen']:.4f}** (the recipe chosen above: {first['test']['chosen']:.4f}; the "
                  "study's EfficientNet-B0: 0.87).")
    else:
        tested = "No trial beat the recipe chosen above on validation, so the test set was not used again."
    return [
        "## Fine-tuning deeper",
        "",
        (f"Written by `{command} --deeper {trials}` (commit `{deeper['commit'][:10]}`, "
         f"{deeper['machine']}): the recipe "
         "chosen above with more blocks fine-tuned, on one more pass cut below the deepest trial. A trial is kept "
         f"if it beats the recipe chosen above on validation ({deeper['first_chosen_val']:.4f} with mirror-image "
         "averaging; the same split and seed). The head alone, trained on this pass before fine-tuning, is the "
         "first table's cosine-schedule row again: the difference is the float16 cache stored at another depth."),
        "",
        "| trial | head alone, this pass | validation accuracy | with mirror-image averaging | gain over the recipe "
        "above | kept | cost (min) |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
        *rows,
        "",
        _cost_line(deeper),
        "",
        tested,
        "",
    ]


def _table(result: dict) -> list[str]:
    rows, best = [], 0.0
    for r in result["steps"]:
        gain = r["val"] - best if best else 0.0
        kept = "yes" if r["step"] == result["chosen"] or (best and r["val"] > best) else ("base" if not best else "no")
        best = max(best, r["val"])
        cost = (r["extra_pass_seconds"] + r["train_seconds"]) / 60
        tta = f"{r['val_accuracy_flip_average']:.4f}" if "val_accuracy_flip_average" in r else "–"
        rows.append(f"| {r['step']} | {r['val_accuracy_final']:.4f} | {tta} | {gain:+.4f} | {kept} | {cost:.1f} |")
    header = "| step | validation accuracy | with mirror-image averaging | gain over the best so far | kept | cost (min) |"
    return [header, "| --- | ---: | ---: | ---: | --- | ---: |", *rows]


def _cost_line(result: dict) -> str:
    return ("Cost: minutes this run spent on the step: the extra images through the backbone (at the measured "
            f"{1 / result['pass_seconds_per_image']:.0f} images/s) plus the head or fine-tuning epochs on the cache "
            f"(1-minute load average at the end: {result['load_average']:.1f} on {result['cores']} cores; the stage's "
            "own cost, measured alone, is in RESULTS.md and BENCHMARKS.md).")


def _defaults_line(settings: dict) -> str:
    """How params.yaml's transfer defaults differ from the chosen recipe, and the command that takes it."""
    from cifar10.schema.transfer import TransferParams

    defaults = TransferParams().model_dump()
    differ = {k: v for k, v in settings.items() if defaults.get(k) != v}
    if not differ:
        return "**params.yaml's defaults are the chosen recipe.**"
    listed = ", ".join(f"`{k}` {json.dumps(defaults.get(k))} (chosen {json.dumps(v)})" for k, v in differ.items())
    sets = " ".join(f"-S 'transfer.{k}={json.dumps(v)}'" for k, v in differ.items())
    return (f"**params.yaml's defaults** differ from the chosen recipe in {listed}. "
            f"To run the chosen recipe: `dvc exp run {sets}`.")
