"""Benchmark of the transfer stage (EfficientNet-Lite0 at 224 px): its cost against one backbone pass,
against the study's method, what each accuracy step costs, and peak memory at full size.

Run: .venv/bin/python -m benchmarks.transfer [--images 1024] [--epochs 20]

On `--images` generated training images (random pixels and weights: speed depends on neither):
(a) the stage's method, `train_transfer` with the study's head (one backbone pass with batch norm folded,
    head epochs on the cached features), end to end, against one pass of the backbone as built (and
    one of the folded backbone) over the same images;
(b) the study's method (fit the whole model, backbone frozen) for the same epochs: its 2nd epoch timed
    and extrapolated;
(c) the cost of each accuracy step per 1,000 training images: mirror images (a second pass), and one
    epoch of fine-tuning the top 1 or 2 blocks on the cached pass;
(d) peak RSS in a fresh process holding the full 60,000-image set, its first images embedded, and one
    head epoch on 90,000 cached features (45,000 images and their mirror images).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy as np

from benchmarks.child import last_line

FULL_SET = 60_000


def _data(n: int, seed: int):
    from cifar10.data.dataset import Dataset

    rng = np.random.default_rng(seed)
    return Dataset(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n, dtype=np.int64) % 10)


def _cfg(epochs: int, **changes):
    from cifar10.schema.transfer import TransferParams

    return TransferParams.model_validate({"backbone": "efficientnet_lite0", "weights": "none", "epochs": epochs,
                                          **changes})


def stage_extractor():
    """EfficientNet-Lite0 at 224 px with random weights, batch norm folded: the network the stage's pass runs."""
    from cifar10.models import transfer as tm
    from cifar10.models.folding import fold_batch_norm

    return tm.build_extractor("efficientnet_lite0", fold_batch_norm(tm.build_backbone("efficientnet_lite0", 224, None)),
                              224)


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def speed(n_images: int, epochs: int, repeats: int) -> dict:
    import keras

    from cifar10.models import transfer as tm
    from cifar10.models.folding import fold_batch_norm
    from cifar10.training import transfer as tr
    from cifar10.training.cached_pass import backbone_pass
    from cifar10.training.distribution import make_cluster
    from cifar10.training.embeddings import embed
    from cifar10.training.history import EpochHistory

    cluster = make_cluster("none")
    train = _data(n_images, 0)
    cfg = _cfg(epochs)
    stage, passes, folded_passes = [], [], []
    for _ in range(repeats):
        keras.backend.clear_session()
        stage.append(_seconds(lambda: tr.train_transfer(train, cfg, None, 0, cluster)))
        network = tm.build_backbone("efficientnet_lite0", 224, None)
        stock = tm.build_extractor("efficientnet_lite0", network, 224)
        folded = tm.build_extractor("efficientnet_lite0", fold_batch_norm(network), 224)
        for extractor, times in ((stock, passes), (folded, folded_passes)):
            embed(extractor, train.x[:64], 64, desc="warm-up")
            times.append(_seconds(lambda: embed(extractor, train.x, 64, desc="one pass")))
    per_image = statistics.median(folded_passes) / n_images

    # The study's method: the whole model (frozen backbone inside) fitted on images every epoch.
    keras.backend.clear_session()
    head = tm.build_head(cfg.head.units, cfg.head.activation, cfg.head.dropout)  # the study had no scaling
    whole = tm.build_whole(tm.build_extractor("efficientnet_lite0", tm.build_backbone("efficientnet_lite0", 224, None),
                                              224), head)
    whole.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="sparse_categorical_crossentropy")
    marks: list[float] = []
    timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: marks.append(time.perf_counter()),
                                           on_epoch_end=lambda e, logs: marks.append(time.perf_counter()))
    whole.fit(train.x, train.y, batch_size=cfg.batch_size, epochs=2, verbose=0, callbacks=[timer])
    study_epoch = marks[3] - marks[2]

    # Fine-tuning: one epoch on the cached pass per 1,000 images, top 1 and 2 blocks.
    tune = {}
    for blocks in (1, 2):
        keras.backend.clear_session()
        tcfg = _cfg(1, fine_tune_blocks=blocks, fine_tune_epochs=2)
        p = backbone_pass(train, tcfg, None, 0, cluster, blocks)
        head = tr.fit_head(p, train.y, tcfg, cluster, EpochHistory())
        marks.clear()
        tr.fine_tune(p, head, train.y, tcfg, cluster, EpochHistory(), blocks, [timer])
        tune[blocks] = (marks[3] - marks[2]) / len(p.train_rows) * 1000
    return {"stage": statistics.median(stage), "pass": statistics.median(passes),
            "folded_pass": statistics.median(folded_passes), "per_image": per_image,
            "study": study_epoch * epochs, "study_epoch": study_epoch, "tune_per_1000": tune, "n": n_images}


def memory_probe(n_embed: int) -> None:
    """In a fresh process: the full uint8 set, its first images embedded, a head epoch on 90,000 features."""
    from cifar10.models import transfer as tm
    from cifar10.training.embeddings import embed

    full = _data(FULL_SET, 2)
    features, _ = embed(stage_extractor(), full.x[:n_embed], 64, desc="memory probe")
    cached = np.resize(features, (90_000, features.shape[1]))  # the size a pass with mirror images caches
    head = tm.build_head([256, 256], "relu", 0.0)
    head.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    started = time.perf_counter()
    head.fit(cached, np.arange(len(cached)) % 10, batch_size=256, epochs=1, verbose=0)
    epoch = time.perf_counter() - started  # includes tracing: an upper bound of a steady epoch
    print(f"PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} HEAD_EPOCH {epoch:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-images", type=int, default=1024)
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from cifar10.console import quiet_tensorflow

    quiet_tensorflow()
    if args.memory_probe:
        memory_probe(args.memory_images)
        return
    probe = last_line("benchmarks.transfer", "--memory-probe", "--memory-images", str(args.memory_images))
    peak_mb, head_epoch = (float(v) for v in probe.split()[1::2])
    s = speed(args.images, args.epochs, args.repeats)
    full_pass = 50_000 * s["per_image"]
    # Projected plain stage at full size: model building and tracing (this run's fixed cost), the pass
    # over 50,000 images, the head epochs on 45,000 features (half the probe's 90,000).
    fixed = max(s["stage"] - s["pass"] - args.epochs * head_epoch * args.images / 90_000, 0.0)
    projected = fixed + full_pass + args.epochs * head_epoch / 2
    print(f"""## Transfer stage: EfficientNet-Lite0 at 224 px

Command: `.venv/bin/python -m benchmarks.transfer --images {args.images} --epochs {args.epochs}` on {os.cpu_count()} cores.
Random weights and pixels (speed depends on neither), the study's head (256, 256), {args.epochs} head epochs, batch 256,
embed batch 64; medians of {args.repeats}.

| measure | value |
| --- | --- |
| one backbone pass over {s['n']:,} images (the network as built and saved) | {s['pass']:.1f} s ({s['n'] / s['pass']:.0f} images/s) |
| one pass with batch norm folded into the convolutions (what the stage runs) | {s['folded_pass']:.1f} s ({s['n'] / s['folded_pass']:.0f} images/s), **{s['pass'] / s['folded_pass']:.2f}x faster** |
| (a) the stage's method, `train_transfer` end to end | {s['stage']:.1f} s |
| **(a) / one backbone pass**, this subset | **{s['stage'] / s['pass']:.2f}x** (target <= 1.3x); {s['stage'] / s['folded_pass']:.2f}x the folded pass |
| (b) the study's method, {args.epochs} epochs through the frozen backbone (2nd epoch {s['study_epoch']:.1f} s, extrapolated) | {s['study']:.1f} s |
| **speed-up (b) / (a)** | **{s['study'] / s['stage']:.1f}x** |
| projected plain stage on 50,000 images: {fixed:.0f} s fixed + {full_pass / 60:.1f} min pass + {args.epochs} head epochs of {head_epoch / 2:.1f} s | **{projected / 60:.1f} min**, {projected / full_pass:.2f}x one folded pass (target <= 10 min, <= 1.3x) |
| mirror images of the training images (`flip_train`): a second pass, per 1,000 images | {1000 * s['per_image']:.1f} s |
| test-time averaging (`flip_test`): the saved model runs the backbone twice per test image | 2x evaluate's transfer scoring |
| fine-tuning, one epoch on the cached pass, per 1,000 training features: top 1 block / top 2 blocks | {s['tune_per_1000'][1]:.1f} s / {s['tune_per_1000'][2]:.1f} s |
| **peak RSS**: 60,000-image uint8 set, first {args.memory_images} embedded, one head epoch on 90,000 x 1,280 features | **{peak_mb / 1024:.2f} GB** |
""")


if __name__ == "__main__":
    main()
