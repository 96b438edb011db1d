"""How cost grows: CNN training time and peak memory against the training-set size, the transfer
stage's backbone pass against its image count, and resident memory across epochs.

`python -m benchmarks.scaling` prints a Markdown section. Each size runs in a fresh process (so peak
RSS is that size's own): the stage's `train()` for 2 epochs on N generated uint8 images, the second
epoch timed; `embed()` of N images through EfficientNet-Lite0 at 224 px. Linear growth shows as a
flat time per image and a flat memory per extra image; a step that copied the whole set per epoch
or memory that grew with epochs would show as a rising column.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.child import last_line

TRAIN_SIZES = (5_000, 10_000, 20_000, 41_000)
EMBED_SIZES = (500, 1_000, 2_000, 4_000)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def train_child(n: int) -> dict:
    import keras

    from cifar10.data.dataset import Dataset
    from cifar10.schema.train import TrainParams
    from cifar10.training.fit import train
    from cifar10.training.history import EpochHistory

    rng = np.random.default_rng(0)
    data = Dataset(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64))
    marks: list[tuple[float, float]] = []

    class Marks(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            marks.append((time.perf_counter(), _rss_mb()))

    history = EpochHistory()
    started = time.perf_counter()
    cfg = TrainParams.model_validate({"epochs": 3, "early_stopping": {"patience": 10}})
    train(data, cfg, seed=0, history=history, callbacks=[Marks()])
    epoch = marks[1][0] - marks[0][0]
    images = len(data) - round(0.1 * len(data))
    return {"n": n, "epoch_s": epoch, "per_image_ms": 1000 * epoch / images,
            "rss_by_epoch": [r for _, r in marks], "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "total_s": time.perf_counter() - started}


def embed_child(n: int) -> dict:
    from benchmarks.transfer import stage_extractor
    from cifar10.training.embeddings import embed

    images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    extractor = stage_extractor()
    embed(extractor, images[:64], 64, desc="warm-up")  # tracing is a one-off cost, not per image
    started = time.perf_counter()
    embed(extractor, images, 64, desc="embed")
    seconds = time.perf_counter() - started
    return {"n": n, "seconds": seconds, "per_image_ms": 1000 * seconds / n,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(kind: str, n: int) -> dict:
    return json.loads(last_line("benchmarks.scaling", "--child", kind, str(n)))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        from cifar10.console import quiet_tensorflow

        quiet_tensorflow()
        print(json.dumps((train_child if sys.argv[2] == "train" else embed_child)(int(sys.argv[3]))))
        return
    trains = [_child("train", n) for n in TRAIN_SIZES]
    embeds = [_child("embed", n) for n in EMBED_SIZES]
    small_t, small_e = trains[0], embeds[0]
    lines = ["## How cost grows", "",
             f"Command: `.venv/bin/python -m benchmarks.scaling` on {os.cpu_count()} cores. Each row is a fresh "
             "process on generated uint8 images. CNN: the stage's `train()`, float32, 3 epochs, the second timed; "
             "RSS after each epoch. Backbone pass: `embed()` through EfficientNet-Lite0 at 224 px (batch norm folded, as the stage runs it), batch 64.", "",
             "| training images | epoch | ms per image | x smallest | RSS after epochs 1, 2, 3 | peak RSS | MiB per extra 1,000 images |",
             "| ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for t in trains:
        per_k = (t["peak_mb"] - small_t["peak_mb"]) / ((t["n"] - small_t["n"]) / 1000) if t is not small_t else float("nan")
        lines.append(f"| {t['n']:,} | {t['epoch_s']:.1f} s | {t['per_image_ms']:.2f} | "
                     f"{t['per_image_ms'] / small_t['per_image_ms']:.2f} | "
                     f"{', '.join(f'{r:,.0f}' for r in t['rss_by_epoch'])} MiB | {t['peak_mb']:,.0f} MiB | "
                     f"{'–' if t is small_t else f'{per_k:.1f}'} |")
    lines += ["", "| images embedded | time | ms per image | x smallest | peak RSS |", "| ---: | ---: | ---: | ---: | ---: |"]
    for e in embeds:
        lines.append(f"| {e['n']:,} | {e['seconds']:.1f} s | {e['per_image_ms']:.2f} | "
                     f"{e['per_image_ms'] / small_e['per_image_ms']:.2f} | {e['peak_mb']:,.0f} MiB |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
