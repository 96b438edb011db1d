"""MLflow records of study runs, made up for the page's tests: a training run as a stage logs it, and a
Trained record as STUDIES.json holds it."""
from __future__ import annotations

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric

from writeup.studies.plan import SITTING_TAG
from writeup.studies.records import Trained


def training_run(client, exp_id, name, model, accuracy, curve, seed=42, epochs=None, best=None, restore=True,
                 balanced=(), data_md5="0123456789abcdef0123456789abcdef", cpu="Test CPU"):
    stage = {"baseline": "train-baseline", "augmented": "train-augmented"}[model]
    run_ = client.create_run(exp_id, run_name=stage, tags={"stage": stage, "dvc_exp_name": name, "git_commit": "abc1234def",
                                                           "cpu": cpu})
    rid = run_.info.run_id
    for key, value in {"base.seed": seed, "train.precision": "float32", "train.epochs": 50,
                       "train.early_stopping.restore_best_weights": restore}.items():
        client.log_param(rid, key, str(value))
    history = [Metric("val_accuracy", v, 0, e + 1) for e, v in enumerate(curve)]
    history += [Metric("val_loss", 1 - v, 0, e + 1) for e, v in enumerate(curve)]
    history += [Metric("val_balanced_accuracy", v, 0, e + 1) for e, v in enumerate(balanced)]
    summary = {"test_accuracy": accuracy, "test_macro_f1": accuracy - 0.01, "test_recall_cat": 0.3, "test_recall_dog": 0.4,
               "epochs_run": epochs or len(curve), "best_epoch": best or len(curve), "train_images_per_s": 500.0}
    client.log_batch(rid, metrics=history + [Metric(k, v, 0, 0) for k, v in summary.items()])
    train_set = {"baseline": "data/imbalanced/train", "augmented": "data/augmented/train"}[model]
    client.log_inputs(rid, [DatasetInput(Dataset(train_set, data_md5, "local", "{}"),
                                         [InputTag("mlflow.data.context", "training")]),
                            DatasetInput(Dataset("data/raw/test", "f" * 32, "local", "{}"),
                                         [InputTag("mlflow.data.context", "evaluation")])])
    client.set_terminated(rid, "FINISHED")


def trained(name, acc, ips=500.0, val=(0.6, 0.7, 0.65), restore=True, cpu="CPU A", data=None, sitting=None,
            resumed_from=0):
    metrics = {"test_accuracy": acc, "test_macro_f1": acc, "test_recall_cat": 0.3, "test_recall_dog": 0.4,
               "epochs_run": len(val), "best_epoch": 2, "train_images_per_s": ips}
    return Trained(name, "baseline", "id", metrics, {"train.early_stopping.restore_best_weights": str(restore),
                                                     "resumed_from_epoch": str(resumed_from)},
                   {"cpu": cpu, **({SITTING_TAG: sitting} if sitting else {})},
                   {"val_accuracy": list(val), "val_balanced_accuracy": list(val)},
                   {"data/augmented/train": data} if data else {})
