"""Stage `transfer`: a frozen pretrained backbone, one pass over the training images, a dense head on the features.

Writes models/transfer.keras (the whole chain: uint8 32x32 images in, 10 probabilities out) and its
per-epoch curves plots/transfer/history.csv. The test set is scored by the evaluate stage.
"""
from __future__ import annotations

import sys
import time

from cifar10.data import dataset
from cifar10.errors import PipelineError, cli_errors
from cifar10.outputs import atomic_output, no_partial_outputs
from cifar10.paths import TRAIN_SETS, history_csv, model_path, require
from cifar10.schema import load_params
from cifar10.training.precision import resolve


@cli_errors
def main() -> None:
    wall = time.perf_counter()
    params = load_params()
    cfg = params.transfer
    if cfg.distribution == "multi_worker":  # every worker would log a run and write the model
        raise PipelineError("params.yaml: transfer.distribution: none or mirrored; multi_worker is "
                            "supported by the train stages only (got multi_worker)")
    train_path, out_model, out_history = TRAIN_SETS[cfg.train_set], model_path("transfer"), history_csv("transfer")
    require(train_path)
    from cifar10.weights.manifest import read_manifest

    manifest, weights = read_manifest(cfg)
    from cifar10.console import batch_progress, quiet_tensorflow

    quiet_tensorflow()

    from cifar10.models.transfer import NAMES
    from cifar10.runtime import seed_everything
    from cifar10.tracking.datasets import dataset_input
    from cifar10.tracking.links import MODEL_DIGEST_TAG, model_digest
    from cifar10.tracking.registry import register
    from cifar10.tracking.runs import stage_run
    from cifar10.training.distribution import make_cluster
    from cifar10.training.history import EpochHistory, console_sink, csv_sink, tracker_sink
    from cifar10.training.transfer import train_transfer

    cluster = make_cluster(cfg.distribution)
    transfer_learning = weights is not None
    (frozen, why), (tuning, why_tuning) = resolve(cfg.precision, "frozen"), resolve(cfg.precision, "fine_tune")
    with no_partial_outputs(out_model, out_history), stage_run("transfer", params, ["base", "transfer"]) as tracker:
        if not transfer_learning:
            print(f"weights: none — random {NAMES[cfg.backbone]}, this is NOT transfer learning", file=sys.stderr)
        print(f"transfer: precision {frozen} for the frozen pass and the saved model's predictions ({why}), "
              f"{tuning} for the head and fine-tuning ({why_tuning})", file=sys.stderr)
        tracker.log_params({"precision": frozen, "precision_training": tuning})
        train = dataset.load(train_path)
        seed_everything(params.base.seed, params.base.deterministic)
        history = EpochHistory()
        history.sinks = [console_sink("transfer: ", history), tracker_sink(tracker), csv_sink(out_history)]

        result = train_transfer(train, cfg, weights, params.base.seed, cluster, history, [batch_progress("transfer")])

        with atomic_output(out_model) as tmp:
            result.model.save(tmp)

        tracker.set_tags({
            "backbone": NAMES[cfg.backbone], "weights_source": manifest["source"], "weights_kind": manifest["kind"],
            "weights_checksum": manifest["checksum"] or "none", "transfer_learning": str(transfer_learning).lower(),
            "train_set": cfg.train_set, "fine_tuned": str(cfg.fine_tune_blocks > 0).lower(),
            MODEL_DIGEST_TAG: model_digest(out_model),
        })
        tracker.log_metrics({**result.timings, **result.sizes, **result.validation,
                             "wall_seconds": time.perf_counter() - wall})
        tracker.log_dict(manifest, "weights.json")
        tracker.log_artifact(out_history)
        tracker.log_datasets([dataset_input(train_path, train, "training")])
        register(tracker, result.model, out_model, params.tracking.registered_model, "transfer", train.x)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.validation.items())
    print(f"transfer: {NAMES[cfg.backbone]} pass {result.timings['embed_images_per_second']:.1f} images/s, {shown}, "
          f"wall {time.perf_counter() - wall:.1f}s -> {out_model}", file=sys.stderr)


if __name__ == "__main__":
    main()
