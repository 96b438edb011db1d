"""What each step a practitioner would try adds to EfficientNet-Lite0 transfer learning, measured on the
validation split, with its cost; then the chosen recipe once on the test set. Writes TRANSFER.md.

One backbone pass caches the input of the top 2 blocks for every training image, its mirror image
and every test image (and its mirror image); every step then trains on that cache, so the whole
study costs about two backbone passes plus the fine-tuning epochs. Steps build on each other and are
kept only if they raise validation accuracy. Usage (in a project whose download stage has run):

    python -m scripts.transfer_study [--project DIR] [--output TRANSFER.md]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STUDY_HEAD = dict(units=[256, 256], activation="relu", dropout=0.0, l2=0.0, standardize=True)
CUT = 2  # blocks above the cache: fine-tuning may train up to these


def _config(**changes):
    from cifar10.schema.transfer import TransferParams

    # The study's recipe: its head, Adam 1e-3 at a constant rate, 20 epochs, no mirror images.
    base = dict(backbone="efficientnet_lite0", weights="imagenet", head=STUDY_HEAD, schedule="constant", epochs=20,
                restore_best=False, flip_train=False, flip_test=False, fine_tune_blocks=0)
    return TransferParams.model_validate({**base, **changes})


def run_study(project: Path) -> dict:
    from cifar10.data import dataset
    from cifar10.models import transfer as tm
    from cifar10.training import transfer as tr
    from cifar10.training.distribution import make_cluster
    from cifar10.training.embeddings import embed, pooled
    from cifar10.training.history import EpochHistory
    from cifar10.training.runtime import seed_everything
    from cifar10.weights.manifest import fetch_weights

    seed = 42
    seed_everything(seed, True)
    cluster = make_cluster("none")
    train, test = dataset.load(project / "data/raw/train.npz"), dataset.load(project / "data/raw/test.npz")
    scratch = Path(tempfile.mkdtemp(prefix="transfer-study-"))
    weights = scratch / fetch_weights(_config(), scratch)["file"]
    cache_cfg = _config(flip_train=True, flip_test=True)
    p = tr.backbone_pass(train, cache_cfg, weights, seed, cluster, CUT)
    per_image = p.seconds / (len(train) + len(p.mirror_rows))
    test_pass = tm.build_extractor("efficientnet_lite0", p.lower, 224, pool=False)
    test_maps = [embed(test_pass, x, 64, desc="test pass", dtype="float16")[0] for x in (test.x, test.x[:, :, ::-1])]
    start_weights = p.backbone.get_weights()
    steps: list[dict] = []

    def step(name: str, cfg, extra_seconds: float, fine_tune: int = 0) -> dict:
        p.backbone.set_weights(start_weights)
        seed_everything(seed, True)
        history = EpochHistory()
        started = time.perf_counter()
        head = tr.fit_head(p, train.y, cfg, cluster, history)
        if fine_tune:
            tr.fine_tune(p, head, train.y, cfg, cluster, history, fine_tune)
        seconds = time.perf_counter() - started
        val = tr.validation_accuracy(p, head, train.y, cfg, cluster)
        row = {"step": name, "config": cfg.model_dump(mode="json"), "train_seconds": seconds,
               "extra_pass_seconds": extra_seconds, "curve": history.rows, **val,
               "val": val.get("val_accuracy_flip_average", val["val_accuracy_final"])}
        row["_head"], row["_weights"] = head, p.backbone.get_weights()
        steps.append(row)
        print(f"{name}: validation {row['val']:.4f} ({seconds:.0f} s)", file=sys.stderr, flush=True)
        return row

    flips = per_image * len(p.train_rows)
    best = step("study's head on frozen features", _config(), 0)
    best = max(best, step("+ mirror images of the training images", _config(flip_train=True), flips),
               key=lambda r: r["val"])
    kept = {k: best["config"][k] for k in ("flip_train",)}
    best = max(best, step("+ test-time averaging with the mirror image", _config(**kept, flip_test=True),
                          per_image * len(p.val_rows)), key=lambda r: r["val"])
    kept = {k: best["config"][k] for k in ("flip_train", "flip_test")}
    for label, changes in (("dropout 0.3", {"head": {"dropout": 0.3}}), ("cosine schedule", {"schedule": "cosine"}),
                           ("best epoch's weights", {"restore_best": True}), ("L2 1e-4", {"head": {"l2": 1e-4}}),
                           ("40 epochs", {"epochs": 40})):
        trial = {**kept, **changes, "head": {**STUDY_HEAD, **kept.get("head", {}), **changes.get("head", {})}}
        row = step(f"+ head: {label}", _config(**trial), 0)
        if row["val"] > best["val"]:
            best, kept = row, trial
    for blocks, rate in ((1, 1e-4), (2, 1e-4), (2, 1e-5)):
        row = step(f"+ fine-tune the top {blocks} block{'s' * (blocks > 1)}, lr {rate:g}, 3 epochs",
                   _config(**kept, fine_tune_blocks=blocks, fine_tune_learning_rate=rate, fine_tune_epochs=3), 0,
                   fine_tune=blocks)
        if row["val"] > best["val"]:
            best = row

    def test_accuracy(row: dict) -> float:
        p.backbone.set_weights(row["_weights"])
        probs = [row["_head"].predict(pooled(p.upper, maps, 64, cluster), verbose=0) for maps in test_maps]
        averaged = (probs[0] + probs[1]) / 2 if row["config"]["flip_test"] else probs[0]
        return float(np.mean(averaged.argmax(1) == test.y))

    tested = {"floor": test_accuracy(steps[0]), "chosen": test_accuracy(best)}
    for row in steps:
        row.pop("_head"), row.pop("_weights")
    return {"steps": steps, "chosen": best["step"], "test": tested, "pass_seconds_per_image": per_image,
            "load_average": os.getloadavg()[0], "cores": os.cpu_count(),
            "train_images": len(p.train_rows), "val_images": len(p.val_rows), "test_images": len(test)}


def markdown(result: dict, command: str, machine: str, commit: str) -> str:
    """TRANSFER.md from a study's records: every figure below is one the study measured."""
    rows, best = [], 0.0
    for r in result["steps"]:
        gain = r["val"] - best if best else 0.0
        kept = "yes" if r["step"] == result["chosen"] or (best and r["val"] > best) else ("base" if not best else "no")
        best = max(best, r["val"])
        cost = (r["extra_pass_seconds"] + r["train_seconds"]) / 60
        tta = f"{r['val_accuracy_flip_average']:.4f}" if "val_accuracy_flip_average" in r else "–"
        rows.append(f"| {r['step']} | {r['val_accuracy_final']:.4f} | {tta} | {gain:+.4f} | {kept} | {cost:.1f} |")
    chosen = next(r for r in result["steps"] if r["step"] == result["chosen"])
    settings = {k: v for k, v in chosen["config"].items() if k in (
        "flip_train", "flip_test", "head", "schedule", "restore_best", "epochs", "fine_tune_blocks",
        "fine_tune_learning_rate", "fine_tune_epochs")}
    return "\n".join([
        "# Transfer learning with EfficientNet-Lite0: what each step adds",
        "",
        f"Written by `{command}` from its own measurements (commit `{commit[:10]}`, {machine}). "
        f"{result['train_images']:,} training and {result['val_images']:,} validation images (the stage's stratified "
        f"split of the full training set), 224 px, the ImageNet Lite0 of the pinned wheel. Each step is measured on "
        "the validation split and kept only if it raises validation accuracy; the test set is used once, at the end.",
        "",
        "| step | validation accuracy | with mirror-image averaging | gain over the best so far | kept | cost (min) |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
        *rows,
        "",
        "Cost: minutes this run spent on the step: the extra images through the backbone (at the measured "
        f"{1 / result['pass_seconds_per_image']:.0f} images/s) plus the head or fine-tuning epochs on the cache "
        f"(1-minute load average at the end: {result['load_average']:.1f} on {result['cores']} cores"
        + ("; the machine was shared while the study ran, so these are upper bounds: the stage's own cost, measured "
           "alone, is in RESULTS.md)." if result["load_average"] >= 0.5 * result["cores"] else ")."),
        "",
        f"**Chosen on validation:** {result['chosen']} (`{json.dumps(settings)}`).",
        "",
        f"**Test set, once** ({result['test_images']:,} images): the study's head on frozen features "
        f"{result['test']['floor']:.4f}; the chosen recipe **{result['test']['chosen']:.4f}** (the study's EfficientNet-B0: 0.87).",
        "",
        _defaults_line(settings),
        "",
    ])


def _defaults_line(settings: dict) -> str:
    """How params.yaml's transfer defaults differ from the chosen recipe, and the command that takes it."""
    from cifar10.schema.transfer import TransferParams

    defaults = TransferParams().model_dump()
    differ = {k: v for k, v in settings.items() if defaults.get(k) != v}
    if not differ:
        return "**params.yaml's defaults are the chosen recipe.**"
    listed = ", ".join(f"`{k}` {json.dumps(defaults.get(k))} (chosen {json.dumps(v)})" for k, v in differ.items())
    sets = " ".join(f"-S 'transfer.{k}={json.dumps(v)}'" for k, v in differ.items())
    return (f"**params.yaml's defaults** differ from the chosen recipe in {listed}. "
            f"To run the chosen recipe: `dvc exp run {sets}`.")


def main(argv: list[str] | None = None) -> int:
    import subprocess

    from cifar10.tracking.provenance import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."), help="a project whose download stage has run")
    parser.add_argument("--output", type=Path, default=Path("TRANSFER.md"))
    parser.add_argument("--from-json", type=Path, help="re-render the page from a study's saved records (its .json)")
    args = parser.parse_args(argv)
    if args.from_json:
        result = json.loads(args.from_json.read_text())
        commit = result["commit"]
    else:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
        result = {**run_study(args.project.resolve()), "commit": commit, "machine": machine()}
        args.output.with_suffix(".json").write_text(json.dumps(result, indent=1))
    command = f"python -m scripts.transfer_study --project {args.project}"
    args.output.write_text(markdown(result, command, result.get("machine") or machine(), commit))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
