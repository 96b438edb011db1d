"""Where one training step of the study's CNN spends its time, split by layer group.

    python -m benchmarks.profile      # batch norm stock / fused x float32 / mixed_bfloat16 x determinism on / off

Prints a Markdown section: one table per batch-norm implementation (the stock Keras layer, which the
train stages used before, and the fused kernel they use now), a column per precision and determinism
setting. Each configuration runs in a fresh subprocess (op determinism and the dtype policy are
process-wide): the model is built and compiled as the train stage does (seed_everything, Adam 1e-3,
sparse categorical cross-entropy, accuracy metric, batch 64, jit_compile=False) and fed through the
stage's input path (cifar10.training.inputs.train_batches).

Method:
1. speed without the profiler: `--repeats` epochs of `--steps` steps, interleaved with validation passes
   (model.evaluate over eval_batches), medians;
2. one epoch under the TF profiler (tf.profiler.experimental.start/stop); the host trace (.xplane.pb) is
   parsed with the XPlane proto shipped in TensorFlow (benchmarks.trace_split). Every TF op event is
   classified by its name scope (Keras layer names: blockN_convM, blockN_bnM, ..., gradient_tape/ for
   the backward pass, adam/ for the optimizer); AddN gradient accumulations are attributed through the
   graph to the layer whose gradient they sum. The wall time of the profiled epoch is split with a sweep
   line: at every instant, the time is shared equally among the ops running at that instant on TF's
   compute threads; time with no op running is "framework / Python (no op running)". Rows therefore add
   up to the wall time per step. The input pipeline runs on tf.data's own threads behind prefetch: its
   CPU time is reported separately (it competes for the same 2 cores), and its wall cost in the step is
   the time the step waits in IteratorGetNext.
3. validation: cost of the per-epoch validation pass relative to the training epoch, for the stage's
   10% split: (1/9) x (eval seconds per image) / (train seconds per image).

Profiler overhead: the profiled epoch is slower than the unprofiled ones (printed); shares are what to
read; "ms/step (scaled)" rescales the profiled epoch's rows to the unprofiled step time.
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.trace_split import GROUP_ORDER, addn_attribution, parse_trace

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 64


# ----------------------------------------------------------------------------------------------- child
def child(cfg: dict) -> dict:
    import numpy as np
    import tensorflow as tf

    from benchmarks.train import compiled, epoch_runner, images
    from cifar10.console import quiet_tensorflow
    from cifar10.runtime import seed_everything
    from cifar10.training.inputs import eval_batches

    quiet_tensorflow()
    seed_everything(42, cfg["deterministic"])
    model = compiled(cfg["policy"], cfg["fused"], bits_dropout=cfg["fused"])  # the train stages' layers when fused
    steps, batch = cfg["steps"], BATCH
    x, y = images(steps * batch)
    xv, yv = images(cfg["val_batches"] * batch, seed=1)
    train_epoch = epoch_runner(model, x, y, steps, autotune=False)

    def val_pass() -> float:
        t = time.perf_counter()
        model.evaluate(eval_batches(xv, yv, batch), verbose=0)
        return time.perf_counter() - t

    train_epoch(), val_pass(), train_epoch()  # trace + warm up
    tt, tv = [], []
    for _ in range(cfg["repeats"]):
        tt.append(train_epoch())
        tv.append(val_pass())
    logdir = tempfile.mkdtemp(prefix="profile-")
    tf.profiler.experimental.start(logdir)
    t_prof = train_epoch()
    tf.profiler.experimental.stop()
    pb = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
    wall, window, data_cpu, by_type = parse_trace(pb, addn_attribution(model))
    train_s, val_s, n_val = float(np.median(tt)), float(np.median(tv)), cfg["val_batches"] * batch
    return {
        "cfg": cfg, "train_img_s": steps * batch / train_s, "step_ms": 1000 * train_s / steps,
        "prof_step_ms": 1000 * t_prof / steps, "window_ms": 1000 * window / steps,
        "wall_ms": {k: 1000 * v / steps for k, v in wall.items()}, "data_cpu_ms": 1000 * data_cpu / steps,
        "val_img_s": n_val / val_s, "val_share": (1 / 9) * (val_s / n_val) / (train_s / (steps * batch)),
        "top_types": {k: 1000 * v / steps for k, v in collections.Counter(by_type).most_common(6)},
        "params": model.count_params(),
    }


# ----------------------------------------------------------------------------------------------- report
def table(results: list[dict]) -> list[str]:
    """One table: a row per layer group, ms per step and share for each configuration."""
    names = [f"{r['cfg']['policy']}, det {'on' if r['cfg']['deterministic'] else 'off'}" for r in results]
    lines = ["| group | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(results)]
    scaled = []
    for r in results:
        rows = dict(r["wall_ms"])
        rows["fit() set-up before the first step"] = max(r["prof_step_ms"] - r["window_ms"], 0.0)
        total = sum(rows.values())
        scaled.append({g: (v * r["step_ms"] / total, 100 * v / total) for g, v in rows.items()})
    for g in GROUP_ORDER + ["fit() set-up before the first step"]:
        if any(g in s and s[g][0] >= 0.05 for s in scaled) or g in GROUP_ORDER[:10]:
            lines.append(f"| {g} | " + " | ".join(f"{s.get(g, (0, 0))[0]:.1f} ({s.get(g, (0, 0))[1]:.0f}%)"
                                                    for s in scaled) + " |")
    lines.append("| **step (ms), images/s** | " + " | ".join(f"**{r['step_ms']:.1f}**, {r['train_img_s']:.0f}"
                                                         for r in results) + " |")
    lines.append("| validation pass: images/s, share of an epoch | " + " | ".join(
        f"{r['val_img_s']:.0f}, {100 * r['val_share']:.1f}%" for r in results) + " |")
    lines.append("| input pipeline CPU on tf.data threads (ms/step, hidden by prefetch) | " + " | ".join(
        f"{r['data_cpu_ms']:.2f}" for r in results) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--val-batches", type=int, default=20)
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))))
        return
    from cifar10.tracking.provenance import cpu_model

    env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
    out = ["## Where a training step's time goes", "",
           f"Command: `.venv/bin/python -m benchmarks.profile` on {os.cpu_count()} cores of {cpu_model()}. "
           f"One training step of the study's CNN (batch {BATCH}, Adam 1e-3, the stage's input path), "
           f"{args.steps}-step epochs: images/s is the median of {args.repeats} unprofiled epochs; the split comes "
           "from one epoch under TensorFlow's profiler, "
           "each instant's wall time shared among the ops running then (TF's op names tell the layer; "
           "`gradient_tape/` the backward pass), scaled to the unprofiled step. Cells: ms per step (share).", ""]
    for fused, title in ((False, "Stock Keras batch norm (the train stages before)"),
                         (True, "Fused batch-norm kernel and 16-bit-mask dropout (the train stages now)")):
        results = []
        for policy in ("float32", "mixed_bfloat16"):
            for det in (True, False):
                cfg = {"policy": policy, "deterministic": det, "fused": fused, "steps": args.steps,
                       "repeats": args.repeats, "val_batches": args.val_batches}
                proc = subprocess.run([sys.executable, "-m", "benchmarks.profile", "--child", json.dumps(cfg)],
                                      capture_output=True, text=True, env=env)
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode or not line:
                    sys.stderr.write(proc.stderr[-4000:])
                    raise SystemExit(f"profile {cfg} failed")
                results.append(json.loads(line[-1][7:]))
        out += [f"### {title}", "", *table(results), ""]
        out.append("Top op types, float32 with determinism (ms/step summed over threads): " + ", ".join(
            f"{k} {v:.1f}" for k, v in results[0]["top_types"].items()))
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
