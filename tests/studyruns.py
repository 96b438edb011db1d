"""MLflow records of study runs, made up for the page's tests: a training run as a stage logs it, and a
Trained record as STUDIES.json holds it."""
from __future__ import annotations

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric

from cifar10.classes import CIFAR10_CLASSES
from writeup.studies.plan import SITTING_TAG
from writeup.studies.records import Trained


def class_counts(accuracy: float, cat: float = 0.3, dog: float = 0.4) -> dict[str, float]:
    """Per-class test support and recall of a balanced 10,000-image test set: cat and dog at theirs, the other
    classes at the recall that makes `accuracy` the mean."""
    other = (10 * accuracy - cat - dog) / 8
    recall = {c: {"cat": cat, "dog": dog}.get(c, other) for c in CIFAR10_CLASSES}
    return {**{f"test_recall_{c}": r for c, r in recall.items()},
            **{f"test_support_{c}": 1000.0 for c in CIFAR10_CLASSES}}


def training_run(client, exp_id, name, model, accuracy, curve, seed=42, epochs=None, best=None, restore=True,
                 balanced=(), data_md5="0123456789abcdef0123456789abcdef", cpu="Test CPU", commit="abc1234def"):
    stage = {"baseline": "train-baseline", "augmented": "train-augmented"}[model]
    run_ = client.create_run(exp_id, run_name=stage, tags={"stage": stage, "dvc_exp_name": name, "git_commit": commit,
                                                           "cpu": cpu})
    rid = run_.info.run_id
    for key, value in {"base.seed": seed, "train.precision": "float32", "train.epochs": 50,
                       "train.early_stopping.restore_best_weights": restore, "val_images": 4100}.items():
        client.log_param(rid, key, str(value))
    history = [Metric("val_accuracy", v, 0, e + 1) for e, v in enumerate(curve)]
    history += [Metric("val_loss", 1 - v, 0, e + 1) for e, v in enumerate(curve)]
    history += [Metric("val_balanced_accuracy", v, 0, e + 1) for e, v in enumerate(balanced)]
    summary = {"test_accuracy": accuracy, "test_macro_f1": accuracy - 0.01, **class_counts(accuracy),
               "epochs_run": epochs or len(curve), "best_epoch": best or len(curve), "train_images_per_s": 500.0}
    client.log_batch(rid, metrics=history + [Metric(k, v, 0, 0) for k, v in summary.items()])
    train_set = {"baseline": "data/imbalanced/train", "augmented": "data/augmented/train"}[model]
    client.log_inputs(rid, [DatasetInput(Dataset(train_set, data_md5, "local", "{}"),
                                         [InputTag("mlflow.data.context", "training")]),
                            DatasetInput(Dataset("data/raw/test", "f" * 32, "local", "{}"),
                                         [InputTag("mlflow.data.context", "evaluation")])])
    client.set_terminated(rid, "FINISHED")
    return rid


def trained(name, acc, ips=500.0, val=(0.6, 0.7, 0.65), restore=True, cpu="CPU A", data=None, sitting=None,
            resumed_from=0, commit="abc1234def", seed=42, model="baseline", cat=0.3, dog=0.4):
    metrics = {"test_accuracy": acc, "test_macro_f1": acc, **class_counts(acc, cat, dog),
               "epochs_run": len(val), "best_epoch": 2, "train_images_per_s": ips}
    return Trained(name, model, "id", metrics, {"train.early_stopping.restore_best_weights": str(restore),
                                                "resumed_from_epoch": str(resumed_from), "base.seed": str(seed),
                                                "val_images": "4100"},
                   {"cpu": cpu, "git_commit": commit, **({SITTING_TAG: sitting} if sitting else {})},
                   {"val_accuracy": list(val), "val_balanced_accuracy": list(val)},
                   {f"data/{'imbalanced' if model == 'baseline' else 'augmented'}/train": data} if data else {})
