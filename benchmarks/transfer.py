"""Benchmark of the transfer stage: cached features vs fitting through the frozen backbone, and peak memory.

Run: .venv/bin/python -m benchmarks.transfer [--images 512] [--size 224] [--epochs 20]

(a) the stage's method (`train_transfer`: one backbone pass, head epochs on cached features) and
(b) the study's method (fit the whole model, backbone frozen, for the same epochs; run for 2 epochs,
the second timed and extrapolated) side by side in one process on the same images. Peak RSS is
measured in a fresh subprocess holding a full-size 60,000-image set while embedding its first images
and training the head one epoch on full-size features. Random pixels and random weights: speed and
memory do not depend on either.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
FULL_SET = 60_000


def _data(n: int, seed: int):
    from cifar10.data.dataset import Dataset

    rng = np.random.default_rng(seed)
    return Dataset(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n, dtype=np.int64) % 10)


def _cfg(size: int, epochs: int):
    from cifar10.schema.transfer import TransferParams

    return TransferParams(weights="none", image_size=size, epochs=epochs)


def speed(n_images: int, size: int, epochs: int, repeats: int) -> dict:
    import keras

    from cifar10.models import transfer as tm
    from cifar10.training.embeddings import embed
    from cifar10.training.distribution import make_cluster
    from cifar10.training.transfer import train_transfer

    train, test = _data(n_images, 0), _data(max(n_images // 8, 10), 1)
    cfg = _cfg(size, epochs)
    stage, passes = [], []
    for _ in range(repeats):
        keras.backend.clear_session()
        started = time.perf_counter()
        result = train_transfer(train, cfg, None, seed=0, cluster=make_cluster("none"))
        stage.append(time.perf_counter() - started)
        extractor = result.model.get_layer("extractor")  # warm: traced by the stage run
        started = time.perf_counter()
        embed(extractor, np.concatenate([train.x, test.x]), cfg.embed_batch_size, desc="one pass")
        passes.append(time.perf_counter() - started)

    # The study's method: the whole model (frozen backbone inside) fitted on images every epoch.
    keras.backend.clear_session()
    backbone = tm.build_backbone(size, None)
    head = tm.build_head(cfg.head.units, cfg.head.activation, cfg.head.dropout)  # the study had no scaling
    whole = tm.build_whole(tm.build_extractor(backbone, size), head)
    whole.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    epoch_times: list[float] = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: epoch_times.append(-time.perf_counter()),
        on_epoch_end=lambda e, logs: epoch_times.__setitem__(-1, epoch_times[-1] + time.perf_counter()),
    )
    whole.fit(train.x, train.y, batch_size=cfg.batch_size, epochs=2, verbose=0, callbacks=[timer],
              validation_split=cfg.validation_split)
    started = time.perf_counter()
    whole.predict(test.x, batch_size=cfg.embed_batch_size, verbose=0)
    study_test = time.perf_counter() - started
    study = epoch_times[1] * epochs + study_test  # epoch 2: traced already, the steady per-epoch cost
    return {"stage": statistics.median(stage), "pass": statistics.median(passes), "study": study,
            "study_epoch": epoch_times[1], "study_first_epoch": epoch_times[0], "n": len(train) + len(test),
            "timings": result.timings}


def memory_probe(n_embed: int, size: int) -> None:
    """In a fresh process: full-size uint8 set in memory, embed its first images, head epoch on full features."""
    from cifar10.models import transfer as tm
    from cifar10.data.splits import split_rows
    from cifar10.training.embeddings import embed

    full = _data(FULL_SET, 2)
    extractor = tm.build_extractor(tm.build_backbone(size, None), size)
    features, rate = embed(extractor, full.x[:n_embed], 64, desc="memory probe")
    cached = np.resize(features, (FULL_SET, features.shape[1]))  # the size the full pass would cache
    tr, val = split_rows(full.y, 0.1, 0)
    head = tm.build_head([256, 256], "relu", 0.0)
    head.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    head.fit(cached[tr], full.y[tr], validation_data=(cached[val], full.y[val]), batch_size=256, epochs=1, verbose=0)
    epoch = time.perf_counter() - started  # includes tracing: an upper bound of a steady epoch
    print(f"PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} HEAD_EPOCH {epoch:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-images", type=int, default=1024)
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(args.memory_images, args.size)
        return

    probe = subprocess.run([sys.executable, "-m", "benchmarks.transfer", "--memory-probe", "--size", str(args.size),
                            "--memory-images", str(args.memory_images)], capture_output=True, text=True, check=True)
    peak_mb, full_head_epoch = (float(v) for v in probe.stdout.split()[1::2])
    s = speed(args.images, args.size, args.epochs, args.repeats)
    head = s["timings"]["head_seconds"]
    full_pass = FULL_SET / (s["n"] / s["pass"])
    # Model building and graph tracing, paid once per run (from the stage's own timings, same run).
    fixed = max(s["stage"] - s["timings"]["embed_seconds"] - head, 0.0)
    full_stage = fixed + full_pass + args.epochs * full_head_epoch
    print(f"""## Transfer stage: cached features vs fitting through the frozen backbone

Machine: {os.cpu_count()} CPU cores (shared). EfficientNet-B0 at {args.size} px, random weights and pixels,
{s['n']} images ({args.images} train + {s['n'] - args.images} test), {args.epochs} head epochs, batch 256, embed batch 64.
Command: `.venv/bin/python -m benchmarks.transfer --images {args.images} --size {args.size} --epochs {args.epochs}`

| measure | value |
| --- | --- |
| one backbone pass over the images (median of {args.repeats}) | {s['pass']:.1f} s ({s['n'] / s['pass']:.1f} images/s) |
| (a) stage method, `train_transfer` end to end (median of {args.repeats}) | {s['stage']:.1f} s |
| (a) of which head training, {args.epochs} epochs on cached features | {head:.1f} s |
| (b) study method, one epoch through the frozen backbone (2nd epoch; 1st with tracing: {s['study_first_epoch']:.1f} s) | {s['study_epoch']:.1f} s |
| (b) study method, {args.epochs} epochs + test prediction (extrapolated from the 2nd epoch) | {s['study']:.1f} s |
| **speed-up (b) / (a)** | **{s['study'] / s['stage']:.1f}x** (target >= 10x) |
| **stage / one backbone pass**, this subset | **{s['stage'] / s['pass']:.2f}x** (target <= 1.3x) |
| head epoch on 54,000 cached features (memory probe, incl. tracing) | {full_head_epoch:.1f} s |
| stage / one backbone pass, projected to 60,000 images: ({fixed:.0f} s fixed + {full_pass / 60:.1f} min pass + {args.epochs} x head epoch) / pass | {full_stage / full_pass:.2f}x |
| **peak RSS**: 60,000-image uint8 set in memory, first {args.memory_images} embedded at {args.size} px, one head epoch on 60,000 x 1,280 cached features | **{peak_mb / 1024:.2f} GB** (target <= 4 GB) |
""")


if __name__ == "__main__":
    main()
