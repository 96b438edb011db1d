"""The transfer stage: cached-feature head vs whole model, output contract, fine-tuning (also mirrored),
MLflow records, bad input."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cifar10.schema.transfer import TransferParams
from cifar10.training.distribution import make_cluster
from tests.conftest import write_params
from tests.tinydata import make_images
from tests.weightfiles import write_backbone_weights

SIZE = 40  # > 32, so the resize inside the model really resamples


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "backbone.h5"
    return write_backbone_weights(path, make_images(4, seed=7).x, SIZE)


def _cfg(**overrides) -> TransferParams:
    base = dict(weights="none", image_size=SIZE, epochs=2, batch_size=16, embed_batch_size=16, flip_test=False,
                fine_tune_blocks=0, head={"units": [16], "activation": "relu", "dropout": 0.1})
    return TransferParams.model_validate({**base, **overrides})


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_the_saved_model_predicts_what_the_head_saw_in_the_cached_pass(precision, tiny_train, tiny_test, weights_file,
                                                                      tmp_path):
    """In either precision of the frozen pass, the saved model, as evaluate loads it in that precision, predicts
    what the head gives on the stage's own cached pass."""
    import keras

    from cifar10.models.saved import load_for_inference
    from cifar10.training.cached_pass import backbone_pass
    from cifar10.training.embeddings import embed
    from cifar10.training.precision import Cpu, has_bfloat16_units
    from cifar10.training.transfer import train_transfer

    cfg, cluster = _cfg(precision=precision), make_cluster("none")
    result = train_transfer(tiny_train, cfg, weights_file, seed=3, cluster=cluster)
    test_pass = backbone_pass(tiny_test, cfg, weights_file, 3, cluster, 0)  # the stage's pass, over the test set
    assert test_pass.policy == precision
    cached = result.head.predict(test_pass.cache, verbose=0)
    assert cached.shape == (len(tiny_test), 10)
    assert cached.std(axis=0).max() > 1e-3, "predictions must vary between images for the check to mean anything"

    path = tmp_path / "transfer.keras"
    result.model.save(path)
    loaded = keras.models.load_model(path)  # built-in layers only: no custom_objects
    assert loaded.input.dtype == "uint8" and tuple(loaded.input.shape) == (None, 32, 32, 3)
    net = loaded.get_layer("extractor").get_layer("efficientnetb0")
    assert not net.trainable
    evaluated = load_for_inference(path, precision).predict(tiny_test.x, verbose=0)  # as evaluate runs it
    whole = loaded.predict(tiny_test.x, verbose=0)
    assert evaluated.dtype == whole.dtype == np.float32
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, atol=1e-5)
    # bfloat16 keeps 8 significant bits: the same folded graph agrees to its rounding. Where bfloat16 is
    # emulated (no AMX, no AVX512_BF16) oneDNN's kernels round differently from run to run: on an AMD EPYC,
    # 0 in 5 runs alone, but 0.023 on one of 30 images in a run beside another test process on its 2 cores.
    native = precision == "float32" or has_bfloat16_units(Cpu.this())
    np.testing.assert_allclose(evaluated, cached, atol=1e-4 if precision == "float32" else 1e-2 if native else 0.05)
    if precision == "float32":
        np.testing.assert_allclose(whole, cached, atol=1e-4)

    # Batching must not change the features: one batch of 7 vs the whole set at once.
    extractor = result.model.get_layer("extractor")
    small, _ = embed(extractor, tiny_test.x, batch_size=7)
    big, _ = embed(extractor, tiny_test.x, batch_size=len(tiny_test))
    if native:
        np.testing.assert_allclose(small, big, rtol=1e-4, atol=1e-4 if precision == "float32" else 1e-2)
    else:
        # bfloat16 emulated (no AMX, no AVX512_BF16): oneDNN's kernel, and so its rounding, changes with the
        # batch size, and the differences grow through the network (up to 0.19 on features of magnitude ~50
        # on an AMD EPYC). What holds there: each image's features agree to a few percent of their norm
        # (at most 2.2% in 4 trainings on that EPYC) and the head's probabilities to 0.02 (at most 0.0034).
        spread = np.linalg.norm(small - big, axis=1) / np.linalg.norm(big, axis=1)
        assert spread.max() < 0.05, f"features move {spread.max():.3f} of their norm with the batch size"
        np.testing.assert_allclose(result.head.predict(small, verbose=0), result.head.predict(big, verbose=0),
                                   atol=0.02)
    assert result.validation["val_accuracy_final"] >= 0
    assert result.sizes == {"n_train": 72, "n_validation": 8, "n_train_features": 72}  # the one splitter, 10%
    assert result.frozen is result.model, "nothing fine-tuned: the frozen model is the model"


@pytest.mark.slow
@pytest.mark.parametrize("distribution", ["none", "mirrored"])
def test_fine_tuning_trains_top_layers_but_not_batch_norm(weights_file, distribution):
    import keras

    from cifar10.models.transfer import build_backbone
    from cifar10.training.history import EpochHistory
    from cifar10.training.transfer import train_transfer

    history = EpochHistory()
    cfg = _cfg(epochs=1, fine_tune_blocks=1, fine_tune_epochs=1, fine_tune_batch_size=16, distribution=distribution)
    cluster = make_cluster(distribution)
    result = train_transfer(make_images(3, seed=1), cfg, weights_file, seed=3, cluster=cluster, history=history)
    tuned = result.model.get_layer("extractor").get_layer("efficientnetb0")
    before = build_backbone("efficientnet_b0", SIZE, weights_file)
    changed = {}
    for old, new in zip(before.layers, tuned.layers):
        for w_old, w_new in zip(old.get_weights(), new.get_weights()):
            changed.setdefault(new.name, False)
            changed[new.name] |= not np.array_equal(w_old, w_new)
        if isinstance(new, keras.layers.BatchNormalization):
            assert not changed.get(new.name), f"batch norm {new.name} changed"
    block7a = [layer.name for layer in tuned.layers if layer.name.startswith("block7a_") and layer.weights
               and not isinstance(layer, keras.layers.BatchNormalization)]
    assert len(block7a) == 5  # expand, depthwise, squeeze-excite (2), project
    assert changed["top_conv"] and all(changed[n] for n in block7a), "the whole top block trains, never half of it"
    assert not any(changed[n] for n in changed if n.startswith(("block6", "stem"))), "lower blocks stay frozen"
    assert [row["epoch"] for row in history.rows] == [1, 2]  # fine-tuning continues the head's curve
    assert result.timings["fine_tune_seconds"] > 0
    # The frozen model is the network as the head phase left it: the backbone as loaded, the head before
    # fine-tuning trained it further; fine-tuning changed neither.
    frozen = result.frozen.get_layer("extractor").get_layer("efficientnetb0")
    for old, kept in zip(before.layers, frozen.layers):
        for w_old, w_kept in zip(old.get_weights(), kept.get_weights()):
            np.testing.assert_array_equal(w_old, w_kept, err_msg=kept.name)
    heads = [m.get_layer("head").get_layer("probabilities").get_weights()[0] for m in (result.frozen, result.model)]
    assert not np.array_equal(*heads), "fine-tuning trains the head too"
    x = make_images(1, seed=9).x
    assert not np.allclose(result.frozen.predict(x, verbose=0), result.model.predict(x, verbose=0))
    if distribution == "mirrored":  # one strategy built the model and compiled it for fine-tuning
        assert result.model.distribute_strategy is cluster.strategy


def _exit_line(capfd, fn) -> str:
    with pytest.raises(SystemExit) as exc:
        fn()
    assert exc.value.code == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ")
    return err[-1]


def test_missing_or_stale_weights_stop_the_stage_before_any_output(workdir, tiny_params, capfd):
    from stages import transfer

    line = _exit_line(capfd, transfer.main)
    assert "data/weights/weights.json not found" in line and "dvc repro fetch-weights" in line

    Path("data/weights").mkdir(parents=True)
    Path("data/weights/weights.json").write_text(json.dumps(
        {"backbone": "efficientnet_b0", "kind": "imagenet", "source": "https://x/y.h5", "checksum": "md5:" + "0" * 32,
         "file": "y.h5", "file_sha256": "sha256:" + "0" * 64}))
    line = _exit_line(capfd, transfer.main)
    assert "holds efficientnet_b0 imagenet weights" in line and "params ask for efficientnet_b0 none" in line

    tiny_params["transfer"].update(weights="imagenet", weights_url="https://x/y.h5")
    write_params(workdir, tiny_params)
    Path("data/weights/y.h5").write_bytes(b"not weights")
    line = _exit_line(capfd, transfer.main)
    assert "checksum differs" in line and "y.h5" in line
    assert not Path("models").exists() and not Path("plots").exists()


def test_the_train_set_names_the_folder_the_stage_reads(workdir, tiny_params, capfd):
    from stages import transfer

    tiny_params["transfer"]["train_set"] = "imbalanced"
    write_params(workdir, tiny_params)
    line = _exit_line(capfd, transfer.main)
    assert "data/imbalanced/train.npz not found: run `dvc repro imbalance-subsample` first" in line


@pytest.mark.slow
def test_stage_with_random_weights_logs_to_mlflow(workdir, mlflow_uri, capfd):
    from mlflow.tracking import MlflowClient

    from cifar10.tracking.links import model_digest
    from stages import fetch_weights, transfer

    fetch_weights.main()
    transfer.main()
    assert "weights: none — random EfficientNet-B0, this is NOT transfer learning" in capfd.readouterr().err
    assert json.loads(Path("data/weights/weights.json").read_text())["kind"] == "none"
    rows = list(csv.DictReader(open("plots/transfer/history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and float(rows[0]["loss"]) > 0  # the head's, fine-tuning's

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("cifar10-imbalance").experiment_id
    (run_,) = client.search_runs([experiment], "tags.stage = 'transfer'")
    assert run_.info.status == "FINISHED"
    tags, metrics = run_.data.tags, run_.data.metrics
    assert tags["transfer_learning"] == "false" and tags["weights_source"] == "none"
    assert tags["backbone"] == "EfficientNet-B0" and tags["weights_checksum"] == "none"
    assert tags["model_sha256"] == model_digest("models/transfer.keras")
    assert tags["frozen_model_sha256"] == model_digest("models/frozen.keras") != tags["model_sha256"]
    assert tags["fine_tuned"] == "true"
    # Both models are versions of the registered model, told apart by their variant tag.
    versions = {v.tags["variant"]: v for v in client.search_model_versions("name = 'cifar10-classifier'")}
    assert set(versions) == {"frozen", "transfer"}
    assert versions["frozen"].tags["model_sha256"] == tags["frozen_model_sha256"]
    assert versions["transfer"].tags["model_sha256"] == tags["model_sha256"]
    assert {v.run_id for v in versions.values()} == {run_.info.run_id}
    assert run_.data.params["transfer.image_size"] == "32" and run_.data.params["base.seed"] == "42"
    assert {"embed_images_per_second", "wall_seconds", "head_seconds", "n_train", "n_validation",
            "val_accuracy_final"} <= set(metrics)
    assert not any(k.startswith("test_") for k in metrics), "only the evaluate stage scores the test set"
    assert len(client.get_metric_history(run_.info.run_id, "val_loss")) == 2  # one point per epoch, head and fine-tuning
    artifacts = {a.path for a in client.list_artifacts(run_.info.run_id)}
    assert {"weights.json", "history.csv"} <= artifacts


@pytest.mark.slow
def test_without_fine_tuning_frozen_and_transfer_are_one_model_each_scored_under_its_own_name(
        workdir, tiny_params, mlflow_uri):
    from mlflow.tracking import MlflowClient

    from stages import compare, evaluate, fetch_weights, transfer

    tiny_params["transfer"]["fine_tune_blocks"] = 0
    tiny_params["evaluate"]["models"] = ["frozen", "transfer"]
    write_params(workdir, tiny_params)
    fetch_weights.main()
    transfer.main()
    assert Path("models/frozen.keras").read_bytes() == Path("models/transfer.keras").read_bytes()
    for name in ("frozen", "transfer"):
        evaluate.main(["--model", name])
    compare.main()

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("cifar10-imbalance").experiment_id
    (run_,) = client.search_runs([experiment], "tags.stage = 'transfer'")
    assert run_.data.tags["fine_tuned"] == "false"
    assert run_.data.tags["model_sha256"] == run_.data.tags["frozen_model_sha256"]
    metrics = run_.data.metrics
    assert metrics["test_accuracy"] == metrics["frozen_test_accuracy"]
    assert metrics["test_accuracy_low"] == metrics["frozen_test_accuracy_low"]
    # One set of bytes, two versions: each variant's evaluation tagged its own.
    versions = {v.tags["variant"]: v for v in client.search_model_versions("name = 'cifar10-classifier'")}
    assert set(versions) == {"frozen", "transfer"} and len({v.version for v in versions.values()}) == 2
    assert {v.tags["test_accuracy"] for v in versions.values()} == {f"{metrics['test_accuracy']:.4f}"}

    summary = json.loads(Path("metrics/summary.json").read_text())
    assert list(summary) == ["frz", "xfer"] and summary["frz"] == summary["xfer"]
    md = Path("reports/comparison.md").read_text()
    assert "no block fine-tuned (transfer.fine_tune_blocks: 0): the same model as frozen" in md
    assert "‡" not in md, "without fine-tuning both rows are the study's method, compared with its figures"


@pytest.mark.slow
def test_narrowed_pass_gives_the_same_features_and_trains_the_backbone(weights_file):
    from cifar10.training import cached_pass as cp

    cluster = make_cluster("none")
    train = make_images(2, seed=4)
    p = cp.backbone_pass(train, _cfg(flip_test=True), weights_file, 3, cluster, cut_blocks=5)
    narrow = cp.narrowed(p, 1, cluster, batch=7)  # a batch that does not divide the rows
    assert narrow.cache.shape[1:] != p.cache.shape[1:] and len(narrow.cache) == len(p.cache)
    for mirror in (False, True):
        wide = cp.features(p, p.val_rows, cluster, 16, mirror)
        close = cp.features(narrow, p.val_rows, cluster, 16, mirror)
        np.testing.assert_allclose(close, wide, rtol=0.02, atol=0.02 * np.abs(wide).max())
    backbone_layers = {id(layer) for layer in p.backbone.layers}
    assert all(id(layer) in backbone_layers for layer in narrow.upper.layers[1:])  # trains the saved network
    assert cp.narrowed(p, 5, cluster) is p  # nothing to narrow


@pytest.mark.slow
def test_head_validation_from_originals_on_the_augmented_set(weights_file):
    from dataclasses import replace

    from cifar10.augmentation.rebalance import augment
    from cifar10.data.splits import split_rows
    from cifar10.data.subsample import subsample
    from cifar10.errors import PipelineError
    from cifar10.schema.augment import AugmentParams
    from cifar10.training import cached_pass as cp

    small = make_images(4, seed=4)
    rebalanced = augment(subsample(small, ["cat"], 0.5, seed=0), ["cat"], "max", AugmentParams(batch_size=16), seed=1)
    source = rebalanced.extra["source"]
    p = cp.backbone_pass(rebalanced, _cfg(validation_split=0.3, validation_from="originals"), weights_file, 3,
                         make_cluster("none"), cut_blocks=0)
    assert (source[p.val_rows] == p.val_rows).all() and not np.isin(source[p.train_rows], p.val_rows).any()
    assert np.array_equal(p.val_rows, split_rows(rebalanced.y[source == np.arange(len(source))], 0.3, 3)[1])
    no_sources = replace(rebalanced, extra={"synthetic": rebalanced.extra["synthetic"]})
    with pytest.raises(PipelineError, match=r"^params\.yaml: transfer\.validation_from: originals needs the `source`"):
        cp.backbone_pass(no_sources, _cfg(validation_from="originals"), weights_file, 3, make_cluster("none"), 0)


def test_a_cache_too_large_for_the_machine_is_refused_with_the_key():
    from cifar10.errors import PipelineError
    from cifar10.training.cached_pass import check_cache_fits

    check_cache_fits((28, 28, 40), 55_000, 11, 24 * 2**30)  # 6.4 GiB of 24: fits
    check_cache_fits((), 55_000, 0, 2**20)  # pooled features: no feature-map cache
    with pytest.raises(PipelineError, match=r"transfer.fine_tune_blocks: 13 caches 55,000 feature maps of 56x56x24"
                                            r" \(15.4 GiB .* this machine's 24 GiB"):
        check_cache_fits((56, 56, 24), 55_000, 13, 24 * 2**30)
