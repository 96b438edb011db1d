"""Stage `transfer`: a frozen pretrained backbone, one pass over the training images, a dense head on the features.

Writes two whole models (uint8 32x32 images in, 10 probabilities out): models/frozen.keras, the
frozen backbone with the head as its head phase left it (the study's method), and models/transfer.keras,
the same after fine-tuning the top `fine_tune_blocks` blocks. With `fine_tune_blocks: 0` they are one
model and the two files hold the same bytes. Both are registered (variants frozen and transfer) from
this stage's run, which names each file's digest; the per-epoch curves of both phases go to
plots/transfer/history.csv. The test set is scored by the evaluate stage.
"""
from __future__ import annotations

import shutil
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
    train_path, out_history = TRAIN_SETS[cfg.train_set], history_csv("transfer")
    out_model, out_frozen = model_path("transfer"), model_path("frozen")
    require(train_path)
    from cifar10.weights.manifest import read_manifest

    manifest, weights = read_manifest(cfg)
    from cifar10.console import batch_progress, quiet_tensorflow

    quiet_tensorflow()

    from cifar10.models.transfer import NAMES
    from cifar10.runtime import seed_everything
    from cifar10.tracking.datasets import dataset_input
    from cifar10.tracking.links import digest_tag, model_digest
    from cifar10.tracking.registry import register
    from cifar10.tracking.runs import stage_run
    from cifar10.training.distribution import make_cluster
    from cifar10.training.history import EpochHistory, console_sink, csv_sink, tracker_sink
    from cifar10.training.transfer import train_transfer

    cluster = make_cluster(cfg.distribution)
    transfer_learning = weights is not None
    (frozen, why), (tuning, why_tuning) = resolve(cfg.precision, "frozen"), resolve(cfg.precision, "fine_tune")
    outputs = (out_model, out_frozen, out_history)
    with no_partial_outputs(*outputs), stage_run("transfer", params, ["base", "transfer"]) as tracker:
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
        with atomic_output(out_frozen) as tmp:
            if result.frozen is result.model:  # nothing fine-tuned: one model, one set of bytes
                shutil.copyfile(out_model, tmp)
            else:
                result.frozen.save(tmp)

        tracker.set_tags({
            "backbone": NAMES[cfg.backbone], "weights_source": manifest["source"], "weights_kind": manifest["kind"],
            "weights_checksum": manifest["checksum"] or "none", "transfer_learning": str(transfer_learning).lower(),
            "train_set": cfg.train_set, "fine_tuned": str(cfg.fine_tune_blocks > 0).lower(),
            digest_tag("transfer"): model_digest(out_model), digest_tag("frozen"): model_digest(out_frozen),
        })
        tracker.log_metrics({**result.timings, **result.sizes, **result.validation,
                             "wall_seconds": time.perf_counter() - wall})
        tracker.log_dict(manifest, "weights.json")
        tracker.log_artifact(out_history)
        tracker.log_datasets([dataset_input(train_path, train, "training")])
        register(tracker, result.frozen, out_frozen, params.tracking.registered_model, "frozen", train.x)
        register(tracker, result.model, out_model, params.tracking.registered_model, "transfer", train.x)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.validation.items())
    print(f"transfer: {NAMES[cfg.backbone]} pass {result.timings['embed_images_per_second']:.1f} images/s, {shown}, "
          f"wall {time.perf_counter() - wall:.1f}s -> {out_frozen}, {out_model}", file=sys.stderr)


if __name__ == "__main__":
    main()
