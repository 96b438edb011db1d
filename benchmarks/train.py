"""Benchmark of the CNN training stages: the speed of a step against the machine's own limit, before
and after this project's speed work, side by side; accuracy unchanged; peak memory.

`python -m benchmarks.train` prints a Markdown section:
1. the local limit: TensorFlow's matmul peak (float32 and bfloat16) and the CNN's FLOPs per training
   image, hence images/s at 100% of the float32 peak;
2. throughput, interleaved repeats in one process, each epoch 40 steps of batch 64 timed from fit()
   to the end of its tf.data iterator (what a stage epoch pays): *before* = the stock Keras batch norm
   and dropout and an autotuned input pipeline (the stage path before this work), *after* = the fused
   batch-norm kernel, 16-bit-mask dropout and autotuning off (the stage path now), each in float32 and
   mixed_bfloat16;
3. the stage's `train()` before and after on 5,000 real training images (../shared/data, if present)
   for 3 epochs: the loss curves and test accuracy side by side;
4. peak RSS of `train()` on a full-size 50,000-image set (separate process).
"""
from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np

from benchmarks.child import last_line
from benchmarks.realdata import ARCHIVE, read_real
from cifar10.schema.train import ModelParams, TrainParams

BATCH = 64
STEPS = 40
REPEATS = 9


def images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def epoch_runner(model, x, y, steps: int, autotune: bool, batch: int = BATCH):
    """A callable running one epoch through the stage's input path and returning its seconds, from
    fit() to the end of the epoch's tf.data iterator. `autotune=True` is the input path before this
    work (prefetch with tf.data's autotuning, whose iterator teardown waits for the autotune thread)."""
    import tensorflow as tf

    from cifar10.training.inputs import train_batches

    def before():  # the stage's input path before this work, verbatim: autotuned prefetch
        x_t, y_t, rows = tf.constant(x), tf.constant(y), tf.range(len(y), dtype=tf.int64)
        order = tf.random.experimental.stateless_shuffle(rows, seed=tf.constant([0, 0], tf.int64))
        return (tf.data.Dataset.from_tensor_slices(order).batch(batch)
                .map(lambda idx: (tf.gather(x_t, idx), tf.gather(y_t, idx))).prefetch(tf.data.AUTOTUNE))

    def data():
        return before() if autotune else train_batches(x, y, batch, 0, 0, 1)

    def run() -> float:
        started = time.perf_counter()
        model.fit(data(), epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
        return time.perf_counter() - started

    return run


def compiled(policy: str, fused: bool, bits_dropout: bool = False):
    """The study's CNN compiled as the benchmarks train it (Adam 1e-3, accuracy, no XLA)."""
    import keras

    from cifar10.models.cnn import build_cnn
    from cifar10.runtime import precision

    with precision(policy):
        model = build_cnn(ModelParams(), fused_batch_norm=fused, bits_dropout=bits_dropout)
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    return model


def local_limit(n: int = 2048, repeats: int = 15) -> dict:
    """Median GFLOP/s of a matmul, float32 and bfloat16, and the CNN's FLOPs per training image."""
    from benchmarks.limits import matmul_peak, training_gflop
    from cifar10.models.cnn import build_cnn

    peaks = {dtype: matmul_peak(dtype, n, repeats) for dtype in ("float32", "bfloat16")}
    return {"peak": peaks, "gflop_per_image": training_gflop(build_cnn(ModelParams()))}


def interleaved(runs: dict, repeats: int) -> dict[str, list[float]]:
    """The seconds each run returns, `repeats` times each, after one call each to trace. Interleaved in
    alternating order, so drifting load on a shared machine hits every run alike."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            times[name].append(runs[name]())
    return times


def throughput() -> dict:
    x, y = images(STEPS * BATCH)
    variants = {"before, float32": ("float32", False, True), "after, float32": ("float32", True, False),
                "before, mixed_bfloat16": ("mixed_bfloat16", False, True), "after, mixed_bfloat16": ("mixed_bfloat16", True, False)}
    runs = {name: epoch_runner(compiled(policy, fused, bits_dropout=fused), x, y, STEPS, autotune)
            for name, (policy, fused, autotune) in variants.items()}
    times = interleaved(runs, REPEATS)
    base = np.array(times["before, float32"])
    speed = {}
    for name, t in times.items():
        ratios = base / np.array(t)
        speed[name] = {"images_per_s": STEPS * BATCH / float(np.median(t)), "ratio": float(np.median(ratios)),
                       "ratio_range": (float(ratios.min()), float(ratios.max())),
                       "ratio_of_medians": float(np.median(base) / np.median(t))}
    return speed


def accuracy(epochs: int = 3) -> dict | None:
    """The stage's train() before and after (batch-norm kernel) on a real subset: curves and test accuracy."""
    from cifar10.training.fit import train
    from cifar10.training.inputs import predict_proba

    real = read_real(500, 100)
    if real is None:
        return None
    train_ds, test_ds = real
    out = {}
    for label, fused in (("before", False), ("after", True)):
        # A short run: momentum 0.9 lets batch norm's moving averages settle within it (see params.yaml).
        cfg = TrainParams(epochs=epochs, model=ModelParams(batch_norm_momentum=0.9))
        result = train(train_ds, cfg, seed=42, training_layers=fused)
        acc = float(np.mean(predict_proba(result.model, test_ds.x, 256).argmax(axis=1) == test_ds.y))
        out[label] = {"curve": [(r["loss"], r["val_loss"]) for r in result.history], "test_accuracy": acc,
                      "seconds": result.info["train_seconds"]}
    out["sizes"] = (len(train_ds), len(test_ds), epochs)
    return out


def peak_rss_child() -> None:
    """In a fresh process: train() on 50,000 uint8 images for 20 steps and its validation; print peak RSS in MiB."""
    import keras

    from cifar10.data.dataset import Dataset
    from cifar10.training.fit import train

    class StopAfter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch >= 19:
                self.model.stop_training = True

    x, y = images(50_000, seed=1)
    train(Dataset(x, y), TrainParams(epochs=1), seed=0, callbacks=[StopAfter()])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_rss() -> float:
    return float(last_line("benchmarks.train", "--rss-child"))


def main() -> None:
    if "--rss-child" in sys.argv:
        peak_rss_child()
        return
    from cifar10.console import quiet_tensorflow
    from cifar10.tracking.provenance import cpu_model

    quiet_tensorflow()
    rss = peak_rss()
    limit = local_limit()
    speed = throughput()
    acc = accuracy()
    f32_limit = limit["peak"]["float32"] / limit["gflop_per_image"]
    bf16_limit = limit["peak"]["bfloat16"] / limit["gflop_per_image"]
    lines = [
        "## Training speed (train-baseline / train-augmented)", "",
        f"Command: `.venv/bin/python -m benchmarks.train` on {os.cpu_count()} cores ({cpu_model()}).", "",
        f"Local limit: TensorFlow matmul 2048x2048, median of 15: **{limit['peak']['float32']:.0f} GFLOP/s float32**, "
        f"{limit['peak']['bfloat16']:.0f} GFLOP/s bfloat16. The study's CNN costs {limit['gflop_per_image']:.4f} GFLOP "
        f"per training image (forward and backward), so the limits are {f32_limit:.0f} images/s in float32 and "
        f"{bf16_limit:.0f} in bfloat16.", "",
        f"Speed: epochs of {STEPS} steps of batch {BATCH} (generated images), medians of {REPEATS} interleaved repeats; "
        "each epoch timed from fit() to the end of its input iterator, as a stage epoch pays it. Ratios are "
        "medians of the per-repeat ratios to *before, float32*, measured side by side in this run, with their "
        "min-max over the repeats; the ratio of the two median speeds beside them.", "",
        "| stage path | images/s | x before, float32 (min-max) | ratio of medians | share of the float32 limit |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, s in speed.items():
        low, high = s["ratio_range"]
        lines.append(f"| {name} | {s['images_per_s']:.0f} | {s['ratio']:.2f} ({low:.2f}-{high:.2f}) | "
                     f"{s['ratio_of_medians']:.2f} | {100 * s['images_per_s'] / f32_limit:.0f}% |")
    lines += ["", "*Before*: the stock Keras batch norm and dropout and tf.data autotuning (the train stages before this "
              "work); *after*: TensorFlow's fused batch-norm kernel, 16-bit-mask dropout and a fixed prefetch (the "
              "train stages now): the same "
              "model, batch, optimizer and parameter count."]
    if acc:
        n_train, n_test, epochs = acc.pop("sizes")
        lines += ["", f"No accuracy lost: the stage's `train()` for {epochs} epochs on {n_train:,} real training images "
                      f"(10% validation, batch-norm momentum 0.9 for so short a run), tested on {n_test:,} images.", "",
                  "| path | train loss per epoch | val_loss per epoch | test accuracy | training s |",
                  "| --- | --- | --- | ---: | ---: |"]
        for label, v in acc.items():
            lines.append(f"| {label} | {', '.join(f'{l:.3f}' for l, _ in v['curve'])} | "
                         f"{', '.join(f'{vl:.3f}' for _, vl in v['curve'])} | {v['test_accuracy']:.3f} | {v['seconds']:.0f} |")
    else:
        lines += ["", f"(Accuracy comparison skipped: {ARCHIVE} not found.)"]
    lines += ["", f"Peak RSS of `train()` on 50,000 uint8 images (20 steps and the validation pass, fresh process): "
                  f"**{rss:.0f} MiB** (target <= 3072 MiB)."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
