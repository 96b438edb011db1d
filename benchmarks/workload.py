"""Each stage's work for a set of params, and its time at measured speeds: arithmetic, no measuring.

The images are counted with the stages' own functions on labels alone (`subsample`, `plan` and
`source_rows`, `split_rows`), so each count is the one the stage will see. A stage's time is one
TensorFlow start-up, the setup of each kind of work it does (building, tracing) and its images over
the measured rate of their kind: never a recorded stage time, scaled. The train stages stop early:
they are expected to run the epochs the committed full run took (RESULTS.md, `EPOCHS_SOURCE`),
capped at train.epochs. The transfer stage's epochs are fixed by its params.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.speeds import Rate, Speeds
from cifar10.augmentation.rebalance import plan, source_rows
from cifar10.classes import CIFAR10_CLASSES
from cifar10.data.dataset import Dataset
from cifar10.data.splits import split_rows
from cifar10.data.subsample import subsample
from cifar10.schema import Params

EPOCHS_SOURCE = Path("RESULTS.md")  # the committed full run's record, the one source of expected epochs
FULL_PER_CLASS = (5000, 1000)  # train and test images per class of CIFAR-10 (download.*_per_class: null)


@dataclass(frozen=True)
class StageTime:
    stage: str
    work: str  # what the stage computes, with its counts
    seconds: float | None  # None: not predicted (no measured kind of work dominates it)
    unpredicted: str = ""  # why not, then


def _labels_only(y: np.ndarray) -> Dataset:
    return Dataset(np.broadcast_to(np.zeros((1, 1), np.uint8), (len(y), 1)), y)  # no pixels: counts only


def training_sets(params: Params) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The labels of each training set (full, imbalanced, augmented) and, for the augmented one, each
    row's original (`source`), as the download, imbalance-subsample and augment stages make them."""
    per_class = params.download.train_per_class or FULL_PER_CLASS[0]
    full = _labels_only(np.repeat(np.arange(len(CIFAR10_CLASSES)), per_class))
    rare = subsample(full, params.imbalance.classes, params.imbalance.keep_fraction, params.base.seed)
    needed = plan(rare, params.augment.classes or params.imbalance.classes, params.augment.target)
    rows, labels = source_rows(rare, needed, params.base.seed)
    return {"raw": (full.y, None), "imbalanced": (rare.y, None),
            "augmented": (np.concatenate([rare.y, labels]), np.concatenate([np.arange(len(rare)), rows]))}


def image_counts(params: Params) -> dict[str, tuple[int, ...]]:
    """Per stage, the images it works on: (training, validation) rows for the train stages, (the set,
    training, validation) for transfer, (set sizes) for the data stages and the test set. Raises the
    stages' own PipelineError where params cannot split (train_size above the set, ...)."""
    sets, seed = training_sets(params), params.base.seed

    def split(name: str, section, labels, source) -> tuple[int, int]:
        source = source if section.validation_from == "originals" else None
        train, val = split_rows(labels, section.validation_split, seed, getattr(section, "train_size", None), name,
                                source)
        return len(train), len(val)

    transfer_set = sets[params.transfer.train_set]
    return {"raw": (len(sets["raw"][0]),), "imbalanced": (len(sets["imbalanced"][0]),),
            "augmented": (len(sets["augmented"][0]),),
            "test": ((params.download.test_per_class or FULL_PER_CLASS[1]) * len(CIFAR10_CLASSES),),
            "train-baseline": split("train", params.train, *sets["imbalanced"]),
            "train-augmented": split("train", params.train, *sets["augmented"]),
            "transfer": (len(transfer_set[0]), *split("transfer", params.transfer, *transfer_set))}


def _at(n: float, rate: Rate) -> float:
    return n / rate.per_second


def cnn_stage(stage: str, counts: tuple[int, int], params: Params, speeds: Speeds, startup: float, epochs: int,
              epochs_from: str) -> StageTime:
    (n_train, n_val), cfg = counts, params.train
    train, predict = speeds.rates["cnn_train"], speeds.rates["cnn_predict"]
    adjust = n_val if cfg.logit_adjustment == "validation" else 0  # one more validation pass after training
    seconds = (startup + train.setup_seconds + predict.setup_seconds
               + epochs * (_at(n_train, train) + _at(n_val, predict)) + _at(adjust, predict))
    return StageTime(stage, f"{epochs} epochs ({epochs_from}) x ({n_train:,} training + {n_val:,} validation "
                            "images)", seconds)


def transfer_stage(counts: tuple[int, int, int], params: Params, speeds: Speeds, startup: float) -> StageTime:
    (n_set, n_train, n_val), cfg, rates = counts, params.transfer, speeds.rates
    passed = n_set + (n_train if cfg.flip_train else 0) + (n_val if cfg.flip_test else 0)
    rows = n_train * (2 if cfg.flip_train else 1)  # feature rows (and cached maps) each epoch trains on
    seconds = startup + rates["frozen"].setup_seconds + _at(passed, rates["frozen"])
    seconds += rates["head"].setup_seconds + cfg.epochs * _at(rows, rates["head"])
    work = f"one pass over {passed:,} images, head {cfg.epochs} epochs x {rows:,} feature rows"
    if cfg.fine_tune_blocks:
        features = rates["features"]
        # Features for the head (training rows, their mirror images, validation) and for the final
        # validation accuracy (validation, its mirror images): each a pass of its own through the top blocks.
        calls = [n_train] * (2 if cfg.flip_train else 1) + [n_val, n_val] + ([n_val] if cfg.flip_test else [])
        seconds += sum(features.setup_seconds + _at(n, features) for n in calls)
        tune = rates["fine_tune"]
        seconds += tune.setup_seconds + cfg.fine_tune_epochs * (_at(rows, tune) + _at(n_val, features))
        work += (f", {len(calls)} passes of {sum(calls):,} cached maps through the top {cfg.fine_tune_blocks} "
                 f"blocks, fine-tuning {cfg.fine_tune_epochs} epochs x {rows:,} maps")
    return StageTime("transfer", work, seconds)


def evaluate_stage(model: str, n_test: int, params: Params, speeds: Speeds, startup: float) -> StageTime:
    rates = speeds.rates
    if model not in ("frozen", "transfer"):
        return StageTime(f"evaluate@{model}", f"{n_test:,} test images",
                         startup + rates["cnn_predict"].setup_seconds + _at(n_test, rates["cnn_predict"]))
    images = n_test * (2 if params.transfer.flip_test else 1)  # the saved model averages the mirror images
    # Either model runs the whole backbone: the part below the cut (as the frozen pass), the blocks above it.
    parts = [rates["frozen"]] + ([rates["features"]] if params.transfer.fine_tune_blocks else [])
    return StageTime(f"evaluate@{model}", f"{images:,} images through the whole {model} model",
                     startup + sum(r.setup_seconds + _at(images, r) for r in parts))


def predict(params: Params, speeds: Speeds, startup: float, recorded: dict[str, int]) -> list[StageTime]:
    """Every stage of the pipeline `params` describe, in dvc.yaml's order, with its predicted seconds.

    Args:
        startup: seconds of one TensorFlow start-up, which every stage that computes with it pays.
        recorded: epochs the committed full run's train stages took (stage -> epochs).
    """
    counts = image_counts(params)
    (n_full,), (n_rare,), (n_aug,), (n_test,) = (counts[k] for k in ("raw", "imbalanced", "augmented", "test"))
    out = [StageTime("download", f"{n_full:,} training + {n_test:,} test images", None, "network and disk"),
           StageTime("imbalance-subsample", f"{n_full:,} -> {n_rare:,} training images", None, "NumPy, no TensorFlow"),
           StageTime("augment", f"{n_aug - n_rare:,} synthetic images", None, "its geometry is not measured")]
    for stage in ("train-baseline", "train-augmented"):
        epochs, source = params.train.epochs, "train.epochs" + ("" if stage in recorded else ": no full run recorded")
        if recorded.get(stage, epochs) < epochs:
            epochs, source = recorded[stage], f"the full run's, {EPOCHS_SOURCE}"
        out.append(cnn_stage(stage, counts[stage], params, speeds, startup, epochs, source))
    out += [StageTime("fetch-weights", f"{params.transfer.backbone} weights: {params.transfer.weights}", None,
                      "network"),
            transfer_stage(counts["transfer"], params, speeds, startup)]
    out += [evaluate_stage(model, n_test, params, speeds, startup) for model in params.evaluate.models]
    return out + [StageTime("compare", f"{len(params.evaluate.models)} reports", None, "no TensorFlow")]
