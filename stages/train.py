"""Stages train-baseline and train-augmented: the study's CNN on the imbalanced or the augmented set.

`python -m stages.train --variant baseline|augmented` trains with the `train` params, keeps per-epoch
curves (MLflow + plots/<variant>/history.csv), reports per-class test metrics and writes
models/<variant>.keras. A killed run resumes from its last completed epoch (see stages.train_backup).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from stages import dataset
from stages.atomic import atomic_output
from stages.cnn import build_cnn, check_model_params, param_counts
from stages.distribution import Cluster, describe_shard, make_cluster, sharded_batches
from stages.errors import PipelineError, cli_errors
from stages.schema.train import TrainParams
from stages.train_data import eval_batches, split_rows, train_batches

VARIANTS = {"baseline": dataset.IMBALANCED_TRAIN, "augmented": dataset.AUGMENTED_TRAIN}
BACKUP_ROOT = Path(".train_backup")  # outside every DVC out, so `dvc repro` never deletes it


def make_optimizer(cfg: TrainParams):
    import keras

    opt = cfg.optimizer
    if opt.name == "adam":
        return keras.optimizers.Adam(opt.learning_rate)
    if opt.name == "sgd":
        return keras.optimizers.SGD(opt.learning_rate, momentum=opt.momentum)
    if opt.name == "rmsprop":
        return keras.optimizers.RMSprop(opt.learning_rate, momentum=opt.momentum)
    return keras.optimizers.Adadelta(opt.learning_rate)


def _build_compiled_state(model, x, y) -> None:
    """Build the metrics, loss and optimizer state on a plain batch, as fit() would, and skip fit()'s own
    step: under a strategy Keras 3.15 first passes the whole per-replica (x, y) batch to
    strategy.reduce, which MultiWorkerMirroredStrategy rejects ("Attempt to convert a value
    (PerReplica...) to a Tensor"). Call it inside the strategy's scope."""
    model._symbolic_build(data_batch=(x, y))
    model._maybe_symbolic_build = lambda *args, **kwargs: None


def train(train_ds: dataset.Dataset, cfg: TrainParams, seed: int, deterministic: bool = True,
          callbacks: list | None = None, backup_dir: str | Path | None = None, cluster: Cluster | None = None):
    """Train the CNN on `train_ds` with early stopping on a validation split carved from it.

    Args:
        train_ds: training images (uint8) and labels.
        cfg: the `train` params.
        seed, deterministic: `base.seed` and `base.deterministic`.
        callbacks: extra Keras callbacks (e.g. an EpochLogger), called before early stopping.
        backup_dir: where to keep per-epoch state for resuming; None = no backup.
        cluster: the tf.distribute set-up (stages.distribution.make_cluster, made first thing in the
            process); None = made here from `cfg.distribution`.

    Returns:
        (model, history, info): the model with the best weights (if restore_best_weights), the
        per-epoch rows {epoch, loss, accuracy, val_loss, val_accuracy, learning_rate} of all epochs
        (also those of an interrupted earlier run), and a dict of run facts (best_epoch, ...; under a
        strategy, `shard`: the rows this worker trained on, see stages.distribution.describe_shard).
    """
    import keras

    from stages.runtime import seed_everything, set_precision
    from stages.train_backup import ResumableEarlyStopping, TrainingBackup

    check_model_params(cfg.model)
    train_rows, val_rows = split_rows(train_ds.y, cfg, seed)
    cluster = cluster or make_cluster(cfg.distribution)
    seed_everything(seed, deterministic)
    previous_policy = keras.mixed_precision.global_policy().name
    set_precision(cfg.precision)
    try:
        with cluster.scope():
            model = build_cnn(cfg.model, n_classes=len(train_ds.classes))
            model.compile(optimizer=make_optimizer(cfg), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"], jit_compile=False)  # XLA is several times slower on CPU
            if cluster.strategy is not None:
                _build_compiled_state(model, train_ds.x[:1], train_ds.y[:1])
    finally:
        set_precision(previous_policy)

    es = ResumableEarlyStopping(monitor=cfg.early_stopping.monitor, patience=cfg.early_stopping.patience,
                                restore_best_weights=cfg.early_stopping.restore_best_weights)
    backup = TrainingBackup(backup_dir)
    backup.early_stopping = es
    state = backup.load()
    first_epoch, stopped = 0, False
    with cluster.scope():  # a mirrored model's optimizer slots are built under its strategy
        restored = state is not None and backup.restore(model, state)
    if restored:
        es.resume_from, es.resume_best_weights = state.early_stopping, state.best_weights
        first_epoch = cfg.epochs if state.stopped else min(state.epochs_done, cfg.epochs)
        stopped = state.stopped

    shard: dict = {}
    if cluster.strategy is None:
        x_train, y_train = train_ds.x[train_rows], train_ds.y[train_rows]
        train_data = train_batches(x_train, y_train, cfg.batch_size, seed, first_epoch, cfg.epochs)
        steps, val_steps = math.ceil(len(train_rows) / cfg.batch_size), None
        val_data = eval_batches(train_ds.x[val_rows], train_ds.y[val_rows], cfg.batch_size)
    else:
        x, y = train_ds.x, train_ds.y
        train_data, found = sharded_batches(cluster, x, y, train_rows, cfg.batch_size, seed,
                                            range(first_epoch, cfg.epochs), shuffle=True)
        val_data, val_found = sharded_batches(cluster, x, y, val_rows, cfg.batch_size, seed,
                                              range(max(cfg.epochs - first_epoch, 1)), shuffle=False)
        steps, val_steps = found["steps"], val_found["steps"]
        shard = describe_shard(cluster, found)
    started = time.perf_counter()
    if first_epoch < cfg.epochs:
        model.fit(
            train_data, epochs=cfg.epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
            validation_data=val_data, validation_steps=val_steps,
            callbacks=[*(callbacks or []), es, backup], shuffle=False, verbose=0,
        )
        stopped = bool(model.stop_training)
    elif cfg.early_stopping.restore_best_weights and state.best_weights is not None:
        model.set_weights(state.best_weights)  # training had finished; only the final restore was lost
    seconds = time.perf_counter() - started
    history = backup.history
    epochs_here = len(history) - first_epoch if first_epoch < cfg.epochs else 0
    info = {
        "best_epoch": int(es.best_epoch) + 1 if es.best is not None else len(history),
        "epochs_run": len(history),
        "stopped_early": stopped,
        "resumed_from_epoch": first_epoch,
        "train_images": len(train_rows),
        "val_images": len(val_rows),
        "train_seconds": seconds,
        "images_per_s": epochs_here * len(train_rows) / seconds if epochs_here and seconds > 0 else 0.0,
        "shard": shard,
        **param_counts(model),
    }
    return model, history, info


def predict_labels(model, x: np.ndarray, batch: int) -> np.ndarray:
    """Predicted class per image."""
    probs = model.predict(eval_batches(x, None, batch), verbose=0)
    return np.argmax(probs, axis=1)


def backup_folder(variant: str, cfg_json: str, data_path: Path) -> Path:
    """The resume folder of this variant, keyed to everything that shapes training."""
    digest = hashlib.sha256(cfg_json.encode())
    with open(data_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return BACKUP_ROOT / f"{variant}-{digest.hexdigest()[:16]}"


def _report_table(report: dict, classes) -> tuple[str, str]:
    rows = [(name, report[name]) for name in [*classes, "macro avg", "weighted avg"]]
    csv = "class,precision,recall,f1,support\n" + "".join(
        f"{n},{r['precision']:.4f},{r['recall']:.4f},{r['f1-score']:.4f},{int(r['support'])}\n" for n, r in rows
    )
    md = "| class | precision | recall | f1 | support |\n| --- | --- | --- | --- | --- |\n" + "".join(
        f"| {n} | {r['precision']:.2f} | {r['recall']:.2f} | {r['f1-score']:.2f} | {int(r['support'])} |\n"
        for n, r in rows
    ) + f"\naccuracy: {report['accuracy']:.4f}\n"
    return csv, md


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    args = parser.parse_args(argv)

    from stages.schema import load_params

    params = load_params()
    cfg = params.train
    check_model_params(cfg.model)
    stage = f"train-{args.variant}"
    train_path, model_path = VARIANTS[args.variant], Path(f"models/{args.variant}.keras")
    history_csv = Path(f"plots/{args.variant}/history.csv")
    for path in (train_path, dataset.RAW_TEST):
        if not path.exists():
            producer = "download" if path == dataset.RAW_TEST else {"baseline": "imbalance-subsample"}.get(
                args.variant, "augment")
            raise PipelineError(f"{path} not found: run `dvc repro {producer}` first")

    from stages.distribution import write_shard_report

    cluster = make_cluster(cfg.distribution)  # before any other TF op (collectives are set up at start-up)
    from stages.epoch_logging import EpochLogger, write_history
    from stages.evaluation import class_report, confusion, confusion_figure, flat_metrics
    from stages.tracking import NullTracker, stage_run
    from stages.train_backup import TrainingBackup

    # Only the chief records the run and writes outputs; the other workers train with it and stop.
    run = stage_run(stage, params, sections=["base", "train"]) if cluster.is_chief else \
        contextlib.nullcontext(NullTracker(stage))
    with run as tracker:
        train_ds, test_ds = dataset.load(train_path), dataset.load(dataset.RAW_TEST)
        backup_dir, earlier = None, None
        # A multi-worker run does not resume: every worker would have to restore the same epoch, and
        # the workers' states cannot be agreed on before training; it restarts from epoch 1.
        if cluster.name != "multi_worker":
            key = json.dumps([cfg.model_dump(), params.base.model_dump()], sort_keys=True)
            backup_dir = backup_folder(args.variant, key, train_path)
            for stale in BACKUP_ROOT.glob(f"{args.variant}-*"):
                if stale != backup_dir:
                    shutil.rmtree(stale, ignore_errors=True)  # left by a run with other params or data
            earlier = TrainingBackup(backup_dir).load()
        label = f"{stage}: " if cluster.is_chief else f"{stage} ({cluster.task_type} {cluster.task_index}): "
        logger = EpochLogger(tracker if cluster.is_chief else None, history_csv if cluster.is_chief else None,
                             history=earlier.history if earlier else None, label=label)
        for row in earlier.history if earlier else []:  # this run's curves start at epoch 1 too
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        model, history, info = train(train_ds, cfg, params.base.seed, params.base.deterministic,
                                     callbacks=[logger], backup_dir=backup_dir, cluster=cluster)
        shard = info.pop("shard")
        if shard:
            write_shard_report(stage, shard)
            print(f"{label}worker {shard['worker']} of {shard['workers']} trained on {shard['examples']} "
                  f"of {info['train_images']} images (rows sha256 {shard['rows_sha256'][:12]}), "
                  f"{shard['replicas']} replica(s) x {shard['per_replica_batch']} images per step",
                  file=sys.stderr)
        if not cluster.is_chief:
            _save_on_worker(model)
            return
        write_history(history_csv, history)
        with atomic_output(model_path) as tmp:
            model.save(tmp)
            # A distributed model predicts through collectives the other workers no longer join;
            # the saved copy is a plain single-device model.
            predictor = model if cluster.strategy is None else _load_plain(tmp)
        y_pred = predict_labels(predictor, test_ds.x, cfg.batch_size)
        report = class_report(test_ds.y, y_pred, test_ds.classes)

        tracker.log_metrics({**flat_metrics(report, test_ds.classes), "best_epoch": info["best_epoch"],
                             "epochs_run": info["epochs_run"], "train_seconds": info["train_seconds"],
                             "train_images_per_s": info["images_per_s"], "params_total": info["params_total"],
                             "params_trainable": info["params_trainable"],
                             "params_non_trainable": info["params_non_trainable"]})
        tracker.log_params({"train_images": info["train_images"], "val_images": info["val_images"],
                            "resumed_from_epoch": info["resumed_from_epoch"], "replicas": cluster.replicas})
        if shard:
            tracker.log_params({f"shard_{k}": v for k, v in shard.items() if k != "rows"})
        tracker.log_dict(report, "test_report.json")
        csv, md = _report_table(report, test_ds.classes)
        tracker.log_text(csv, "test_report.csv")
        tracker.log_text(md, "test_report.md")
        matrix = confusion(test_ds.y, y_pred, len(test_ds.classes))
        fig = confusion_figure(matrix, test_ds.classes, f"{stage}: test set")
        tracker.log_figure(fig, "confusion_matrix.png")
        lines: list[str] = []
        model.summary(print_fn=lambda line, *a, **k: lines.append(line))
        tracker.log_text("\n".join(lines), "model_summary.txt")
        tracker.log_artifact(history_csv, "curves")
        TrainingBackup(backup_dir).delete()
        print(f"{stage}: test accuracy {report['accuracy']:.4f}, macro F1 {report['macro avg']['f1-score']:.4f}, "
              f"best epoch {info['best_epoch']} of {info['epochs_run']} -> {model_path}")


def _save_on_worker(model) -> None:
    """Save on a non-chief worker into a temporary folder, then delete it: saving may read variables
    through collectives the chief's save takes part in (TensorFlow's multi-worker saving guidance)."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="train-worker-")
    try:
        model.save(Path(folder) / "model.keras")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _load_plain(path: Path):
    import keras

    return keras.models.load_model(path)


if __name__ == "__main__":
    main()
