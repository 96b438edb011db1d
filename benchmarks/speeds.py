"""What this machine does per second for each kind of work the stages do, measured through the stages'
own code in the precision they will compute in here (`auto`: cifar10.training.precision).

`measure(params)` times, in this process, on TensorFlow's default device (a GPU where it sees one):
- the matmul peak per float type: an n x n matmul, median of `repeats` (2048, 15);
- the CNN's training step (`compiled_cnn` + `train_batches`: one fit of `cnn_steps` x (`cnn_repeats` + 1)
  steps of train.batch_size generated images, the median step) and its prediction (`eval_batches`);
- the transfer stage's frozen pass (`pass_networks` + `embed`, `transfer_images` images), the features
  pass through the blocks above the cache (`pooled`), a head step and a fine-tuning step (`fit_phase`,
  `tune_steps` steps after the traced first), with random weights and pixels: speed depends on neither.
Each kind of work gives a steady rate and a one-off setup (building the model, tracing its graphs).
`stage_startup()` times what every stage pays before its work: a new Python process importing the
libraries the stages import and opening an MLflow store.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from cifar10.schema import Params

COMPUTE_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


@dataclass(frozen=True)
class Rate:
    """One kind of work, measured here."""

    work: str  # what was timed, in words
    per_second: float  # images (cached maps, feature rows) per second, steady
    setup_seconds: float  # building the model and tracing its graphs: paid once per stage
    gflop: float  # matrix-unit GFLOP per image: forward, or a whole training step
    dtype: str  # the float type its matmuls compute in: whose peak limits it

    def __post_init__(self):
        # A setup is a difference of two timings; on a busy machine noise can push a small one below 0.
        object.__setattr__(self, "setup_seconds", max(float(self.setup_seconds), 0.0))
        object.__setattr__(self, "per_second", float(self.per_second))


@dataclass(frozen=True)
class Speeds:
    peaks: dict[str, float]  # matmul GFLOP/s per float type
    rates: dict[str, Rate]  # cnn_train, cnn_predict, frozen, features, head, fine_tune (the last two with blocks)
    policies: dict[str, tuple[str, str]]  # train, frozen, fine_tune, evaluate -> (dtype policy, why)
    devices: str  # the GPUs TensorFlow sees, or "no GPU"
    threads: int  # the cores TensorFlow runs an op on
    matmul: str  # how the peaks were measured


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _step_timer():
    """A Keras callback keeping the end time of every training batch, and the fit's start and end."""
    import keras

    class StepTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.begin, self.ends = time.perf_counter(), []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

        def on_train_end(self, logs=None):
            self.end = time.perf_counter()

        def rate(self, batch: int, built: float) -> tuple[float, float]:
            """(rows per second over the steps after the first; setup: `built` seconds before the fit, the
            first step's tracing and the validation after the last step)."""
            step = float(statistics.median(np.diff(self.ends)))
            return batch / step, built + (self.ends[0] - self.begin - step) + (self.end - self.ends[-1])

    return StepTimes()


def cnn_rates(params: Params, steps: int, repeats: int) -> dict[str, Rate]:
    """The train stages' step and prediction, through their own model and input path."""
    from benchmarks.limits import forward_flops, training_gflop
    from benchmarks.train import images
    from cifar10.training.distribution import make_cluster
    from cifar10.training.fit import compiled_cnn
    from cifar10.training.inputs import eval_batches, train_batches
    from cifar10.training.precision import resolve

    cfg = params.train.model_copy(update={"precision": resolve(params.train.precision)[0]})
    dtype, batch = COMPUTE_DTYPE[cfg.precision], cfg.batch_size
    started = time.perf_counter()
    x, y = images(steps * (repeats + 1) * batch)
    model = compiled_cnn(cfg, 10, make_cluster("none"), (x[:1], y[:1]))
    # One fit, each step timed: a fit() of a few steps would add Keras' per-fit set-up to every step,
    # which a stage's epoch of hundreds of steps does not pay.
    timer = _step_timer()
    model.fit(train_batches(x, y, batch, 0, 0, 1), epochs=1, steps_per_epoch=len(x) // batch, shuffle=False,
              verbose=0, callbacks=[timer])
    train_per_second, train_setup = timer.rate(batch, timer.begin - started)

    def predict():
        model.predict(eval_batches(x, None, batch), verbose=0)

    first_predict = _seconds(predict)
    predicted = statistics.median(_seconds(predict) for _ in range(repeats))
    return {"cnn_train": Rate(f"CNN training step (batch {batch})", train_per_second, train_setup,
                              training_gflop(model), dtype),
            "cnn_predict": Rate(f"CNN prediction (batch {batch})", len(x) / predicted, first_predict - predicted,
                                sum(forward_flops(model).values()) / 1e9, dtype)}


def transfer_rates(params: Params, n: int, tune_steps: int) -> dict[str, Rate]:
    """The transfer stage's frozen pass, features pass, head step and fine-tuning step, through its own code."""
    from benchmarks.limits import forward_flops
    from benchmarks.train import images
    from cifar10.models import transfer as tm
    from cifar10.models.folding import fold_batch_norm
    from cifar10.models.recast import recast
    from cifar10.training.cached_pass import pass_networks
    from cifar10.training.distribution import make_cluster
    from cifar10.training.embeddings import embed, pooled
    from cifar10.training.precision import resolve

    cfg, cluster, blocks = params.transfer, make_cluster("none"), params.transfer.fine_tune_blocks
    dtype = COMPUTE_DTYPE[resolve(cfg.precision, "frozen")[0]]
    x, _ = images(n)
    started = time.perf_counter()
    backbone, lower, upper, extractor, frozen = pass_networks(cfg, None, cluster, blocks)
    built = time.perf_counter() - started
    batch = min(cfg.embed_batch_size, n)
    traced = _seconds(lambda: embed(extractor, x[:batch], batch))
    started = time.perf_counter()
    maps, _ = embed(extractor, x, cfg.embed_batch_size, dtype="float16" if blocks else "float32")
    per_second = n / (time.perf_counter() - started)
    below = f" below its top {blocks} blocks" if blocks else ""
    rates = {"frozen": Rate(f"frozen pass ({tm.NAMES[cfg.backbone]}{below} at {cfg.image_size} px, batch {batch})",
                            per_second, built + traced - batch / per_second, sum(forward_flops(lower).values()) / 1e9,
                            dtype)}
    if blocks:  # the head's features: the cache through the frozen top blocks, as the stage computes them
        upper_frozen = fold_batch_norm(recast(upper, frozen))
        small = _seconds(lambda: pooled(upper_frozen, maps[:batch], batch, cluster))  # each call traces anew
        full = _seconds(lambda: pooled(upper_frozen, maps, batch, cluster))
        per_second = (n - batch) / (full - small) if full > small and n > batch else n / full
        rates["features"] = Rate(f"features pass (the top {blocks} blocks, batch {batch})", per_second,
                                 small - batch / per_second, sum(forward_flops(upper).values()) / 1e9,
                                 dtype)
    return rates | training_rates(params, backbone, upper, maps, tune_steps)


def training_rates(params: Params, backbone, upper, maps: np.ndarray, tune_steps: int) -> dict[str, Rate]:
    """A step of the head on pooled features and, with fine_tune_blocks, of the top blocks and the head on
    the cached maps: `fit_phase` as the stage trains them, `tune_steps` timed steps after the first."""
    from benchmarks.limits import training_gflop
    from cifar10.models import transfer as tm
    from cifar10.training.distribution import make_cluster
    from cifar10.training.history import EpochHistory
    from cifar10.training.precision import resolve
    from cifar10.runtime import precision
    from cifar10.training.transfer import fit_phase, tuning_model

    cfg, cluster = params.transfer, make_cluster("none")
    policy = resolve(cfg.precision, "fine_tune")[0]
    rng = np.random.default_rng(0)

    def steps(model, x, batch: int, rate: float, started: float) -> tuple[float, float]:
        x, y = np.resize(x, (batch * (tune_steps + 1), *x.shape[1:])), rng.integers(0, 10, batch * (tune_steps + 1))
        timer = _step_timer()
        fit_phase(model, cfg, cluster, x, y, (x[:batch], y[:batch]), (0, 1), batch, rate, EpochHistory(), [timer])
        return timer.rate(batch, timer.begin - started)

    started = time.perf_counter()
    features = rng.standard_normal((cfg.batch_size, tm.FEATURES)).astype(np.float32)
    with cluster.scope(), precision(policy):
        head = tm.build_head(cfg.head.units, cfg.head.activation, cfg.head.dropout, 10,
                             standardize=cfg.head.standardize, l2=cfg.head.l2)
    tm.adapt_head(head, features)
    per_second, setup = steps(head, features, cfg.batch_size, cfg.learning_rate, started)
    rates = {"head": Rate(f"head step (batch {cfg.batch_size})", per_second, setup, training_gflop(head),
                          COMPUTE_DTYPE[policy])}
    if cfg.fine_tune_blocks:
        started = time.perf_counter()
        tuned, _ = tuning_model(backbone, upper, head, maps.shape[1:], cfg.fine_tune_blocks, cfg, cluster)
        per_second, setup = steps(tuned, maps, cfg.fine_tune_batch_size, cfg.fine_tune_learning_rate, started)
        rates["fine_tune"] = Rate(f"fine-tuning step (the top {cfg.fine_tune_blocks} blocks and the head, batch "
                                  f"{cfg.fine_tune_batch_size})", per_second, setup, training_gflop(tuned),
                                  COMPUTE_DTYPE[policy])
    return rates


def measure(params: Params, matmul_size: int = 2048, repeats: int = 15, cnn_steps: int = 10, cnn_repeats: int = 3,
            transfer_images: int = 256, tune_steps: int = 8) -> Speeds:
    """Measure this machine for `params` (smaller arguments: a quicker, rougher measurement)."""
    from benchmarks.limits import matmul_peak
    from cifar10.training.devices import cpu_threads, describe, local_gpus
    from cifar10.training.precision import resolve
    from cifar10.runtime import seed_everything

    seed_everything(params.base.seed, params.base.deterministic)  # as the stages run
    policies = {"train": resolve(params.train.precision, "cnn"), "frozen": resolve(params.transfer.precision, "frozen"),
                "fine_tune": resolve(params.transfer.precision, "fine_tune"),
                "evaluate": resolve(params.evaluate.precision, "frozen")}
    dtypes = dict.fromkeys(["float32", "bfloat16", *(COMPUTE_DTYPE[p] for p, _ in policies.values())])
    peaks = {dtype: matmul_peak(dtype, matmul_size, repeats) for dtype in dtypes}
    rates = {**cnn_rates(params, cnn_steps, cnn_repeats), **transfer_rates(params, transfer_images, tune_steps)}
    return Speeds(peaks, rates, policies, describe(local_gpus()), cpu_threads(),
                  f"{matmul_size}x{matmul_size} matmul, median of {repeats}")


# What a stage's process does before its work: the libraries the stages import, then an MLflow store.
_STARTUP = """
import sys
import keras, matplotlib.pyplot, mlflow, pandas, sklearn.metrics, tensorflow
from mlflow.tracking import MlflowClient
MlflowClient("sqlite:///" + sys.argv[1]).search_experiments()
"""


def stage_startup() -> float:
    """Seconds from a new Python process to a stage's first work: imports and an open MLflow store.

    The store is created by a first process and timed in a second: every stage but the first finds it
    made, and the first run's imports warm the file cache as the pipeline's first stages do."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-c", _STARTUP, f"{tmp}/mlflow.db"]
        subprocess.run(command, check=True, capture_output=True)
        return _seconds(lambda: subprocess.run(command, check=True, capture_output=True))
