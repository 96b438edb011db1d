"""The augment stage: balanced counts, untouched originals, seeded output, clean failures, dvc + MLflow."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from cifar10.augmentation import rebalance
from cifar10.data import dataset
from cifar10.data.subsample import subsample
from cifar10.errors import PipelineError
from stages import augment
from cifar10.schema.augment import AugmentParams
from tests.conftest import REPO, run, write_params

CFG = AugmentParams(batch_size=16, preview_variants=3)
OUTPUTS = (dataset.AUGMENTED_TRAIN, augment.PREVIEW, augment.SAMPLES)


@pytest.fixture
def imbalanced(tiny_train):
    """8 images per class, but 2 cats and 3 dogs."""
    ds = subsample(tiny_train, ["cat"], 0.25, seed=0)
    return subsample(ds, ["dog"], 3 / 8, seed=0)


def test_rebalances_exactly_keeping_originals_first_and_intact(imbalanced):
    out = rebalance.augment(imbalanced, ["cat", "dog"], "max", CFG, seed=1)
    n = len(imbalanced)
    assert out.x.dtype == np.uint8 and out.x.shape == (n + 11, 32, 32, 3) and out.y.dtype == np.int64
    assert set(out.counts().values()) == {8}
    assert np.array_equal(out.x[:n], imbalanced.x) and np.array_equal(out.y[:n], imbalanced.y)
    synthetic = out.extra["synthetic"]
    assert synthetic.dtype == bool and not synthetic[:n].any() and synthetic[n:].all()
    source = out.extra["source"]  # each row's original: its own row, or the original a synthetic one shows
    assert source.dtype == np.int64 and np.array_equal(source[:n], np.arange(n))
    assert (source[n:] < n).all() and np.array_equal(out.y[source], out.y)
    # class by class in label order: 6 cats, then 5 dogs
    assert out.y[n:].tolist() == [3] * 6 + [5] * 5
    dataset.validate(out, "augmented")


def test_same_seed_same_bytes_other_seed_differs(imbalanced):
    a = rebalance.augment(imbalanced, ["cat", "dog"], "max", CFG, seed=1)
    b = rebalance.augment(imbalanced, ["cat", "dog"], "max", CFG, seed=1)
    c = rebalance.augment(imbalanced, ["cat", "dog"], "max", CFG, seed=2)
    assert a.x.tobytes() == b.x.tobytes() and np.array_equal(a.y, b.y)
    assert a.x.tobytes() != c.x.tobytes()


def test_explicit_target_and_class_subset(imbalanced):
    out = rebalance.augment(imbalanced, ["dog"], 10, CFG, seed=1)
    counts = out.counts()
    assert counts["dog"] == 10 and counts["cat"] == 2 and counts["airplane"] == 8
    assert int(out.extra["synthetic"].sum()) == 7


def test_nothing_to_add_returns_the_originals(imbalanced):
    out = rebalance.augment(imbalanced, [], "max", CFG, seed=1)
    assert np.array_equal(out.x, imbalanced.x) and not out.extra["synthetic"].any()


@pytest.mark.parametrize(
    "classes, target, pattern",
    [
        (["cat", "dog"], 5, r"augment\.target: 5 is below the 8 images class 'cat' already has"),
        (["airplane"], 7, r"augment\.target: 7 is below the 8 images class 'airplane' already has"),
    ],
)
def test_impossible_target_is_one_line(imbalanced, classes, target, pattern):
    full = rebalance.augment(imbalanced, ["cat"], "max", CFG, seed=1) if classes[0] == "cat" else imbalanced
    with pytest.raises(PipelineError, match=pattern) as err:
        rebalance.augment(full, classes, target, CFG, seed=1)
    assert "\n" not in str(err.value)


@pytest.fixture
def project(workdir, tiny_params, imbalanced):
    """The workdir with data/imbalanced/train.npz in place."""
    dataset.save(dataset.IMBALANCED_TRAIN, imbalanced)
    return workdir


def _fails(capsys, pattern: str) -> None:
    for path in OUTPUTS:  # stale outputs of an earlier run must go too
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stale")
    with pytest.raises(SystemExit) as exit_info:
        augment.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and pattern in err[0], err
    for path in OUTPUTS:
        assert not path.exists()


def test_target_below_a_class_count_fails_cleanly(project, tiny_params, capsys):
    tiny_params["augment"].update(classes=["airplane", "cat"], target=3)
    write_params(project, tiny_params)
    _fails(capsys, "augment.target: 3 is below the 8 images class 'airplane' already has")


def test_bad_params_and_missing_input_fail_cleanly(project, tiny_params, capsys):
    tiny_params["augment"]["zoom"] = [0, 1.2]
    write_params(project, tiny_params)
    _fails(capsys, "params.yaml: augment.zoom: must be > 0")
    tiny_params["augment"]["zoom"] = [0.9, 1.1]
    write_params(project, tiny_params)
    dataset.IMBALANCED_TRAIN.unlink()
    _fails(capsys, "data/imbalanced/train.npz not found: run `dvc repro imbalance-subsample`")


@pytest.mark.slow
def test_stage_in_its_own_process_gives_the_same_bytes_and_logs(project, tiny_params, imbalanced, mlflow_uri):
    env = {"PYTHONPATH": str(REPO)}
    proc = run([sys.executable, "-m", "stages.augment"], project, env)
    # The stage's own lines, not TensorFlow's start-up banners.
    assert not any(noise in proc.stderr for noise in ("oneDNN", "cuda", "cuInit", "absl::InitializeLog")), proc.stderr
    assert proc.stdout.startswith("augment: 69 -> 80 training images (cat +6, dog +5)")
    out = dataset.load(dataset.AUGMENTED_TRAIN)
    assert set(out.counts().values()) == {8} and int(out.extra["synthetic"].sum()) == 11
    # Same params and seed in another process: the same bytes.
    cfg = AugmentParams(**tiny_params["augment"])
    again = rebalance.augment(imbalanced, ["cat", "dog"], "max", cfg, tiny_params["base"]["seed"])
    assert again.x.tobytes() == out.x.tobytes()
    assert augment.PREVIEW.stat().st_size > 1000 and augment.SAMPLES.stat().st_size > 1000

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name(tiny_params["tracking"]["experiment"])
    (run_,) = client.search_runs([exp.experiment_id], filter_string="tags.stage = 'augment'")
    assert run_.info.status == "FINISHED"
    m = run_.data.metrics
    assert m["count_before_cat"] == 2 and m["count_after_cat"] == 8 and m["n_synthetic"] == 11
    assert m["images_per_s"] > 0
    assert json.loads(run_.data.params["augment.resolved_classes"]) == ["cat", "dog"]
    artifacts = {a.path for a in client.list_artifacts(run_.info.run_id, "augment")}
    assert artifacts == {"augment/preview.png", "augment/samples.png"}
