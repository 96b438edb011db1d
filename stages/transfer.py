"""transfer stage: frozen EfficientNet-B0, one backbone pass over the images, a dense head on the cached features.

With the backbone frozen and in inference mode its output is a fixed function of the image, so the
features of the training and test images are computed once and the head trains on them: 20 head
epochs cost seconds instead of 20 backbone passes. The saved model is the whole chain (uint8 32x32
images in, 10 probabilities out). `fine_tune_layers > 0` then trains the top of the backbone too,
through the whole model, without a cache.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stages import dataset
from stages.atomic import atomic_output, remove_output
from stages.dataset import Dataset
from stages.errors import PipelineError, cli_errors
from stages.schema import load_params
from stages.schema.transfer import TransferParams

MODEL_PATH = Path("models/transfer.keras")
HISTORY_CSV = Path("plots/transfer/history.csv")
TRAIN_FILES = {"full": dataset.RAW_TRAIN, "imbalanced": dataset.IMBALANCED_TRAIN, "augmented": dataset.AUGMENTED_TRAIN}


@dataclass
class TransferResult:
    model: object  # the whole keras.Model
    head: object
    test_probabilities: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def _strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()  # the default, single-device strategy


def train_transfer(
    train: Dataset, test: Dataset, cfg: TransferParams, weights: Path | None, seed: int, callbacks: list = ()
) -> TransferResult:
    """Embed once, train the head on the cached features, optionally fine-tune; return the whole model.

    Args:
        train, test: uint8 datasets; the head's validation split is carved from `train` (stratified).
        cfg: the transfer params.
        weights: backbone weights file, or None for random weights.
        seed: seed of the validation split and the fine-tuning shuffle.
        callbacks: Keras callbacks for the head (and fine-tuning) fits, e.g. an EpochLogger.
    """
    import keras
    import tensorflow as tf

    from stages.embeddings import embed, stratified_split
    from stages import transfer_model as tm

    timings: dict[str, float] = {}
    tr_idx, val_idx = stratified_split(train.y, cfg.validation_split, seed)
    with _strategy(cfg.distribution).scope():
        backbone = tm.build_backbone(cfg.image_size, weights)
        extractor = tm.build_extractor(backbone, cfg.image_size)
        head = tm.build_head(cfg.head.units, cfg.head.activation, cfg.head.dropout, len(train.classes),
                             standardize=cfg.head.standardize)
        head.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model = tm.build_whole(extractor, head)
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    started = time.perf_counter()
    train_features, rate = embed(extractor, train.x, cfg.embed_batch_size, desc="embed train")
    test_features, _ = embed(extractor, test.x, cfg.embed_batch_size, desc="embed test")
    timings["embed_seconds"] = time.perf_counter() - started
    timings["embed_images_per_second"] = (len(train) + len(test)) / timings["embed_seconds"]
    timings["embed_train_images_per_second"] = rate

    started = time.perf_counter()
    tm.adapt_head(head, train_features[tr_idx])
    head.fit(
        train_features[tr_idx], train.y[tr_idx],
        validation_data=(train_features[val_idx], train.y[val_idx]),
        epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=0, callbacks=list(callbacks),
    )
    timings["head_seconds"] = time.perf_counter() - started
    del train_features

    if cfg.fine_tune_layers == 0:
        probabilities = head.predict(test_features, batch_size=cfg.batch_size, verbose=0)
    else:
        started = time.perf_counter()
        with _strategy(cfg.distribution).scope():
            trainable = tm.unfreeze_top(backbone, cfg.fine_tune_layers)
            # Recompile so the new trainable set and the low learning rate take effect.
            model.compile(optimizer=keras.optimizers.Adam(cfg.fine_tune_learning_rate),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        print(f"fine-tuning {trainable} backbone layers with weights for {cfg.fine_tune_epochs} epochs",
              file=sys.stderr)

        def batches(idx: np.ndarray, shuffle: bool):
            ds = tf.data.Dataset.from_tensor_slices((train.x[idx], train.y[idx]))
            if shuffle:
                ds = ds.shuffle(len(idx), seed=seed, reshuffle_each_iteration=True)
            return ds.batch(cfg.fine_tune_batch_size).prefetch(tf.data.AUTOTUNE)

        model.fit(batches(tr_idx, True), validation_data=batches(val_idx, False), verbose=0,
                  initial_epoch=cfg.epochs, epochs=cfg.epochs + cfg.fine_tune_epochs, callbacks=list(callbacks))
        timings["fine_tune_seconds"] = time.perf_counter() - started
        probabilities = model.predict(test.x, batch_size=cfg.embed_batch_size, verbose=0)
    sizes = {"n_train": len(tr_idx), "n_validation": len(val_idx), "n_test": len(test)}
    return TransferResult(model, head, np.asarray(probabilities), timings, sizes)


def check_declared_dep(path: Path, dvc_file: Path = Path("dvc.yaml")) -> None:
    """Refuse a training file the transfer stage's DVC deps do not list: its changes would go unnoticed.

    DVC cannot make a dependency depend on a param, so dvc.yaml lists data/raw (train_set: full);
    `imbalanced` and `augmented` need their file added to the deps by hand.
    """
    import yaml

    if not dvc_file.is_file():
        return  # run outside a DVC project (tests, notebooks): nothing to keep in sync
    stage = (yaml.safe_load(dvc_file.read_text()) or {}).get("stages", {}).get("transfer")
    if not stage:
        return
    deps = [str(d).rstrip("/") for d in stage.get("deps", [])]
    if not any(str(path) == d or str(path).startswith(d + "/") for d in deps):
        raise PipelineError(
            f"{dvc_file}: stage transfer does not list {path} in its deps, which transfer.train_set reads: "
            "add it there (DVC cannot derive deps from params)"
        )


@cli_errors
def main() -> None:
    wall = time.perf_counter()
    params = load_params()
    cfg = params.transfer
    if cfg.distribution == "multi_worker":  # every worker would log a run and write the model
        raise PipelineError("params.yaml: transfer.distribution: none or mirrored; multi_worker is "
                            "supported by the train stages only (got multi_worker)")
    from stages.fetch_weights import read_manifest

    train_path = TRAIN_FILES[cfg.train_set]
    check_declared_dep(train_path)
    manifest, weights = read_manifest(cfg)
    train, test = dataset.load(train_path), dataset.load(dataset.RAW_TEST)
    if len(train) < 2 * len(train.classes):
        raise PipelineError(f"{train_path}: {len(train)} images; the head needs at least 2 per class")

    from stages.epoch_logging import EpochLogger
    from stages.evaluation import class_report, confusion, confusion_figure, flat_metrics
    from stages.runtime import seed_everything
    from stages.tracking import stage_run
    from stages.transfer_model import BACKBONE_NAME

    remove_output(HISTORY_CSV)
    transfer_learning = weights is not None
    with stage_run("transfer", params, sections=["base", "transfer"]) as tracker:
        tracker.set_tags({
            "backbone": BACKBONE_NAME, "weights_source": manifest["source"], "weights_kind": manifest["kind"],
            "weights_checksum": manifest["checksum"] or "none", "transfer_learning": str(transfer_learning).lower(),
            "train_set": cfg.train_set, "fine_tuned": str(cfg.fine_tune_layers > 0).lower(),
        })
        if not transfer_learning:
            print("weights: none — random backbone, this is NOT transfer learning", file=sys.stderr)
        seed_everything(params.base.seed, params.base.deterministic)
        logger = EpochLogger(tracker, HISTORY_CSV, label="transfer ")
        try:
            result = train_transfer(train, test, cfg, weights, params.base.seed, [logger])
            with atomic_output(MODEL_PATH) as tmp:
                result.model.save(tmp)
        except BaseException:
            remove_output(HISTORY_CSV)
            raise
        y_pred = result.test_probabilities.argmax(axis=1)
        report = class_report(test.y, y_pred, test.classes)
        matrix = confusion(test.y, y_pred, len(test.classes))
        metrics = flat_metrics(report, test.classes)
        tracker.log_metrics({**metrics, **result.timings, **result.sizes,
                             "wall_seconds": time.perf_counter() - wall})
        tracker.log_dict(report, "classification_report.json")
        tracker.log_dict(manifest, "weights.json")
        tracker.log_figure(confusion_figure(matrix, test.classes, "transfer (test set)"), "confusion_matrix.png")
        tracker.log_artifact(HISTORY_CSV)
    print(f"transfer: test accuracy {metrics['test_accuracy']:.4f}, macro F1 {metrics['test_macro_f1']:.4f}, "
          f"backbone {result.timings['embed_images_per_second']:.1f} images/s, "
          f"wall {time.perf_counter() - wall:.1f}s -> {MODEL_PATH}", file=sys.stderr)


if __name__ == "__main__":
    main()
