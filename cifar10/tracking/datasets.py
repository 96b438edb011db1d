"""Datasets as MLflow run inputs: what a stage read and what it wrote, named by path, digested like DVC.

The digest is the file's MD5, the content hash DVC records for it in dvc.lock, so a dataset in the
MLflow UI and an entry of dvc.lock are recognisably the same bytes. The source is where the data came
from: `download.source` for the raw sets, else the file and the stage that wrote it. MLflow 3 has no
dataset outputs, so a stage logs the files it writes as inputs with the context `output`: the run page
then shows each stage's in and out, and the Dataset column the lineage raw -> imbalanced -> augmented.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cifar10.data.dataset import Dataset
from cifar10.checksums import file_checksum
from cifar10.paths import PRODUCER


def dataset_input(path: str | Path, ds: Dataset, context: str, source: str | None = None):
    """An MLflow DatasetInput for the .npz file `path` holding `ds`.

    Args:
        path: the file, relative to the project root (its name in the UI, e.g. data/raw/train.npz).
        ds: its contents (for the schema and profile).
        context: training | evaluation | input | output.
        source: where the data came from; default: the file and the stage that writes it.
    """
    from mlflow.entities import Dataset as MlflowDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.types import Schema, TensorSpec

    path = Path(path)
    digest = file_checksum(path, "md5").split(":", 1)[1]
    schema = Schema([TensorSpec(np.dtype("uint8"), (-1, *ds.x.shape[1:]), "x"),
                     TensorSpec(np.dtype("int64"), (-1,), "y")])
    profile = {"num_rows": len(ds), **{f"rows_{name}": n for name, n in ds.counts().items()}}
    origin = {"uri": source} if source else {"uri": str(path), "stage": PRODUCER.get(path, "unknown")}
    dataset = MlflowDataset(name=str(path.with_suffix("")), digest=digest,
                            source_type="http" if str(source).startswith("http") else "local",
                            source=json.dumps(origin), schema=json.dumps({"mlflow_colspec": schema.to_dict()}),
                            profile=json.dumps(profile))
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])
