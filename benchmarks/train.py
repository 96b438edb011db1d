"""Benchmark of the CNN training stage: pipeline overhead, bfloat16 speed-up and accuracy, peak memory.

`python -m benchmarks.train` prints a Markdown section. Measures, side by side in one run:
1. throughput of the stage's input path (uint8 arrays -> per-epoch stateless shuffle -> gather per
   batch -> prefetch) against a bare `model.fit(x_uint8, y)` on the same arrays, same model, batch 64;
2. float32 against mixed_bfloat16 on the stage path, and test accuracy after a short training of each on
   real CIFAR-10 images (../shared/data/cifar10-jpeg.tar.gz, if present) with the stage's `train()`;
3. peak RSS of `train()` on a full-size 50,000-image uint8 set, for a few steps (separate process).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from cifar10.data.dataset import Dataset  # noqa: E402
from cifar10.schema.train import ModelParams, TrainParams  # noqa: E402
from benchmarks.realdata import ARCHIVE, read_real  # noqa: E402

BATCH = 64
STEPS = 40
REPEATS = 9


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def _compiled(policy: str):
    import keras

    from cifar10.models.cnn import build_cnn

    keras.mixed_precision.set_global_policy(policy)
    model = build_cnn(ModelParams())
    keras.mixed_precision.set_global_policy("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    return model


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def throughput() -> dict:
    """Images/s of the stage path and bare fit (float32), and of the stage path with bfloat16."""
    from cifar10.training.inputs import train_batches

    x, y = _images(5000)
    x, y = x[: STEPS * BATCH], y[: STEPS * BATCH]  # one epoch = STEPS steps
    fp32, bf16 = _compiled("float32"), _compiled("mixed_bfloat16")

    def stage(model):
        return lambda: model.fit(train_batches(x, y, BATCH, 0, 0, 1), epochs=1, steps_per_epoch=STEPS,
                                 shuffle=False, verbose=0)

    def bare():
        fp32.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    runs = {"stage": stage(fp32), "bare": bare, "stage_bf16": stage(bf16)}
    for fn in runs.values():
        fn()  # trace the train function once
    times: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for i in range(REPEATS):
        # Interleaved, in alternating order, so drifting load (this machine's speed swings up to 2x
        # between seconds) hits every path alike; ratios are taken within each repeat.
        for name in names if i % 2 == 0 else names[::-1]:
            times[name].append(_time(runs[name]))
    speed = {k: STEPS * BATCH / float(np.median(v)) for k, v in times.items()}
    speed["ratio_stage_bare"] = float(np.median(np.array(times["bare"]) / np.array(times["stage"])))
    speed["ratio_bf16_fp32"] = float(np.median(np.array(times["stage"]) / np.array(times["stage_bf16"])))
    # The input pipeline alone (no model): how far ahead of training it can run behind prefetch.
    alone = [_time(lambda: [None for _ in train_batches(x, y, BATCH, 0, 0, 1)]) for _ in range(REPEATS)]
    speed["pipeline_alone"] = STEPS * BATCH / float(np.median(alone))
    speed.update({f"{k}_best": STEPS * BATCH / min(v) for k, v in times.items()})
    return speed


def accuracy(epochs: int = 3) -> dict | None:
    """Test accuracy of `train()` in float32 and mixed_bfloat16 on a real CIFAR-10 subset."""
    from cifar10.reporting.scoring import predict_proba
    from cifar10.training.fit import train

    real = read_real(500, 100)
    if real is None:
        return None
    train_ds, test_ds = real
    out = {}
    for policy in ("float32", "mixed_bfloat16"):
        # A short run: momentum 0.9 lets batch norm's moving averages settle within it (see params.yaml).
        cfg = TrainParams(epochs=epochs, precision=policy, model=ModelParams(batch_norm_momentum=0.9))
        result = train(train_ds, cfg, seed=42)
        model, history, info = result.model, result.history, result.info
        acc = float(np.mean(predict_proba(model, test_ds.x, 256).argmax(axis=1) == test_ds.y))
        last = history[-1]
        out[policy] = {"loss": last["loss"], "accuracy": last["accuracy"], "val_loss": last["val_loss"],
                       "test_accuracy": acc, "seconds": info["train_seconds"]}
    out["sizes"] = (len(train_ds), len(test_ds), epochs)
    return out


def peak_rss_child() -> None:
    """In a fresh process: train() on 50,000 uint8 images for a few steps; print peak RSS in MiB."""
    import keras

    from cifar10.training.fit import train

    class StopAfter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch >= 19:
                self.model.stop_training = True

    x, y = _images(50_000, seed=1)
    train(Dataset(x, y), TrainParams(epochs=1), seed=0, callbacks=[StopAfter()])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_rss() -> float:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-m", "benchmarks.train", "--rss-child"], capture_output=True,
                         text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if "--rss-child" in sys.argv:
        peak_rss_child()
        return
    rss = peak_rss()
    speed = throughput()
    acc = accuracy()
    lines = [
        "## Training stage (train-baseline / train-augmented)",
        "",
        f"Command: `.venv/bin/python -m benchmarks.train` on {os.cpu_count()} cores. The study's CNN "
        f"(552,874 parameters), batch {BATCH}, medians of {REPEATS} interleaved repeats of {STEPS} steps on "
        "generated uint8 images.",
        "",
        "| path | images/s | ratio |",
        "| --- | --- | --- |",
        f"| bare `model.fit(x_uint8, y)` float32 | {speed['bare']:.0f} | 1.00 |",
        f"| stage input pipeline, float32 | {speed['stage']:.0f} | {speed['ratio_stage_bare']:.2f} "
        "(target >= 0.95) |",
        f"| stage input pipeline, mixed_bfloat16 | {speed['stage_bf16']:.0f} | "
        f"{speed['ratio_bf16_fp32']:.2f} x float32 |",
        "",
        "Ratios are medians of the per-repeat ratios (the paths run back to back within each repeat).",
        "",
        f"The stage's input pipeline alone (no model) delivers {speed['pipeline_alone']:.0f} images/s, "
        f"{speed['pipeline_alone'] / speed['stage']:.0f}x what training consumes, so prefetch hides it.",
        "",
        f"Best-of-{REPEATS} ratios (less sensitive to other load on the machine): stage/bare "
        f"{speed['stage_best'] / speed['bare_best']:.2f}, bfloat16/float32 "
        f"{speed['stage_bf16_best'] / speed['stage_best']:.2f}.",
        "",
        f"Peak RSS of `train()` on 50,000 uint8 images (20 steps + validation, fresh process): "
        f"**{rss:.0f} MiB** (target <= 3072 MiB).",
    ]
    if acc:
        n_train, n_test, epochs = acc.pop("sizes")
        lines += ["", f"Short training with `train()`: {epochs} epochs on {n_train} real CIFAR-10 training images "
                      f"(10% validation, batch-norm momentum 0.9 for so short a run), tested on {n_test} test "
                      "images.", "",
                  "| precision | train loss | train accuracy | val_loss | test accuracy | training s |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {k} | {v['loss']:.3f} | {v['accuracy']:.3f} | {v['val_loss']:.3f} | {v['test_accuracy']:.3f} "
                  f"| {v['seconds']:.0f} |" for k, v in acc.items()]
    else:
        lines += ["", f"(Accuracy comparison skipped: {ARCHIVE} not found.)"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
