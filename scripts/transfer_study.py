"""What each step a practitioner would try adds to EfficientNet-Lite0 transfer learning, measured on the
validation split, with its cost; then the chosen recipe once on the test set. Writes TRANSFER.md.

One backbone pass caches the input of the top 2 blocks for every training image, its mirror image
and every test image (and its mirror image); every step then trains on that cache, so the whole
study costs about two backbone passes plus the fine-tuning epochs. Steps build on each other and are
kept only if they raise validation accuracy. `--deeper` continues a finished study: one more pass, cut
lower, and fine-tuning trials deeper than the first cache allows, from the recipe it chose. Usage (in a
project whose download stage has run):

    python -m scripts.transfer_study [--project DIR] [--output TRANSFER.md]
    python -m scripts.transfer_study --deeper 5:1e-4:3,8:1e-4:3   # blocks:learning rate:epochs, ...
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from writeup.transfer_page import markdown

STUDY_HEAD = dict(units=[256, 256], activation="relu", dropout=0.0, l2=0.0, standardize=True)
CUT = 2  # blocks above the first study's cache: its fine-tuning may train up to these
SEED = 42


def _config(**changes):
    from cifar10.schema.transfer import TransferParams

    # The study's recipe: its head, Adam 1e-3 at a constant rate, 20 epochs, no mirror images.
    base = dict(backbone="efficientnet_lite0", weights="imagenet", head=STUDY_HEAD, schedule="constant", epochs=20,
                restore_best=False, flip_train=False, flip_test=False, fine_tune_blocks=0)
    return TransferParams.model_validate({**base, **changes})


@dataclass
class _Bench:
    """One cached pass and everything a step needs: steps start from the same backbone weights and seed."""

    p: object
    train: object
    test: object
    test_maps: list
    cluster: object
    per_image: float  # seconds per image of the pass
    steps: list = field(default_factory=list)
    start: list = field(default_factory=list)  # the backbone's weights before any step
    passes: dict = field(default_factory=dict)  # fine-tuned blocks -> the pass cut below them

    @classmethod
    def build(cls, project: Path, cut: int, mirror_train: bool = True) -> _Bench:
        from cifar10.data import dataset
        from cifar10.models import transfer as tm
        from cifar10.runtime import seed_everything
        from cifar10.training.cached_pass import backbone_pass
        from cifar10.training.distribution import make_cluster
        from cifar10.training.embeddings import embed
        from cifar10.weights.manifest import fetch_weights

        seed_everything(SEED, True)
        cluster = make_cluster("none")
        train, test = dataset.load(project / "data/raw/train.npz"), dataset.load(project / "data/raw/test.npz")
        scratch = Path(tempfile.mkdtemp(prefix="transfer-study-"))
        weights = scratch / fetch_weights(_config(), scratch)["file"]
        p = backbone_pass(train, _config(flip_train=mirror_train, flip_test=True), weights, SEED, cluster, cut)
        test_pass = tm.build_extractor("efficientnet_lite0", p.lower, 224, pool=False)
        test_maps = [embed(test_pass, x, 64, desc="test pass", dtype="float16")[0]
                     for x in (test.x, test.x[:, :, ::-1])]
        return cls(p, train, test, test_maps, cluster, p.seconds / (len(train) + len(p.mirror_rows)),
                   start=p.backbone.get_weights())

    def step(self, name: str, cfg, extra_seconds: float) -> dict:
        """Train `cfg`'s head (and its fine-tuning) from the pass; record its validation accuracy."""
        from cifar10.runtime import seed_everything
        from cifar10.training import transfer as tr
        from cifar10.training.history import EpochHistory

        y = self.train.y
        self.p.backbone.set_weights(self.start)
        p = self.narrowed(cfg.fine_tune_blocks)
        seed_everything(SEED, True)
        history = EpochHistory()
        started = time.perf_counter()
        head = tr.fit_head(p, y, cfg, self.cluster, history)
        before = {}
        if cfg.fine_tune_blocks:
            before = tr.validation_accuracy(p, head, y, cfg, self.cluster)  # the head alone, on this pass
            tr.fine_tune(p, head, y, cfg, self.cluster, history, cfg.fine_tune_blocks)
        seconds = time.perf_counter() - started
        val = tr.validation_accuracy(p, head, y, cfg, self.cluster)
        row = {"step": name, "config": cfg.model_dump(mode="json"), "train_seconds": seconds,
               "extra_pass_seconds": extra_seconds, "curve": history.rows, **val,
               "val": val.get("val_accuracy_flip_average", val["val_accuracy_final"]),
               "val_before_fine_tune": before.get("val_accuracy_flip_average", before.get("val_accuracy_final"))}
        row["_head"], row["_weights"] = head, p.backbone.get_weights()
        self.steps.append(row)
        print(f"{name}: validation {row['val']:.4f} ({seconds:.0f} s)", file=sys.stderr, flush=True)
        return row

    def narrowed(self, n_blocks: int):
        """The pass cut just below the top `n_blocks` (all of the cached pass's upper part for 0): computed
        once per depth, so a shallow trial does not rerun the frozen blocks between the cuts every epoch."""
        from cifar10.training.cached_pass import narrowed

        if not n_blocks:
            return self.p
        if n_blocks not in self.passes:
            self.passes[n_blocks] = narrowed(self.p, n_blocks, self.cluster)
        return self.passes[n_blocks]

    def test_accuracy(self, row: dict) -> float:
        """The test set through `row`'s trained network: used once per study, for the chosen recipe."""
        from cifar10.training.embeddings import pooled

        self.p.backbone.set_weights(row["_weights"])
        probs = [row["_head"].predict(pooled(self.p.upper, maps, 64, self.cluster), verbose=0)
                 for maps in self.test_maps]
        averaged = (probs[0] + probs[1]) / 2 if row["config"]["flip_test"] else probs[0]
        return float(np.mean(averaged.argmax(1) == self.test.y))

    def records(self) -> dict:
        for row in self.steps:
            row.pop("_head", None), row.pop("_weights", None)
        return {"steps": self.steps, "pass_seconds_per_image": self.per_image, "load_average": os.getloadavg()[0],
                "cores": os.cpu_count(), "train_images": len(self.p.train_rows), "val_images": len(self.p.val_rows),
                "test_images": len(self.test)}


def run_study(project: Path) -> dict:
    """The first study: the head's steps on frozen features, then fine-tuning the top 1-2 blocks."""
    bench = _Bench.build(project, CUT)
    p, per_image = bench.p, bench.per_image
    step = bench.step
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
        row = step(_fine_tune_label(blocks, rate, 3),
                   _config(**kept, fine_tune_blocks=blocks, fine_tune_learning_rate=rate, fine_tune_epochs=3), 0)
        if row["val"] > best["val"]:
            best = row
    tested = {"floor": bench.test_accuracy(bench.steps[0]), "chosen": bench.test_accuracy(best)}
    return {**bench.records(), "chosen": best["step"], "test": tested}


def run_deeper(project: Path, first: dict, trials: list[tuple[int, float, int]]) -> dict:
    """Fine-tuning deeper than the first study's cache allowed, from its chosen recipe.

    The pass is cut below the deepest trial; a trial is kept only if it beats the first study's chosen
    recipe on validation (the same split and seed; each trial also records its head alone on this pass,
    which shows how far the cache at another depth moves the starting point).
    """
    chosen = next(r for r in first["steps"] if r["step"] == first["chosen"])
    bench = _Bench.build(project, max(blocks for blocks, _, _ in trials), mirror_train=chosen["config"]["flip_train"])
    best = None
    for blocks, rate, epochs in trials:
        row = bench.step(_fine_tune_label(blocks, rate, epochs), _config(**{
            **chosen["config"], "fine_tune_blocks": blocks, "fine_tune_learning_rate": rate,
            "fine_tune_epochs": epochs}), 0)
        if row["val"] > (best or chosen)["val"]:
            best = row
    tested = {"chosen": bench.test_accuracy(best)} if best else {}
    return {**bench.records(), "chosen": best["step"] if best else None, "first_chosen_val": chosen["val"],
            "test": tested}


def _fine_tune_label(blocks: int, rate: float, epochs: int) -> str:
    return f"+ fine-tune the top {blocks} block{'s' * (blocks > 1)}, lr {rate:g}, {epochs} epochs"


def main(argv: list[str] | None = None) -> int:
    import subprocess

    from cifar10.tracking.provenance import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."), help="a project whose download stage has run")
    parser.add_argument("--output", type=Path, default=Path("TRANSFER.md"))
    parser.add_argument("--from-json", type=Path, help="re-render the page from a study's saved records (its .json)")
    parser.add_argument("--deeper", type=_trials, metavar="BLOCKS:LR:EPOCHS,...",
                        help="after the first study (its .json beside --output): fine-tune these deeper trials")
    args = parser.parse_args(argv)
    records = args.output.with_suffix(".json")
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    commit = git.stdout.strip() or "unknown"
    if args.from_json:
        result = json.loads(args.from_json.read_text())
    elif args.deeper:
        if not records.is_file():
            parser.error(f"--deeper continues the first study: {records} is missing (run without --deeper first)")
        result = json.loads(records.read_text())
        result["deeper"] = {**run_deeper(args.project.resolve(), result, args.deeper), "commit": commit,
                            "machine": machine()}
        records.write_text(json.dumps(result, indent=1))
    else:
        result = {**run_study(args.project.resolve()), "commit": commit, "machine": machine()}
        records.write_text(json.dumps(result, indent=1))
    command = f"python -m scripts.transfer_study --project {args.project}"
    args.output.write_text(markdown(result, command, result.get("machine") or machine(), result["commit"]))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _trials(text: str) -> list[tuple[int, float, int]]:
    """`5:1e-4:3,8:1e-4:3` -> [(5, 1e-4, 3), (8, 1e-4, 3)]: blocks (1-16), learning rate, epochs."""
    try:
        trials = [(int(b), float(r), int(e)) for b, r, e in (t.split(":") for t in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--deeper: BLOCKS:LR:EPOCHS separated by commas, e.g. 5:1e-4:3 (got {text!r})") from None
    if not all(1 <= b <= 16 and r > 0 and e >= 1 for b, r, e in trials):
        raise argparse.ArgumentTypeError(f"--deeper: blocks 1-16, a positive rate, epochs >= 1 (got {text!r})")
    return trials


if __name__ == "__main__":
    raise SystemExit(main())
