"""The imbalance-subsample stage: exact counts, determinism, order, and its MLflow run."""
from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from cifar10.classes import CIFAR10_CLASSES
from cifar10.data import dataset
from cifar10.data.dataset import Dataset
from cifar10.data.subsample import subsample
from stages import imbalance_subsample as imbalance


def _indexed(per_class: int) -> Dataset:
    """Classes interleaved as in the binary release; x holds each row's original index."""
    n = per_class * len(CIFAR10_CLASSES)
    y = np.tile(np.arange(len(CIFAR10_CLASSES), dtype=np.int64), per_class)
    return Dataset(np.arange(n).reshape(n, 1, 1, 1), y, CIFAR10_CLASSES)


def test_defaults_on_full_size_data_give_41000_with_500_cat_and_dog():
    out = subsample(_indexed(5000), ["cat", "dog"], 0.1, seed=42)
    counts = out.counts()
    assert len(out) == 41_000 and counts["cat"] == 500 and counts["dog"] == 500
    assert all(counts[c] == 5000 for c in CIFAR10_CLASSES if c not in ("cat", "dog"))
    kept = out.x.ravel()
    assert np.all(np.diff(kept) > 0)  # original order preserved
    assert len(set(kept)) == len(kept)  # no duplicates
    untouched = ~np.isin(out.y, [3, 5])
    assert np.array_equal(kept[untouched], np.flatnonzero(~np.isin(_indexed(5000).y, [3, 5])))


def test_same_seed_same_rows_other_seed_other_rows():
    ds = _indexed(200)
    a = subsample(ds, ["cat", "dog"], 0.25, seed=1)
    b = subsample(ds, ["dog", "cat"], 0.25, seed=1)  # list order does not matter
    c = subsample(ds, ["cat", "dog"], 0.25, seed=2)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert len(a) == len(c) and not np.array_equal(a.x, c.x)


@pytest.mark.parametrize("n, fraction, expected", [(8, 0.5, 4), (7, 0.3, 2), (10, 1.0, 10), (3, 0.1, 0)])
def test_counts_are_rounded(n, fraction, expected):
    assert subsample(_indexed(n), ["bird"], fraction, seed=0).counts()["bird"] == expected


def test_extra_arrays_follow_the_kept_rows():
    ds = _indexed(10)
    ds = Dataset(ds.x, ds.y, ds.classes, {"source_row": ds.x.ravel().copy()})
    out = subsample(ds, ["cat"], 0.5, seed=3)
    assert np.array_equal(out.extra["source_row"], out.x.ravel())


def test_stage_writes_imbalanced_train_leaves_test_alone_and_logs(workdir, mlflow_uri, tiny_train, capsys):
    test_before = dataset.RAW_TEST.read_bytes()
    imbalance.main()
    out = dataset.load(dataset.IMBALANCED_TRAIN)
    # tiny params: keep_fraction 0.5 of 8 images per class
    assert out.counts()["cat"] == 4 and out.counts()["dog"] == 4 and len(out) == 72
    assert np.array_equal(out.x, subsample(tiny_train, ["cat", "dog"], 0.5, seed=42).x)
    assert dataset.RAW_TEST.read_bytes() == test_before
    assert "80 -> 72 training images" in capsys.readouterr().out

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("cifar10-imbalance")
    (run_,) = client.search_runs([exp.experiment_id], "tags.stage = 'imbalance-subsample'")
    assert run_.info.status == "FINISHED"
    assert run_.data.params["imbalance.keep_fraction"] == "0.5" and run_.data.params["base.seed"] == "42"
    m = run_.data.metrics
    assert m["count_before_cat"] == 8 and m["count_after_cat"] == 4 and m["count_after_truck"] == 8
    assert m["count_before"] == 80 and m["count_after"] == 72
    assert "counts.png" in {a.path for a in client.list_artifacts(run_.info.run_id)}


def test_missing_raw_data_is_one_line_naming_the_stage(workdir, capsys):
    dataset.RAW_TRAIN.unlink()
    with pytest.raises(SystemExit) as exit_info:
        imbalance.main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: data/raw/train.npz not found: run `dvc repro download` first"
    assert not dataset.IMBALANCED_TRAIN.exists()
