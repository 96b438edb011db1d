"""Benchmark of the two precisions on this CPU, side by side in one run: what `precision: auto` picks
here, and whether the measurement agrees.

`python -m benchmarks.precision [--image-size N] [--blocks K]` (default: params.yaml's transfer recipe)
prints a Markdown section:
1. the local limits: TensorFlow's 2048x2048 matmul in float32 and bfloat16 (median of 15);
2. the CNN's training step through the stage's own path (`compiled_cnn` + `train_batches`, determinism
   on, 40-step epochs of batch 64), float32 against mixed_bfloat16, against each limit;
3. the transfer stage's three kinds of work with EfficientNet-Lite0 (random weights: speed depends on
   neither them nor the pixels): the frozen pass (batch norm folded, as the stage runs it), one
   fine-tuning step of the top `--blocks` blocks on their cached input (batch 32), and evaluate's
   prediction of the whole saved model (mirror-image averaging on), each in both precisions.
Every pair is timed interleaved, alternating the order, so drifting load hits both alike; ratios are
medians of the per-repeat ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

REPEATS = 7
TRANSFER_REPEATS = 5  # Lite0 runs take seconds each


def timed(fn):
    """`fn` as a run for `benchmarks.train.interleaved`: it returns its seconds."""
    def run() -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started
    return run


def cnn_step(policy: str):
    """One 40-step epoch of the stage's training path in `policy`."""
    from benchmarks.train import BATCH, STEPS, epoch_runner, images
    from cifar10.runtime import seed_everything
    from cifar10.schema.train import TrainParams
    from cifar10.training.distribution import make_cluster
    from cifar10.training.fit import compiled_cnn

    seed_everything(0, True)
    x, y = images(STEPS * BATCH)
    model = compiled_cnn(TrainParams(precision=policy), 10, make_cluster("none"), (x[:1], y[:1]))
    return epoch_runner(model, x, y, STEPS, autotune=False)


def transfer_work(policy: str, size: int, blocks: int, n: int = 256):
    """(frozen pass over n images, fine-tuning epoch over n cached maps, whole-model prediction of n images)."""
    import keras

    from cifar10.models import transfer as tm
    from cifar10.models.blocks import split, unfreeze_top_blocks
    from cifar10.models.folding import fold_batch_norm
    from cifar10.models.recast import recast
    from cifar10.models.saved import load_for_inference
    from cifar10.runtime import precision
    from cifar10.training.embeddings import embed

    x = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n) % 10
    backbone = tm.build_backbone("efficientnet_lite0", size, None)
    with precision(policy):
        frozen = tm.build_extractor("efficientnet_lite0", fold_batch_norm(recast(backbone, policy)), size)
        lower, upper = split(recast(backbone, policy), blocks)
        maps, _ = embed(tm.build_extractor("efficientnet_lite0", lower, size, pool=False), x, 64)
        unfreeze_top_blocks(upper, blocks)
        head = tm.build_head([256, 256], "relu", 0.0)
        inputs = keras.Input(maps.shape[1:])
        tuned = keras.Model(inputs, head(keras.layers.GlobalAveragePooling2D()(upper(inputs, training=False))))
        tuned.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    path = f"/tmp/precision-bench-{os.getpid()}.keras"
    tm.build_whole(tm.build_extractor("efficientnet_lite0", backbone, size), head, flip_average=True).save(path)
    whole = load_for_inference(path, policy)
    os.unlink(path)
    return {"frozen pass": lambda: embed(frozen, x, 64),
            f"fine-tuning the top {blocks} blocks": lambda: tuned.fit(maps, y, batch_size=32, epochs=1, verbose=0),
            "evaluate (whole model, mirror averaging)": lambda: whole.predict(x, batch_size=128, verbose=0)}, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from cifar10.schema import load_params

    recipe = load_params().transfer  # the committed recipe, so the figures are the stage's own
    parser.add_argument("--image-size", type=int, default=recipe.image_size)
    parser.add_argument("--blocks", type=int, default=max(recipe.fine_tune_blocks, 1))
    args = parser.parse_args()
    from benchmarks.train import BATCH, STEPS, interleaved, local_limit
    from cifar10.console import quiet_tensorflow
    from cifar10.tracking.provenance import cpu_model
    from cifar10.training.precision import resolve

    quiet_tensorflow()
    limit = local_limit()
    peak, gflop = limit["peak"], limit["gflop_per_image"]
    cnn = interleaved({p: cnn_step(p) for p in ("float32", "mixed_bfloat16")}, REPEATS)
    speed = {p: STEPS * BATCH / statistics.median(t) for p, t in cnn.items()}
    ratios = [a / b for a, b in zip(cnn["float32"], cnn["mixed_bfloat16"])]
    lines = ["## Precision on this CPU: float32 against mixed_bfloat16", "",
             f"Command: `.venv/bin/python -m benchmarks.precision --image-size {args.image_size} --blocks {args.blocks}` "
             f"on {os.cpu_count()} cores of {cpu_model()}. Medians of {REPEATS} interleaved repeats "
             f"({TRANSFER_REPEATS} for Lite0); ratios are medians of the per-repeat ratios (min-max).", "",
             f"Local limit: TensorFlow matmul 2048x2048, **{peak['float32']:.0f} GFLOP/s float32, "
             f"{peak['bfloat16']:.0f} GFLOP/s bfloat16** ({peak['bfloat16'] / peak['float32']:.2f}x). The CNN costs "
             f"{gflop:.4f} GFLOP per training image, so the limits are {peak['float32'] / gflop:.0f} and "
             f"{peak['bfloat16'] / gflop:.0f} images/s.", "",
             "| work | float32 | mixed_bfloat16 | bfloat16 / float32 speed | `auto` here |",
             "| --- | ---: | ---: | ---: | --- |",
             f"| CNN training step (stage path, batch {BATCH}) | {speed['float32']:.0f} images/s "
             f"({100 * speed['float32'] * gflop / peak['float32']:.0f}% of its limit) | {speed['mixed_bfloat16']:.0f} "
             f"images/s ({100 * speed['mixed_bfloat16'] * gflop / peak['bfloat16']:.0f}% of its limit) | "
             f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) | {resolve('auto', 'cnn')[0]} |"]
    works = {p: transfer_work(p, args.image_size, args.blocks) for p in ("float32", "mixed_bfloat16")}
    n = works["float32"][1]
    for kind, rule in (("frozen pass", "frozen"), (f"fine-tuning the top {args.blocks} blocks", "fine_tune"),
                       ("evaluate (whole model, mirror averaging)", "frozen")):
        t = interleaved({p: timed(works[p][0][kind]) for p in works}, TRANSFER_REPEATS)
        r = [a / b for a, b in zip(t["float32"], t["mixed_bfloat16"])]
        lines.append(f"| Lite0 at {args.image_size} px: {kind} | {n / statistics.median(t['float32']):.0f} images/s | "
                     f"{n / statistics.median(t['mixed_bfloat16']):.0f} images/s | {statistics.median(r):.2f}x "
                     f"({min(r):.2f}-{max(r):.2f}) | {resolve('auto', rule)[0]} |")
    lines += ["", "`auto here` is what `precision: auto` resolves to on this CPU by its fixed rule "
              "(cifar10/training/precision.py); where the speed column shows bfloat16 slower, the rule takes float32."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
