"""Benchmark of the augment stage: synthetic images per second, and peak memory at full size.

`python -m benchmarks.augment` prints a Markdown section. Measures:
1. end-to-end throughput of the stage's core `augment()` (pipeline built and compiled, source rows
   gathered, augmented batch by batch, output assembled) making 9,000 synthetic images for a
   CIFAR-sized imbalanced set of generated 32x32 images (41,000: 5,000 per class, 500 cats and
   dogs), median of 3 runs, for the default policy; one run of the randaugment policy for reference;
2. peak RSS of the whole stage (`python -m stages.augment` in a scratch project: params, load,
   augment 41,000 -> 50,000, atomic save, figures, MLflow) in a process of its own, beside the
   peak RSS of a process that only imports the same libraries.
Targets: >= 3,000 synthetic images/s; peak RSS <= 1.5 GB.
"""
from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from cifar10.data import dataset  # noqa: E402
from cifar10.classes import CIFAR10_CLASSES  # noqa: E402
from cifar10.data.dataset import Dataset  # noqa: E402
from cifar10.schema.augment import AugmentParams  # noqa: E402
from cifar10.tracking.provenance import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = 3


def imbalanced_set(seed: int = 0) -> Dataset:
    """41,000 random 32x32 images: 5,000 per class except 500 cats and 500 dogs."""
    per_class = [500 if name in ("cat", "dog") else 5000 for name in CIFAR10_CLASSES]
    y = np.repeat(np.arange(len(CIFAR10_CLASSES), dtype=np.int64), per_class)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(len(y), 32, 32, 3), dtype=np.uint8)
    return Dataset(x, y)


def throughput(ds: Dataset, cfg: AugmentParams, runs: int) -> list[float]:
    import cifar10.augmentation.layers  # noqa: F401 - TF's one-off import is not part of the rate
    from cifar10.augmentation.rebalance import augment

    rates = []
    for i in range(runs):
        start = time.perf_counter()
        out = augment(ds, ["cat", "dog"], "max", cfg, seed=i)
        seconds = time.perf_counter() - start
        rates.append(int(out.extra["synthetic"].sum()) / seconds)
    return rates


def stage_peak_rss(ds: Dataset) -> tuple[float, float, str]:
    """(peak RSS in MB, wall seconds, stage's last line) of the augment stage on `ds`."""
    work = Path(tempfile.mkdtemp(prefix="bench-augment-"))
    try:
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        dataset.save(work / dataset.IMBALANCED_TRAIN, ds)
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "PYTHONPATH": str(ROOT),
        }
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "stages.augment"], cwd=work, env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"stage failed:\n{proc.stderr[-3000:]}")
        out = dataset.load(work / dataset.AUGMENTED_TRAIN)
        assert len(out) == 50_000 and set(out.counts().values()) == {5000}
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
        return peak_mb, seconds, proc.stdout.strip().splitlines()[-1]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def import_rss() -> float:
    """Peak RSS in MB of a process that only imports what the stage imports (TF, keras-cv, MLflow)."""
    code = (
        "import resource, cifar10.augmentation.layers, cifar10.reporting.figures, mlflow.tracking; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    ds = imbalanced_set()
    # Memory first: the stage process is the only child so far, so RUSAGE_CHILDREN is its peak.
    peak_mb, stage_seconds, stage_line = stage_peak_rss(ds)
    baseline_mb = import_rss()
    rates = throughput(ds, AugmentParams(), RUNS)
    rand_rate = throughput(ds, AugmentParams(policy="randaugment"), 1)[0]
    median = statistics.median(rates)
    load = os.getloadavg()[0]
    print("## Augment stage")
    print()
    print(f"Command: `.venv/bin/python -m benchmarks.augment` on {os.cpu_count()} cores of {cpu_model()}; "
          f"1-minute load average at the end: {load:.1f}.")
    print()
    print("| measure | value | target |")
    print("| --- | --- | --- |")
    print(
        f"| synthetic images/s, `augment()` end to end, default policy, 9,000 new from 41,000 "
        f"(median of {RUNS}: {', '.join(f'{r:,.0f}' for r in rates)}) | **{median:,.0f}** | >= 3,000 |"
    )
    print(f"| synthetic images/s, randaugment policy (1 run) | {rand_rate:,.0f} | - |")
    print(f"| peak RSS of `python -m stages.augment`, 41,000 -> 50,000 | **{peak_mb:,.0f} MB** | <= 1,536 MB |")
    print(f"| of which imports alone (TF, keras-cv, MLflow; no data) | {baseline_mb:,.0f} MB | - |")
    print(f"| wall time of that stage run (imports, MLflow, save, figures) | {stage_seconds:.1f} s | - |")
    print()
    print(f"Stage output: `{stage_line}`")


if __name__ == "__main__":
    main()
