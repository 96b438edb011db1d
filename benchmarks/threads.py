"""Benchmark of TensorFlow's process-wide CPU settings on two cores: thread pools and oneDNN.

`python -m benchmarks.threads` prints a Markdown section. Thread-pool sizes and oneDNN switches take
effect only before TensorFlow starts, so each setting runs in a fresh process; the settings take
turns (in alternating order, round after round), and each one's speed is the median over all its
rounds. Measured per setting: CNN training (the stage path: fused batch norm, float32, epochs of 40
steps of batch 64 from fit() to the end of the input iterator) and the transfer stage's backbone
pass (EfficientNet-Lite0 at 224 px, batch norm folded, batch 64).
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from benchmarks.child import last_line

ROUNDS = 3
EPOCHS = 4  # timed CNN epochs per process, after one to trace
EMBED_IMAGES = 256
# (label, intra-op threads, inter-op threads, environment); 0 lets TensorFlow choose (one per core).
SETTINGS = [
    ("TensorFlow's choice (intra 0, inter 0): the stages' setting", 0, 0, {}),
    ("intra 2, inter 1", 2, 1, {}),
    ("intra 1, inter 2", 1, 2, {}),
    ("intra 1, inter 1", 1, 1, {}),
    ("oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`)", 0, 0, {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    ("oneDNN blocked layouts (`TF_ENABLE_MKL_NATIVE_FORMAT=0`)", 0, 0, {"TF_ENABLE_MKL_NATIVE_FORMAT": "0"}),
]


def child(intra: int, inter: int) -> dict:
    """In a fresh process: CNN training epochs and one Lite0 pass under these thread pools."""
    from cifar10.console import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    from benchmarks.train import BATCH, STEPS, compiled, epoch_runner, images
    from benchmarks.transfer import stage_extractor
    from cifar10.training.embeddings import embed

    x, y = images(STEPS * BATCH)
    run = epoch_runner(compiled("float32", True), x, y, STEPS, autotune=False)
    run()  # trace
    train = [STEPS * BATCH / run() for _ in range(EPOCHS)]
    extractor = stage_extractor()
    embed(extractor, x[:64], 64, desc="warm-up")
    started = time.perf_counter()
    embed(extractor, x[:EMBED_IMAGES], 64, desc="pass")
    return {"train": float(np.median(train)), "embed": EMBED_IMAGES / (time.perf_counter() - started)}


def _run(intra: int, inter: int, env: dict) -> dict:
    return json.loads(last_line("benchmarks.threads", "--child", str(intra), str(inter), env=env))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(int(sys.argv[2]), int(sys.argv[3]))))
        return
    from cifar10.tracking.provenance import cpu_model

    results: dict[str, list[dict]] = {label: [] for label, *_ in SETTINGS}
    for i in range(ROUNDS):
        for label, intra, inter, env in SETTINGS if i % 2 == 0 else SETTINGS[::-1]:
            results[label].append(_run(intra, inter, env))
    base = SETTINGS[0][0]

    def cell(label: str, key: str) -> str:
        values = [r[key] for r in results[label]]
        # Ratios pair each round's runs, which ran minutes apart at most, against drifting load.
        ratio = np.median([r[key] / b[key] for r, b in zip(results[label], results[base])])
        return f"{np.median(values):.0f} ({min(values):.0f}-{max(values):.0f}) | {ratio:.2f}"

    lines = [
        "## Thread pools and oneDNN", "",
        f"Command: `.venv/bin/python -m benchmarks.threads` on {os.cpu_count()} cores ({cpu_model()}). Each setting in "
        f"a fresh process, {ROUNDS} rounds taking turns; CNN training: medians of {EPOCHS} epochs of 40 steps of batch 64 "
        f"per process (float32, the stage path); Lite0 pass: {EMBED_IMAGES} images at 224 px, batch norm folded. "
        "Cells: median over the rounds (min-max); ratios are medians of the per-round ratios.", "",
        "| setting | CNN training images/s | x the stages' setting | Lite0 pass images/s | x the stages' setting |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, *_ in SETTINGS:
        lines.append(f"| {label} | {cell(label, 'train')} | {cell(label, 'embed')} |")
    # A setting counts as faster only if every round of it beat every round of the stages' setting:
    # between fresh processes the spread is several percent on this shared machine.
    measures = {"train": "CNN training", "embed": "Lite0 pass"}
    top = {key: max(r[key] for r in results[base]) for key in measures}
    faster = [f"{label} ({measures[key]})" for label, *_ in SETTINGS[1:] for key in measures
              if min(r[key] for r in results[label]) > top[key]]
    lines += ["", "Faster than the stages' setting in every round: " + (", ".join(faster) if faster else
              "none; the stages keep TensorFlow's choice with oneDNN on.")]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
