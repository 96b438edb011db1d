"""`make expect`: the work each stage does, its predicted time from speeds, the overrides, and a real
tiny measurement through the stages' own code printed as the report."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from benchmarks.expect import report, wall, with_overrides
from benchmarks.speeds import Rate, Speeds, measure, stage_startup
from benchmarks.workload import EPOCHS_SOURCE, image_counts, predict
from cifar10.errors import PipelineError
from writeup.stage_runs import STAGES
from cifar10.schema import parse_params
from cifar10.training.precision import resolve
from scripts.results import cost_row, recorded_epochs
from tests.conftest import REPO, committed_params, shrink_params

KINDS = ("cnn_train", "cnn_predict", "frozen", "features", "head", "fine_tune")


def speeds(per_second: float = 1000.0, setup: float = 0.0, **rates: float) -> Speeds:
    """Round speeds for hand arithmetic: every kind of work at `per_second` unless named."""
    made = {k: Rate(k, rates.get(k, per_second), setup, 0.5, "float32") for k in KINDS}
    policy = ("float32", "auto: no bfloat16 units")
    policies = dict.fromkeys(("train", "frozen", "fine_tune", "evaluate"), policy)
    return Speeds({"float32": 100.0, "bfloat16": 50.0}, made, policies, "no GPU", 2, "2048x2048 matmul, median of 15")


def committed(*overrides: str):
    return with_overrides(committed_params(), list(overrides))


def by_stage(params, measured: Speeds, startup: float = 0.0, recorded=None) -> dict:
    recorded = {"train-baseline": 21, "train-augmented": 29} if recorded is None else recorded
    return {s.stage: s for s in predict(params, measured, startup, recorded)}


def test_the_committed_params_count_the_images_the_full_run_recorded():
    counts = image_counts(committed())
    # RESULTS.md: 36,900 / 4,100 and 45,000 / 5,000 train / validation images; one pass over 55,000 images
    assert counts["train-baseline"] == (36_900, 4_100) and counts["train-augmented"] == (45_000, 5_000)
    assert counts["transfer"] == (50_000, 45_000, 5_000) and counts["imbalanced"] == (41_000,)
    cut = image_counts(committed("download.train_per_class=500", "download.test_per_class=100"))
    assert cut["train-baseline"] == (3_690, 410) and cut["test"] == (1_000,)


def test_each_stage_is_its_images_times_epochs_over_the_measured_rates():
    times = by_stage(committed(), speeds(1000.0))
    assert list(times) == list(STAGES)
    assert times["train-baseline"].seconds == pytest.approx(21 * (36_900 + 4_100) / 1000)
    assert times["train-augmented"].seconds == pytest.approx(29 * (45_000 + 5_000) / 1000)
    # pass 55,000; head 20 epochs x 45,000; features for the head and the final validation 45,000 + 3 x 5,000;
    # fine-tuning 2 epochs x (45,000 + 5,000 validation maps)
    assert times["transfer"].seconds == pytest.approx((55_000 + 20 * 45_000 + 60_000 + 2 * 50_000) / 1000)
    assert times["evaluate@baseline"].seconds == pytest.approx(10.0)
    assert times["evaluate@transfer"].seconds == pytest.approx(2 * 20_000 / 1000)  # mirror averaging, both parts
    assert times["evaluate@frozen"].seconds == times["evaluate@transfer"].seconds  # the same network, other weights
    assert all(times[s].seconds is None for s in ("download", "imbalance-subsample", "augment", "fetch-weights",
                                                  "compare"))
    # Twice the fine-tuning speed saves half of its 90 s; a start-up and a setup are paid once per stage.
    faster = by_stage(committed(), speeds(1000.0, fine_tune=2000.0))
    assert times["transfer"].seconds - faster["transfer"].seconds == pytest.approx(45.0)
    fixed = by_stage(committed(), speeds(1000.0, setup=2.0), startup=5.0)
    assert fixed["evaluate@baseline"].seconds == pytest.approx(10.0 + 5.0 + 2.0)
    assert fixed["train-baseline"].seconds - times["train-baseline"].seconds == pytest.approx(5.0 + 2 * 2.0)


def test_train_stages_expect_the_recorded_epochs_capped_by_train_epochs():
    times = by_stage(committed("train.epochs=3"), speeds(1000.0))
    assert times["train-baseline"].seconds == pytest.approx(3 * 41_000 / 1000)
    assert times["train-baseline"].work.startswith("3 epochs (train.epochs)")
    recorded = by_stage(committed(), speeds(1000.0))["train-augmented"].work
    assert recorded.startswith(f"29 epochs (the full run's, {EPOCHS_SOURCE})")
    unrecorded = by_stage(committed(), speeds(1000.0), recorded={})["train-baseline"]
    assert unrecorded.work.startswith("50 epochs (train.epochs: no full run recorded)")


def test_the_epochs_come_from_the_committed_results_page_as_its_writer_writes_them():
    assert recorded_epochs((REPO / EPOCHS_SOURCE).read_text()) == {"train-baseline": 21, "train-augmented": 29}
    metrics = {"stage_wall_time_s": 450.0, "peak_rss_mb": 1318.0, "epochs_run": 7, "best_epoch": 4,
               "train_images_per_s": 1738.0, "test_accuracy": 0.72}
    row = cost_row("train-augmented", metrics, {"train_images": "36900", "val_images": "4100"})
    assert recorded_epochs(f"| a | table |\n{row}\n") == {"train-augmented": 7}


def test_overrides_are_set_like_dvc_exp_run_and_validated_before_anything_runs():
    raw = committed_params()
    params = with_overrides(raw, ["train.epochs=3", "train.model.filters=[8, 16, 32]", "download.checksum=''"])
    assert params.train.epochs == 3 and params.train.model.filters == [8, 16, 32] and params.download.checksum == ""
    assert raw["train"]["epochs"] == 50 and raw["train"]["model"]["filters"] == [32, 64, 128]  # not edited
    refusals = {"train.epochs=0": r"params.yaml with -S train.epochs=0: train.epochs: .*greater than or equal to 1",
                "train.epoch=3": r"train.epoch: unknown key; allowed keys here: model, optimizer",
                "train.epochs": r"-S train.epochs: expected key=value",
                "train.epochs.max=3": r"-S train.epochs.max=3: train.epochs is a value, not a section"}
    for override, message in refusals.items():
        with pytest.raises(PipelineError, match=message):
            with_overrides(raw, [override])
    with pytest.raises(PipelineError, match="train.train_size: at most the 41000 images"):
        image_counts(with_overrides(raw, ["train.train_size=50000"]))


def test_a_bad_override_is_one_line_before_any_measuring(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(committed_params()))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.expect", "-S", "transfer.image_size=16"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["error: params.yaml with -S transfer.image_size=16: transfer.image_size: "
                                        "Input should be greater than or equal to 32 (got 16)"]


@pytest.mark.slow
def test_a_tiny_real_measurement_prints_every_stage_and_each_speed_against_its_limit():
    raw = shrink_params(committed_params())
    raw["transfer"]["backbone"] = "efficientnet_lite0"
    raw["train"]["model"].update(filters=[4, 8], conv_dropout=[0.1, 0.2], dense_units=[8])
    params = parse_params(raw)
    measured = measure(params, matmul_size=64, repeats=3, cnn_steps=3, cnn_repeats=2, transfer_images=32,
                       tune_steps=2)
    assert set(measured.rates) == set(KINDS) and set(measured.peaks) == {"float32", "bfloat16"}
    assert all(r.per_second > 0 and r.setup_seconds >= 0 and r.gflop > 0 for r in measured.rates.values())
    assert measured.policies["train"] == resolve("auto", "cnn") and measured.threads >= 1
    stages = predict(params, measured, 3.0, {"train-baseline": 21})
    text = report("params.yaml -S x=1", "a machine", measured, 3.0, stages)
    assert "Command:" not in text
    written = report("params.yaml -S x=1", "a machine", measured, 3.0, stages, command="python -m benchmarks.expect -S x=1")
    assert written == text.replace("\nMachine: ", "\nCommand: `python -m benchmarks.expect -S x=1`.\nMachine: ", 1)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0][2:] for r in rows if r.split(" | ")[0][2:] in STAGES] == list(STAGES)
    for rate in measured.rates.values():
        share = rate.per_second * rate.gflop / measured.peaks[rate.dtype]
        assert f"| {rate.work} | {rate.dtype} | {rate.per_second:,.0f} images/s | " in text
        assert f"{100 * share:.0f}% of {measured.peaks[rate.dtype] / rate.gflop:,.0f} images/s" in text
    total = sum(s.seconds for s in stages if s.seconds is not None)
    assert rows[-1] == f"| **total** | the 7 predicted stages | **{wall(total)}** |" and total > 0
    assert "1 epochs (train.epochs)" in text  # the tiny params' one epoch, below the recorded 21
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - started
    assert stage_startup() > bare, "a stage's start-up imports TensorFlow and MLflow: longer than a bare interpreter"


def test_flops_per_image_are_the_cnns_quoted_figure_and_efficientnets_published_one():
    from benchmarks.limits import forward_flops, training_gflop
    from cifar10.models.cnn import build_cnn
    from cifar10.models.transfer import build_backbone
    from cifar10.schema.train import ModelParams

    assert round(training_gflop(build_cnn(ModelParams())), 4) == 0.2316  # README, BENCHMARKS.md
    # EfficientNet-B0 at 224 px: 0.39 billion multiply-adds (Tan & Le, 2019), two FLOPs each
    b0 = build_backbone("efficientnet_b0", 224, None)
    assert sum(forward_flops(b0).values()) / 1e9 == pytest.approx(0.78, rel=0.03)


def test_the_check_times_each_stage_from_dvcs_running_stage_lines_to_the_next():
    from benchmarks.expect_check import stage_seconds

    stamped = [(100.0, "Reproducing experiment 'x'"), (101.0, "Running stage 'download':"),
               (105.0, "> python -m stages.download"), (131.0, "Running stage 'train-baseline':"),
               (150.0, "train-baseline: epoch 1 ..."), (152.5, "Updating lock file 'dvc.lock'")]
    assert stage_seconds(stamped, ended=161.0) == {"download": 30.0, "train-baseline": 30.0}


def test_the_check_holds_each_predicted_stage_and_their_sum_to_fifteen_percent():
    from benchmarks.expect_check import comparison
    from benchmarks.workload import StageTime

    stages = [StageTime("download", "d", None, "network and disk"), StageTime("train-baseline", "t", 100.0),
              StageTime("transfer", "x", 200.0)]
    rows = comparison(stages, {"download": 9.0, "train-baseline": 114.0, "transfer": 240.0})
    by_stage = {row.split(" | ")[0].lstrip("| "): row for row in rows[2:]}
    assert by_stage["download"].endswith("| 9.0 s | |"), "measured, never judged"
    assert by_stage["train-baseline"].endswith("| 1.14 |"), "inside the tolerance: no mark"
    assert by_stage["transfer"].endswith("| 1.20 (beyond ±15%) |")
    assert "**5.0 min** | **5.9 min** | **1.18** (beyond ±15%)" in by_stage["**the predicted stages**"]
    with pytest.raises(PipelineError, match="transfer was predicted but did not run"):
        comparison(stages, {"train-baseline": 100.0})


def test_a_written_section_replaces_its_namesake_dated_and_keeps_the_header_and_the_rest(tmp_path):
    from benchmarks.run import write_sections

    page = tmp_path / "BENCHMARKS.md"
    page.write_text("# Benchmarks\n\nheader line\n\n## A\n\nold a\n\n## B\n\nold b\n")
    write_sections(page, "## B\n\nnew b\n\n## C\n\nnew c")
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nheader line\n\n## A\n\nold a\n\n## B\n\n*Measured on ")
    assert "old b" not in text and "new b" in text and text.rstrip().endswith("new c")
    assert text.count("*Measured on") == 2, "the new sections are dated, the kept one is left as it was"
