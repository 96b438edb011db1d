"""Stages `train-baseline` and `train-augmented`: the study's CNN on the imbalanced or the augmented set.

`python -m stages.train --variant baseline|augmented` trains with the `train` params and writes
models/<variant>.keras and its per-epoch curves plots/<variant>/history.csv. A killed run resumes
from its last completed epoch. The test set is scored by the evaluate stage, not here.
"""
from __future__ import annotations

import argparse
import contextlib
import sys

from cifar10.data import dataset
from cifar10.errors import cli_errors
from cifar10.outputs import atomic_output, no_partial_outputs
from cifar10.paths import CNN_TRAIN_SET, MODEL_STAGE, history_csv, model_path, require
from cifar10.schema import load_params
from cifar10.training.precision import resolve


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(CNN_TRAIN_SET), required=True)
    variant = parser.parse_args(argv).variant
    params = load_params()
    stage = MODEL_STAGE[variant]
    train_path, out_model, out_history = CNN_TRAIN_SET[variant], model_path(variant), history_csv(variant)
    require(train_path)
    from cifar10.console import batch_progress, quiet_tensorflow

    quiet_tensorflow()  # before anything imports TensorFlow
    from cifar10.models.fused_bn import to_stock
    from cifar10.tracking.datasets import dataset_input
    from cifar10.tracking.links import MODEL_DIGEST_TAG, model_digest
    from cifar10.tracking.provenance import this_sitting, trained_by_tags
    from cifar10.tracking.registry import register
    from cifar10.tracking.runs import stage_run
    from cifar10.tracking.tracker import NullTracker
    from cifar10.training.backup_folders import (ADOPTED_TAG, AFTER_TRAINING, adopted_from, backup_folder,
                                                finish_backup)
    from cifar10.training.distribution import make_cluster, save_on_worker, write_shard_report
    from cifar10.training.fit import train
    from cifar10.training.history import EpochHistory, console_sink, csv_sink, tracker_sink, write_history

    cluster = make_cluster(params.train.distribution)  # before any other TF op (collectives are set up at start-up)
    policy, why = resolve(params.train.precision)  # from the devices TensorFlow found
    cfg = params.train.model_copy(update={"precision": policy})  # one machine, one precision, from here on
    # Only the chief records the run and writes outputs; the other workers train with it and stop.
    run = (stage_run(stage, params, ["base", "train"]) if cluster.is_chief
           else contextlib.nullcontext(NullTracker(stage)))
    outputs = (out_model, out_history) if cluster.is_chief else ()
    with no_partial_outputs(*outputs), run as tracker:
        train_ds = dataset.load(train_path)
        # A multi-worker run does not resume: every worker would have to restore the same epoch, and
        # the workers cannot agree on one before they train together; it restarts from epoch 1.
        # Logit adjustment comes after training: a finished training's backup serves any setting of it,
        # in this experiment or (adopted) in the one SHARED_TRAINING_ENV names.
        backup = None if cluster.name == "multi_worker" else backup_folder(
            variant, [cfg.model_dump(exclude=set(AFTER_TRAINING)), params.base.model_dump()], train_path)
        if source := adopted_from(backup):
            tracker.set_tags({ADOPTED_TAG: source})
            print(f"{stage}: adopts the training of experiment {source} (the same params and data)", file=sys.stderr)
        label = f"{stage}: " if cluster.is_chief else f"{stage} ({cluster.task_type} {cluster.task_index}): "
        print(f"{label}precision {policy} ({why})", file=sys.stderr)
        tracker.log_params({"precision": policy})
        history = EpochHistory()
        history.sinks = [console_sink(label, history)]
        if cluster.is_chief:
            history.sinks += [tracker_sink(tracker), csv_sink(out_history)]
            history.replay_sinks = [tracker_sink(tracker)]  # a resumed run's curves start at epoch 1 too

        sitting = this_sitting()
        result = train(train_ds, cfg, params.base.seed, params.base.deterministic, history, backup, cluster,
                       [batch_progress(stage)], sitting=sitting)

        if result.shard:
            write_shard_report(stage, result.shard)
            print(f"{label}worker {result.shard['worker']} of {result.shard['workers']} trained on "
                  f"{result.shard['examples']} of {result.info['train_images']} images (rows sha256 "
                  f"{result.shard['rows_sha256'][:12]}), {result.shard['replicas']} replica(s) x "
                  f"{result.shard['per_replica_batch']} images per step", file=sys.stderr)
        if not cluster.is_chief:
            save_on_worker(result.model)
            return
        model = to_stock(result.model)  # plain Keras layers: every reader loads it without this project's code
        with atomic_output(out_model) as tmp:
            model.save(tmp)
        write_history(out_history, result.history)  # also when a resumed run had no epoch left to run

        info = result.info
        tracker.set_tags({MODEL_DIGEST_TAG: model_digest(out_model)})  # how evaluate finds this run
        if info["resumed_from_epoch"]:  # its first epochs were trained by an earlier sitting, maybe elsewhere
            tracker.set_tags(trained_by_tags(info["sittings"], sitting))
        # Logit adjustment's facts, every tau's figure on each validation half included (remedies.adjust_logits).
        logit_facts = {k: v for k, v in info.items() if k.startswith(("logit_adjustment_", "val_balanced_accuracy_"))}
        tracker.log_metrics({k: info[k] for k in ("best_epoch", "epochs_run", "train_seconds", "params_total",
                                                  "params_trainable", "params_non_trainable") if k in info}
                            | logit_facts | {"train_images_per_s": info["images_per_s"]})
        tracker.log_params({"train_images": info["train_images"], "val_images": info["val_images"],
                            "resumed_from_epoch": info["resumed_from_epoch"], "replicas": cluster.replicas})
        if result.shard:
            tracker.log_params({f"shard_{k}": v for k, v in result.shard.items() if k != "rows"})
        lines: list[str] = []
        model.summary(print_fn=lambda line, *a, **k: lines.append(line))
        tracker.log_text("\n".join(lines), "model_summary.txt")
        tracker.log_artifact(out_history, "curves")
        tracker.log_datasets([dataset_input(train_path, train_ds, "training")])
        register(tracker, model, out_model, params.tracking.registered_model, variant, train_ds.x)
        finish_backup(backup)  # kept while the studies runner's experiment is unfinished
    print(f"{stage}: best epoch {info['best_epoch']} of {info['epochs_run']}, "
          f"{info['images_per_s']:.0f} images/s{_adjustment_note(info)} -> {out_model}")


def _adjustment_note(info: dict) -> str:
    """What logit adjustment did, for the stage's last line ("" without it)."""
    if "logit_adjustment_tau" not in info:
        return ""
    note = (f", logits adjusted with tau {info['logit_adjustment_tau']:g} chosen on half the validation rows (val "
            f"balanced accuracy {info['val_balanced_accuracy_unadjusted']:.4f} -> "
            f"{info['val_balanced_accuracy_adjusted']:.4f}")
    if "val_balanced_accuracy_ranking" in info:
        note += (f"; on the other half {info['val_balanced_accuracy_ranking_unadjusted']:.4f} -> "
                 f"{info['val_balanced_accuracy_ranking']:.4f}")
    return note + ")"


if __name__ == "__main__":
    main()
