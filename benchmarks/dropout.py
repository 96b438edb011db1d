"""Benchmark of the training CNN's dropout: Keras' stock layer against the 16-bit-mask layer the train
stages use (cifar10.models.bits_dropout), in float32 and mixed_bfloat16.

`python -m benchmarks.dropout` prints a Markdown section:
1. the fraction each layer drops at the CNN's rates in params.yaml (`train.model.conv_dropout` after
   the conv blocks, `dense_dropout` after the dense layers), over 4,000,000 units, with the mean of
   what it keeps (1.0 is unbiased);
2. the CNN's training speed with either layer (everything else as the stages train: fused batch norm,
   the stage's input path, batch 64, Adam), epochs of 120 steps interleaved, medians of 7 repeats;
   the speed ratio is the median of the per-repeat ratios (min-max).
"""
from __future__ import annotations

import os
import statistics
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
UNITS = 4_000_000
STEPS, REPEATS = 120, 7
POLICIES = ("float32", "mixed_bfloat16")


def cnn_dropout_rates(params_file: Path = ROOT / "params.yaml") -> tuple[float, ...]:
    """The CNN's distinct dropout rates in params.yaml (validated by its schema), in layer order."""
    from cifar10.schema import load_params

    model = load_params(params_file).train.model
    return tuple(dict.fromkeys([*model.conv_dropout, model.dense_dropout]))


def dropped(policy: str, bits: bool, rates: tuple[float, ...]) -> dict[float, tuple[float, float]]:
    """Per rate: (fraction dropped, mean of the output of all-ones input)."""
    import keras

    from cifar10.models.bits_dropout import BitsDropout

    kind = BitsDropout if bits else keras.layers.Dropout
    x = np.ones((UNITS // 1000, 1000), dtype=np.float32)
    out = {}
    for rate in rates:
        y = keras.ops.convert_to_numpy(kind(rate, seed=1, dtype=policy)(x, training=True)).astype(np.float32)
        out[rate] = (float((y == 0).mean()), float(y.mean()))
    return out


def epoch(policy: str, bits: bool):
    from benchmarks.train import BATCH, compiled, epoch_runner, images
    from cifar10.runtime import seed_everything

    seed_everything(0, True)
    x, y = images(STEPS * BATCH)
    return epoch_runner(compiled(policy, True, bits), x, y, STEPS, autotune=False)


def main() -> None:
    from benchmarks.train import BATCH, interleaved
    from cifar10.console import quiet_tensorflow
    from cifar10.tracking.provenance import cpu_model

    studied = cnn_dropout_rates()  # a bad params.yaml stops here, before any measurement
    quiet_tensorflow()
    lines = ["## Dropout: Keras' stock layer against 16-bit masks", "",
             f"Command: `.venv/bin/python -m benchmarks.dropout` on {os.cpu_count()} cores of {cpu_model()}.", "",
             f"Dropped fraction of {UNITS:,} units (mean of what is left of all-ones input):", "",
             "| rate | stock, float32 | stock, mixed_bfloat16 | 16-bit masks, float32 | 16-bit masks, mixed_bfloat16 |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    table = {(p, b): dropped(p, b, studied) for b in (False, True) for p in POLICIES}
    for rate in studied:
        cells = [f"{table[key][rate][0]:.4f} ({table[key][rate][1]:.4f})" for key in
                 [(p, False) for p in POLICIES] + [(p, True) for p in POLICIES]]
        lines.append(f"| {rate} | " + " | ".join(cells) + " |")
    lines += ["", f"Training speed, study's CNN, {STEPS}-step epochs of batch {BATCH}, medians of {REPEATS} interleaved "
              "repeats:", "", "| precision | stock images/s | 16-bit masks images/s | 16-bit masks / stock speed (min-max) |",
              "| --- | ---: | ---: | ---: |"]
    for policy in POLICIES:
        times = interleaved({"stock": epoch(policy, False), "bits": epoch(policy, True)}, REPEATS)
        speed = {k: STEPS * BATCH / statistics.median(v) for k, v in times.items()}
        ratios = [a / b for a, b in zip(times["stock"], times["bits"])]
        lines.append(f"| {policy} | {speed['stock']:.0f} | {speed['bits']:.0f} | {statistics.median(ratios):.3f}x "
                     f"({min(ratios):.3f}-{max(ratios):.3f}) |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
