"""Training on several devices or machines with tf.distribute: who is chief, which rows each worker reads.

`train.distribution`:
- `none`: the default single-device path.
- `mirrored`: `tf.distribute.MirroredStrategy` over all local GPUs (the CPU when there is none).
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy`; the workers are described by the
  standard TF_CONFIG environment variable, and every worker runs the same command.

`train.batch_size` is the GLOBAL batch: each of the R replicas gets batch_size / R images per step,
so a run on 1 or 8 replicas takes the same optimisation steps and the learning rate needs no
scaling. Each worker reads its own shard of the training rows (rows[worker::workers], auto-sharding
off), so what it saw is explicit; with TRAIN_SHARD_REPORT_DIR set, it writes that shard as JSON there.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar10.errors import PipelineError

SHARD_REPORT_ENV = "TRAIN_SHARD_REPORT_DIR"


@dataclass
class Cluster:
    """The strategy of this process and its place in the cluster (chief writes outputs and logs)."""

    name: str
    strategy: object | None  # None for `none`: Keras' default single-device path
    task_type: str = "worker"
    task_index: int = 0
    is_chief: bool = True

    @property
    def replicas(self) -> int:
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    def scope(self):
        import contextlib

        return contextlib.nullcontext() if self.strategy is None else self.strategy.scope()


def task_role(tf_config: str | None) -> tuple[str, int, bool]:
    """(task type, task index, is chief) from TF_CONFIG: the chief is task `chief`, or worker 0 when
    the cluster has no chief (TensorFlow's convention)."""
    if not tf_config:
        raise PipelineError(
            "params.yaml: train.distribution: multi_worker needs the TF_CONFIG environment variable "
            "(cluster and task of this worker); use mirrored for the devices of one machine"
        )
    try:
        conf = json.loads(tf_config)
        cluster, task = conf["cluster"], conf["task"]
        task_type, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineError(
            f"TF_CONFIG: must be JSON with cluster and task {{type, index}} ({type(exc).__name__}: {exc})"
        ) from None
    if task_type not in cluster or not 0 <= index < len(cluster[task_type]):
        raise PipelineError(f"TF_CONFIG: task {task_type}:{index} is not in the cluster {sorted(cluster)}")
    is_chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
    return task_type, index, is_chief


def make_cluster(name: str) -> Cluster:
    """Create the strategy. Call it before any other TensorFlow op: collective ops are configured at
    program start-up."""
    if name == "none":
        return Cluster(name, None)
    import tensorflow as tf

    if name == "mirrored":
        return Cluster(name, tf.distribute.MirroredStrategy())
    task_type, index, is_chief = task_role(os.environ.get("TF_CONFIG"))
    _fix_keras_multi_worker_logs()
    return Cluster(name, tf.distribute.MultiWorkerMirroredStrategy(), task_type, index, is_chief)


def _fix_keras_multi_worker_logs() -> None:
    """Keras 3 averages each step's logs over the workers with strategy.reduce(MEAN, v, axis=0), which
    fails on the scalar loss and metrics ("Invalid reduction dimension 0 for input with 0 dimensions",
    tensorflow/tensorflow#72388). Average them with axis=None, a plain all-reduce across replicas."""
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "scalar_safe", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.scalar_safe = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def per_replica_batch(global_batch: int, replicas: int) -> int:
    if global_batch % replicas:
        raise PipelineError(
            f"params.yaml: train.batch_size: the global batch must split evenly over the {replicas} "
            f"replicas (got {global_batch})"
        )
    return global_batch // replicas


def rows_digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(rows, dtype=np.int64)).tobytes()).hexdigest()


def sharded_batches(cluster: Cluster, x: np.ndarray, y: np.ndarray, rows: np.ndarray, global_batch: int,
                    seed: int, epochs: range, shuffle: bool):
    """A distributed dataset over `epochs`, each worker reading only its shard of `rows` (auto-sharding
    off), and the number of steps per epoch.

    Every worker must run the same number of steps (each step is a collective all-reduce), so every
    replica gets full per-replica batches and a shard that does not fill its last batches wraps
    around to its start: at most one batch per replica per epoch repeats images of that epoch.
    Each epoch's order is a pure function of (seed, epoch), as on the single-device path.
    """
    import tensorflow as tf

    per_replica = per_replica_batch(global_batch, cluster.replicas)
    found: dict = {}

    def dataset_fn(ctx: tf.distribute.InputContext):
        workers, worker = ctx.num_input_pipelines, ctx.input_pipeline_id
        local_replicas = cluster.replicas // workers
        mine = rows[worker::workers]
        steps = math.ceil(math.ceil(len(rows) / workers) / (per_replica * local_replicas))
        per_epoch = steps * per_replica * local_replicas
        found.update(worker=worker, workers=workers, steps=steps, rows=mine, per_replica=per_replica)
        x_t, y_t = tf.constant(x), tf.constant(y)
        mine_t = tf.constant(mine, tf.int64)
        reps = math.ceil(per_epoch / len(mine))

        def one_epoch(epoch):
            order = mine_t
            if shuffle:
                key = tf.stack([tf.constant(seed, tf.int64), epoch])
                order = tf.random.experimental.stateless_shuffle(mine_t, seed=key)
            return tf.data.Dataset.from_tensor_slices(tf.tile(order, [reps])[:per_epoch])

        ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(epochs), tf.int64)).flat_map(one_epoch)
        ds = ds.batch(per_replica, drop_remainder=True).map(lambda i: (tf.gather(x_t, i), tf.gather(y_t, i)))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

    dist = cluster.strategy.distribute_datasets_from_function(dataset_fn)
    return dist, found


def describe_shard(cluster: Cluster, found: dict) -> dict:
    """What this worker trains on: its place, batch, steps, and the count and digest of its rows."""
    return {
        "task_type": cluster.task_type, "task_index": cluster.task_index, "is_chief": cluster.is_chief,
        "worker": found["worker"], "workers": found["workers"], "replicas": cluster.replicas,
        "per_replica_batch": found["per_replica"], "steps_per_epoch": found["steps"],
        "examples": len(found["rows"]), "rows_sha256": rows_digest(found["rows"]),
        "rows": [int(r) for r in found["rows"]],
    }


def write_shard_report(stage: str, shard: dict) -> Path | None:
    """Write this worker's shard (rows included) as <TRAIN_SHARD_REPORT_DIR>/<stage>-<task>.json, if set."""
    folder = os.environ.get(SHARD_REPORT_ENV)
    if not folder or not shard:
        return None
    path = Path(folder) / f"{stage}-{shard['task_type']}{shard['task_index']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stage": stage, **shard}))
    return path


def save_on_worker(model) -> None:
    """Save on a non-chief worker into a temporary folder, then delete it: saving may read variables
    through collectives the chief's save takes part in (TensorFlow's multi-worker saving guidance)."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="train-worker-")
    try:
        model.save(Path(folder) / "model.keras")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
