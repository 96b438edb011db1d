"""The STUDIES.md page: computed from MLflow records and nothing else; each setup set against the defaults
seed by seed, a CPU's share named, and the gap explained only by what measured it."""
from __future__ import annotations

from mlflow.tracking import MlflowClient

from tests.studyruns import trained, training_run
from writeup.studies.plan import experiments
from writeup.studies.records import trained_models
from writeup.studies.report import studies_markdown


def test_page_is_computed_from_the_records(tmp_path, monkeypatch):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("cifar10-imbalance")
    training_run(client, exp, "part2-reference", "baseline", 0.80, [0.5, 0.7, 0.8])
    training_run(client, exp, "part2-activation-sigmoid", "baseline", 0.60, [0.3, 0.5, 0.6])
    training_run(client, exp, "part2-activation-tanh", "baseline", 0.75, [0.4, 0.6, 0.75])
    for variant, acc in (("0", 0.79), ("2", 0.70)):  # with the reference's 0.80: neither rising nor falling
        training_run(client, exp, f"part2-hidden-layers-{variant}", "baseline", acc, [0.5, acc], cpu="Other CPU")
    for variant, acc in (("1x3x3", 0.79), ("1x7x7", 0.70)):  # the reference's 0.80 leads by 0.01 only
        training_run(client, exp, f"part2-convs-per-block-{variant}", "baseline", acc, [0.5, acc])
    # Seed 42's defaults predate the val_balanced_accuracy curve; seed 43's have it.
    training_run(client, exp, "part3-defaults-seed42", "baseline", 0.72, [0.6, 0.7, 0.65], best=2,
                  data_md5="67e51e5871ead830d054a2a0a957c933")
    training_run(client, exp, "part3-defaults-seed43", "baseline", 0.74, [0.6, 0.7, 0.65], seed=43, best=2,
                  balanced=[0.5, 0.6, 0.62])
    # Same seeds without restoring: the last epoch's weights are kept (val 0.68 / 0.71 against 0.70 restored).
    training_run(client, exp, "part3-no-restore-seed42", "baseline", 0.73, [0.6, 0.7, 0.68], best=2, restore=False,
                  balanced=[0.5, 0.6, 0.64], data_md5="67e51e5871ead830d054a2a0a957c933")
    training_run(client, exp, "part3-no-restore-seed43", "baseline", 0.77, [0.6, 0.7, 0.71], seed=43, best=2,
                  restore=False, balanced=[0.5, 0.6, 0.66])
    records = {e.name: trained_models(client, exp, e.name) for e in experiments()}
    monkeypatch.chdir(tmp_path)
    page = studies_markdown(records, "test", tmp_path / "figures")

    # Part 3's experiments train both CNNs: with only their baseline recorded they have not finished.
    assert "7 of 85 planned experiments have finished" in page
    activation = page.split("### activation")[1].split("###")[0]
    assert "**Holds** here: ranking by test accuracy: relu 0.8000, tanh 0.7500, sigmoid 0.6000" in activation
    assert "| sigmoid | `part2-activation-sigmoid` | 42 | `abc1234def` | float32 | Test CPU | 3 | 3 | 0.6000 | 0.6000 | 500 |" in activation
    assert (tmp_path / "figures" / "activation.png").stat().st_size > 5000
    assert (tmp_path / "figures" / "part3.png").stat().st_size > 5000 and "![part 3](" in page
    hidden = page.split("### hidden layers")[1].split("###")[0]
    assert "**Does not hold** here: test accuracy 0.7900 (0) < 0.8000 (1) > 0.7000 (2)" in hidden
    assert "Within the epochs every variant ran (1-2), best val accuracy: 0 0.7900, 1 0.7000, 2 0.7000." in hidden
    assert "These variants ran on 2 CPU models: compare images/s only between runs of one CPU." in hidden
    assert "CPU models" not in activation  # all of its variants ran on one CPU
    assert "spread over 2 seeds of part 3 (the same CNN on the imbalanced set) is 0.020" in page
    assert "**Not yet checked**" in page.split("### optimizer")[1].split("###")[0]
    # A verdict says whether the difference it rests on is within the part-3 seed spread (0.020 here).
    convs = page.split("### convs per block")[1].split("##")[0]
    assert ("**Holds** here: 2x3x3 0.8000, 1x3x3 0.7900, 1x7x7 0.7000. The difference it rests on (0.010) is smaller "
            "than the seed spread (0.020): within seed noise, so another seed could flip it.") in convs
    assert "seed noise, so another" not in activation and "seed noise, so another" not in hidden
    # The part-2 verdicts in one table above the studies' sections.
    assert ("| [hidden layers](#hidden-layers) | more hidden layers give higher accuracy | **does not hold** | "
            "0.100 (outside seed noise) |") in page
    assert "| [optimizer](#optimizer) | adam is above sgd at every epoch | **not yet checked** | – |" in page
    assert "deeper beats wider) | **holds** | 0.010 (within seed noise) |" in page
    assert ("relu 0.8000, tanh 0.7500, sigmoid 0.6000. The difference it rests on (0.050) is at least the seed "
            "spread (0.020) measured over 2 seeds: outside seed noise as far as it is measured.") in activation
    baseline = page.split("### baseline")[1].split("###")[0]
    assert "| accuracy | 0.78 | 0.730 (0.720 to 0.740) (2) | – (0) | 0.750 (0.730 to 0.770) (2) |" in baseline
    assert "| val accuracy of the kept weights | – | 0.700 (0.700 to 0.700) (2) | – (0) | 0.695 (0.680 to 0.710) (2) |" in baseline
    assert "| val balanced accuracy of the kept weights | – | 0.600 (1) | – (0) | 0.650 (0.640 to 0.660) (2) |" in baseline
    # Each run names the bytes it trained on (the training set's MD5, as dvc.lock has it), not the test set's.
    assert "| `part3-defaults-seed42` | baseline | 42 | float32 | `abc1234def` | Test CPU | 67e51e58 | 3 (2) | 0.7200 |" in page
    gap = page.split("### The gap")[1].split("###")[0]
    assert "the study minus our mean over 2 default seed(s): accuracy +0.050 (study outside our band)" in gap
    # Paired by seed: no-restore minus defaults is +0.01 and +0.03 on test accuracy, -0.02 and +0.01 on val;
    # val balanced accuracy (the judge) only where both runs logged it: seed 43, +0.06.
    assert ("no-restore minus the defaults, seed by seed (42, 43): kept weights' val balanced accuracy +0.060 "
            "(seeds with it: 43), val accuracy -0.005 (-0.020 to +0.010); test accuracy +0.020 (+0.010 to +0.030);") in gap
    assert "The study's accuracy is +0.030 from this setup's mean. 1 of 3 seeds judged so far: no verdict yet." in gap
    # Only seed 43's defaults logged the balanced curve: its kept (best, epoch 2) value 0.6 minus test 0.74.
    assert "val balanced accuracy minus test accuracy): baseline -0.140 (1 seed(s))." in gap
    assert "synthetic variants" not in gap  # said only when the augmented model's validation overstates more
    # The page opens with the headline figures: part 3's defaults beside the study's (no augmented run yet).
    glance = page.split("## At a glance")[1].split("**Still to run**")[0]
    assert ("- The study's baseline CNN (part 3, mean over 2 of 3 seeds, the study's figure in brackets): accuracy "
            "0.730 (0.78)") in glance
    assert "augmented CNN" not in glance and "remedies" not in glance
    assert page.index("## At a glance") < page.index("## Part 2")
    todo = page.split("**Still to run**")[1].split("\n")[0]
    assert "`part3-defaults-seed44`" in todo and "`part3-defaults-seed42`" in todo and "part2-reference" not in todo


def test_a_setup_is_proposed_only_when_validation_rises_on_every_seed_and_bf16_is_placed_in_the_band():
    from writeup.studies.gap import gap_lines

    defaults = {s: {"baseline": trained(f"d{s}", acc)} for s, acc in ((42, 0.72), (43, 0.74), (44, 0.73))}
    rises = {s: {"baseline": trained(f"n{s}", 0.75, val=(0.6, 0.7, 0.72), restore=False)} for s in defaults}
    # float32 runs of bf16's sitting and CPU: defaults 500, no-restore 625 images/s; val-accuracy's ran
    # on another CPU, seed 43's defaults in another sitting, and seed 44's no-restore was restored from a backup.
    defaults[42] = {"baseline": trained("d42", 0.72, sitting="one")}
    rises[42] = {"baseline": trained("n42", 0.75, ips=625.0, val=(0.6, 0.7, 0.72), restore=False, sitting="one")}
    defaults[43] = {"baseline": trained("d43", 0.74, ips=900.0, sitting="two")}
    rises[44] = {"baseline": trained("n44", 0.75, ips=900.0, val=(0.6, 0.7, 0.72), restore=False, sitting="one",
                                     resumed_from=3)}
    mixed = {**rises, 44: {"baseline": trained("n44", 0.75, val=(0.6, 0.7, 0.69), restore=False)},
             42: {"baseline": trained("v42", 0.75, ips=100.0, val=(0.6, 0.7, 0.72), restore=False, cpu="CPU B",
                                      sitting="one")}}
    bf16 = {42: {"baseline": trained("b42", 0.735, ips=250.0, sitting="one")}}
    lines = "\n".join(gap_lines({"defaults": defaults, "no-restore": rises, "val-accuracy": mixed,
                                 "mixed_bfloat16": bf16}))
    assert "no-restore minus the defaults, seed by seed (42, 43, 44): kept weights' val balanced accuracy +0.020" in lines
    assert "Raises val balanced accuracy on every seed: proposed as the default (chosen on validation only)." in lines
    assert "Does not raise val balanced accuracy on every seed: the defaults stay." in lines  # seed 44 fell
    # One seed without a rise settles it before the others have run.
    early = "\n".join(gap_lines({"defaults": defaults, "val-accuracy": {43: rises[43], 44: mixed[44]}}))
    assert ("val-accuracy minus the defaults, seed by seed (43, 44): kept weights' val balanced accuracy" in early
            and "Does not raise val balanced accuracy on seed 44: the defaults stay, whatever its other seeds show "
            "(2 of 3 judged)." in early)
    assert ("Inside the float32 seed band on all four test figures. Speed: 0.45x (0.40x to 0.50x) the images/s of "
            "float32 runs trained in the same sitting on the same CPU (2 pair(s), CPU A).") in lines
    # Below the band on a headline figure is a loss that sends the rule back to float32; above it is none.
    for acc, verdict in ((0.70, "Below the float32 seed band on accuracy, macro F1. A loss on accuracy and macro F1: "
                                "`precision: auto` must pick float32 for the CNN."),
                         (0.76, "Above the float32 seed band on accuracy, macro F1. No loss on test accuracy or "
                                "macro F1: `precision: auto` keeps bfloat16.")):
        placed = {42: {"baseline": trained("b42", acc, sitting="one")}}
        assert verdict in "\n".join(gap_lines({"defaults": defaults, "mixed_bfloat16": placed}))
    elsewhere = {42: {"baseline": trained("b42", 0.735, ips=250.0, cpu="CPU C", sitting="one")}}
    assert "Speed: no float32 run trained in the same sitting on the same CPU to set it against." in "\n".join(
        gap_lines({"defaults": defaults, "mixed_bfloat16": elsewhere}))
    # Validating on other rows: never judged on its validation figures, which are set beside test accuracy instead.
    honest = {s: {"baseline": trained(f"o{s}", 0.70, val=(0.6, 0.71, 0.69))} for s in defaults}
    own = "\n".join(gap_lines({"defaults": defaults, "val-originals": honest, "mixed_bfloat16": {}}))
    assert ("val-originals minus the defaults, seed by seed (42, 43, 44): test accuracy -0.030 (-0.040 to -0.020);" in own
            and "Not judged on validation" in own and "proposed" not in own and "the defaults stay" not in own)
    assert "Kept weights' val balanced accuracy minus test accuracy: +0.010 (+0.010 to +0.010); the defaults': -0.030 (-0.040 to -0.020)." in own
    # Paired with a rerun on its CPU, the overstatement is still the defaults' own (as the validation line gives it).
    honest[42] = {"baseline": trained("o42", 0.70, val=(0.6, 0.71, 0.69), cpu="CPU B")}
    again = {42: {"baseline": trained("rerun-defaults-seed42", 0.60, cpu="CPU B")}}
    paired_on_b = "\n".join(gap_lines({"defaults": defaults, "defaults, rerun": again, "val-originals": honest}))
    assert "Seed 42 is set against the defaults' rerun" in paired_on_b
    assert "; the defaults': -0.030 (-0.040 to -0.020)." in paired_on_b
    # A run on another training set than its seed's defaults run (augment differs between CPUs) is not paired.
    on_a = {s: {"baseline": trained(f"d{s}", acc, data="aaaa0004")} for s, acc in ((42, 0.72), (43, 0.74))}
    moved = {42: {"baseline": trained("m42", 0.80, val=(0.6, 0.7, 0.9), cpu="CPU B", data="bbbb0042")},
             43: {"baseline": trained("m43", 0.76, val=(0.6, 0.7, 0.9), data="aaaa0004")}}
    apart = "\n".join(gap_lines({"defaults": on_a, "val-balanced": moved, "mixed_bfloat16": {}}))
    assert "val-balanced minus the defaults, seed by seed (43): kept weights' val balanced accuracy +0.000 (seeds with it: 43)" in apart
    assert "test accuracy +0.020;" in apart  # seed 43 alone, not seed 42's +0.080
    assert ("Not paired (another training set than the defaults' run of the seed, so not a like-for-like shift): "
            "seed 42 trained on bbbb0042 (CPU B), the defaults on aaaa0004 (CPU A).") in apart
    alone = "\n".join(gap_lines({"defaults": on_a, "val-balanced": {42: moved[42]}, "mixed_bfloat16": {}}))
    assert "  - val-balanced: no run on the same training set as the defaults' yet. Not paired" in alone
    one = "\n".join(gap_lines({"defaults": {42: defaults[42]}, "no-restore": {}, "val-accuracy": {}, "mixed_bfloat16": {}}))
    assert "over 1 default seed(s): accuracy +0.060; macro F1 +0.040;" in one  # one seed has no band to be outside of


def test_a_rerun_of_the_defaults_measures_the_cpu_and_stands_in_for_them_on_its_own_cpu():
    from dataclasses import replace

    from writeup.studies.gap import gap_lines

    # Kept weights: epoch 2 (restored), so the middle value is the kept val balanced accuracy.
    defaults = {s: {"baseline": trained(f"d{s}", acc)} for s, acc in ((42, 0.72), (43, 0.74), (44, 0.73))}
    rerun = {42: {"baseline": trained("rerun-defaults-seed42", 0.75, val=(0.6, 0.73, 0.65), cpu="CPU B")}}

    def on_b(kept: dict[int, float]) -> dict:
        return {s: {"baseline": trained(f"v{s}", 0.76, val=(0.6, v, 0.65), cpu="CPU B")} for s, v in kept.items()}

    lines = "\n".join(gap_lines({"defaults": defaults, "defaults, rerun": rerun,
                                 "val-balanced": on_b({42: 0.75, 43: 0.72, 44: 0.72}), "mixed_bfloat16": {}}))
    assert ("  - defaults, rerun minus the defaults (seed 42, the same setup, seed and training set, on CPU B against "
            "CPU A): 3 epochs (best 2) against 3 (2); kept weights' val balanced accuracy +0.030, val accuracy +0.030; "
            "test accuracy +0.030; macro F1 +0.030; cat recall +0.000; dog recall +0.000. What the CPU alone moves") in lines
    # Seed 42 is set against the rerun (same CPU: +0.020, not +0.050); 43 and 44 against the defaults, across CPUs.
    assert "val-balanced minus the defaults, seed by seed (42, 43, 44): kept weights' val balanced accuracy +0.020 (+0.020 to +0.020)" in lines
    assert "Seed 42 is set against the defaults' rerun, which trained on the same CPU." in lines
    assert ("Seeds 43, 44 pair runs of two CPUs (CPU B against CPU A): the shift includes what the CPU alone moves "
            "(0.030 of the kept weights' val balanced accuracy in the defaults' rerun).") in lines
    assert "smallest rise (+0.020) is not above what the CPU alone moved (0.030)" in lines and "proposed" not in lines
    clear = "\n".join(gap_lines({"defaults": defaults, "defaults, rerun": rerun,
                                 "val-balanced": on_b({42: 0.78, 43: 0.78, 44: 0.78}), "mixed_bfloat16": {}}))
    assert "Raises val balanced accuracy on every seed: proposed as the default (chosen on validation only)." in clear
    unmeasured = "\n".join(gap_lines({"defaults": defaults, "val-balanced": on_b({42: 0.78, 43: 0.78, 44: 0.78}),
                                      "mixed_bfloat16": {}}))
    assert "some pairs cross CPUs and what the CPU alone moves is not measured: no verdict yet." in unmeasured
    assert "the shift includes what the CPU alone moves (not measured yet)." in unmeasured
    # Another augmented set on the other CPU: the shift is the CPU's and the data's together, and no partner.
    made = {42: {"baseline": trained("rerun-defaults-seed42", 0.75, cpu="CPU B", data="bbbb0042")}}
    on_a = {42: {"baseline": trained("d42", 0.72, data="aaaa0042")}}
    both_moved = "\n".join(gap_lines({"defaults": on_a, "defaults, rerun": made, "mixed_bfloat16": {}}))
    assert ("  - defaults, rerun minus the defaults (seed 42, the same setup and seed, trained on bbbb0042 against "
            "aaaa0042, on CPU B against CPU A): 3 epochs (best 2) against 3 (2);") in both_moved
    assert "What the CPU and the augmented set it made move together" in both_moved
    # Identical on another CPU: the CPU moves nothing, so any rise counts.
    twin = {42: {"baseline": replace(defaults[42]["baseline"], experiment="rerun-defaults-seed42",
                                     tags={"cpu": "CPU B"})}}
    across = "\n".join(gap_lines({"defaults": defaults, "defaults, rerun": twin,
                                  "val-balanced": on_b({42: 0.71, 43: 0.71, 44: 0.71}), "mixed_bfloat16": {}}))
    assert ("on CPU B against CPU A): identical per-epoch curves and test figures, so a run repeats exactly across "
            "these two CPUs: a shift between them is the setup's alone.") in across
    assert "Raises val balanced accuracy on every seed: proposed as the default" in across
    # On the defaults' own CPU the rerun checks that a run repeats (its speed may differ).
    same = {42: {"baseline": replace(defaults[42]["baseline"], experiment="rerun-defaults-seed42",
                                     metrics={**defaults[42]["baseline"].metrics, "train_images_per_s": 1.0})}}
    assert ("  - defaults, rerun minus the defaults (seed 42, the same setup, seed and training set, both on CPU A): "
            "identical per-epoch curves and test figures, so a run repeats exactly there.") in gap_lines(
                {"defaults": defaults, "defaults, rerun": same, "mixed_bfloat16": {}})


def test_where_early_stopping_ends_a_run_is_set_beside_its_test_accuracy(tmp_path):
    from dataclasses import replace

    from writeup.studies.stopping import stop_figure, stop_lines

    def stopped(name: str, best: int, acc: float):
        run_ = trained(name, acc)
        return {"baseline": replace(run_, metrics={**run_.metrics, "best_epoch": best})}

    rising = {"defaults": {42: stopped("d42", 15, 0.716), 43: stopped("d43", 7, 0.685)},
              "val-balanced": {42: stopped("v42", 25, 0.766)}, "mixed_bfloat16": {}}
    lines = stop_lines(rising)
    assert len(lines) == 2 and lines[0].startswith("- **Where early stopping ends a run**")  # no augmented runs
    # The study's baseline accuracy is 0.78 (cifar10.reporting.reference).
    assert lines[1] == ("  - baseline: 7: 0.685; 15: 0.716; 25: 0.766. Spearman's rank correlation +1.00 over 3 runs. "
                        "The latest stop (best epoch 25, 1 run(s)) gives test accuracy 0.766: the study's 0.78 is 0.014 "
                        "above the best of them.")
    stop_figure(rising, tmp_path / "stopping.png")
    assert (tmp_path / "stopping.png").stat().st_size > 5000
    falling = {"defaults": {42: stopped("d42", 15, 0.70), 43: stopped("d43", 7, 0.74)},
               "no-restore": {42: stopped("n42", 15, 0.69), 43: stopped("n43", 25, 0.68)}}
    assert stop_lines(falling)[1].startswith(
        "  - baseline: 7: 0.740; 15: 0.690, 0.700; 25: 0.680. Spearman's rank correlation -0.95 over 4 runs. ")
    late = {"defaults": rising["defaults"], "no-restore": {42: stopped("n42", 25, 0.77), 43: stopped("n43", 25, 0.79)}}
    assert stop_lines(late)[1].endswith("The latest stop (best epoch 25, 2 run(s)) gives test accuracy 0.770 to 0.790: "
                                        "the study's 0.78 is within their range.")
    late["no-restore"][42] = stopped("n42", 25, 0.785)
    assert stop_lines(late)[1].endswith("gives test accuracy 0.785 to 0.790: all of them pass the study's 0.78.")
    # Two runs, or one best epoch for all: nothing to relate.
    assert stop_lines({"defaults": rising["defaults"]}) == []
    assert stop_lines({"defaults": {s: stopped(f"d{s}", 15, a) for s, a in ((42, 0.7), (43, 0.71), (44, 0.72))}}) == []


def test_the_gap_is_explained_figure_by_figure_only_by_a_band_that_holds_the_study():
    from writeup.studies.gap import explained_lines

    # The study's baseline: accuracy 0.78, macro F1 0.76, cat 0.27, dog 0.38 (cifar10.reporting.reference).
    defaults = {s: {"baseline": trained(f"d{s}", acc)} for s, acc in ((42, 0.76), (43, 0.79), (44, 0.77))}
    other = {s: {"baseline": trained(f"o{s}", acc)} for s, acc in ((42, 0.74), (43, 0.75), (44, 0.75))}
    lines = "\n".join(explained_lines({"defaults": defaults, "val-accuracy": other, "mixed_bfloat16": {}}))
    assert "accuracy: seed noise (the study's 0.78 is inside the defaults' band)" in lines
    # macro F1 (= accuracy in trained): 0.76 is inside the defaults' band 0.76 to 0.79 as well.
    assert "macro F1: seed noise" in lines
    # cat recall is 0.3 on every run: no band holds 0.27; the closest setup is named with the gap left.
    assert "cat recall: unexplained by seed noise and by 1 setup(s) (closest: val-accuracy, the study minus its mean -0.030)" in lines
    moved = {s: {"baseline": trained(f"m{s}", acc)} for s, acc in ((42, 0.77), (43, 0.79), (44, 0.78))}
    far = {s: {"baseline": trained(f"f{s}", acc)} for s, acc in ((42, 0.70), (43, 0.71), (44, 0.72))}
    lines = "\n".join(explained_lines({"defaults": far, "val-balanced": moved, "no-restore": far,
                                       "mixed_bfloat16": moved}))  # bf16 is a precision, not a candidate setup
    # The runs that reach the study's figure are named with where they stopped (best epoch 2 in trained).
    assert ("accuracy: val-balanced's runs of seeds 43, 44 (best epochs 2, 2) reach it (the study's 0.78 is inside "
            "that setup's band, not the defaults')") in lines
    # Below the defaults' band: the runs at or under the study's figure reach it.
    low = {s: {"baseline": trained(f"l{s}", acc)} for s, acc in ((42, 0.76), (43, 0.79), (44, 0.80))}
    lines = "\n".join(explained_lines({"defaults": {s: {"baseline": trained(f"h{s}", 0.79)} for s in (42, 43, 44)},
                                       "val-balanced": low}))
    assert "accuracy: val-balanced's run of seed 42 (best epoch 2) reaches it (the study's 0.78" in lines
    assert explained_lines({"defaults": {42: defaults[42]}, "mixed_bfloat16": {}}) == []  # one seed: no band yet
    # Two of three seeds: a band too thin to explain anything yet (it could hold the study's figure by chance).
    alone = "\n".join(explained_lines({"defaults": far, "val-balanced": {42: moved[42], 43: moved[43]},
                                       "mixed_bfloat16": {}}))
    # Every figure unexplained alike (far's band holds none of the study's): said once.
    assert "- **What explains the baseline gap**, every figure: unexplained by seed noise (no candidate setup has run every seed yet)." in alone


def test_validation_is_compared_with_test_per_model_and_the_synthetic_split_named_only_when_it_overstates_more():
    from dataclasses import replace

    from writeup.studies.gap import validation_lines

    def both(base_val, aug_val):  # kept (best, epoch 2) val balanced accuracy; test accuracy 0.70 for both
        run = trained("r", 0.70, val=(0.5, base_val, 0.5))
        return {"baseline": run, "augmented": replace(run, model="augmented", curves={"val_balanced_accuracy": [0.5, aug_val]})}

    line = validation_lines({42: both(0.72, 0.80), 43: both(0.70, 0.78)})[0]
    assert "baseline +0.010 (+0.000 to +0.020) (2 seed(s)); augmented +0.090 (+0.080 to +0.100) (2 seed(s))." in line
    assert "synthetic variants of the same originals" in line
    assert "synthetic" not in validation_lines({42: both(0.80, 0.72)})[0]


def test_a_band_of_differences_never_shows_minus_zero():
    from writeup.studies.part3 import band

    assert band([-0.0001], "+") == "+0.000" and band([-0.0006], "+") == "-0.001"
    assert band([0.7161, 0.685, 0.7377]) == "0.713 (0.685 to 0.738)"


def test_the_remedies_section_ranks_on_validation_and_measures_the_goal(tmp_path):
    from dataclasses import replace

    from writeup.studies.plan import experiments
    from writeup.studies.report import studies_markdown

    def run(name, model, val, f1, cat, dog):
        base = trained(name, f1, val=(0.5, val, val - 0.1))
        metrics = {**base.metrics, "test_macro_f1": f1, "test_recall_cat": cat, "test_recall_dog": dog,
                   "test_precision_cat": 0.7, "test_precision_dog": 0.6, "train_seconds": 600.0}
        if name.startswith("remedy-none"):  # overfits: training accuracy 0.25 above validation at the kept epoch
            return replace(base, model=model, metrics=metrics, curves={**base.curves, "accuracy": [0.6, 0.85, 0.9]})
        if name.startswith("remedy-offline-online"):  # logit adjustment chose tau on validation
            tau = {"logit_adjustment_tau": 1.5, "val_balanced_accuracy_unadjusted": val - 0.02,
                   "val_balanced_accuracy_adjusted": val}
            return replace(base, model=model, metrics={**metrics, **tau})
        if name.startswith("remedy-mixup"):  # still improving when the epoch cap ended it
            return replace(base, model=model, metrics={**metrics, "epochs_run": 60})
        return replace(base, model=model, metrics=metrics)

    # mixup leads on validation with a worse test figure; the combination reaches the goal on test
    scores = {"none": (0.60, 0.70, 0.10, 0.20), "mixup": (0.80, 0.72, 0.30, 0.40),
              "offline + online + logit adjustment": (0.75, 0.86, 0.70, 0.66)}
    records = {}
    for e in experiments():
        if e.part == "remedies" and e.labels["setup"] in scores:
            val, f1, cat, dog = scores[e.labels["setup"]]
            bump = 0.01 * (e.labels["seed"] - 43)
            records[e.name] = {e.models[0]: run(e.name, e.models[0], val + bump, f1 + bump, cat, dog)}
    reference = trained("part2-reference", 0.82)  # the same CNN with no imbalance: macro F1 below the goal's
    records["part2-reference"] = {"baseline": replace(
        reference, params={**reference.params, "base.seed": "42"}, curves={**reference.curves, "val_loss": [1, .8, .9]},
        metrics={**reference.metrics, "test_recall_cat": 0.69, "test_recall_dog": 0.68})}
    page = studies_markdown(records, "test", tmp_path)
    section = page[page.index("## Beyond the study"):page.index("## Capacity")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith(("| remedy", "| ---"))]
    assert [row.split(" | ")[0] for row in rows] == ["| mixup", "| offline + online + logit adjustment", "| none"]
    assert "| mixup | 3 | 0.800 (0.790 to 0.810) | " in section  # the kept weights' val balanced accuracy
    assert " | 10.0 (10.0 to 10.0) | 500 (500 to 500) | CPU A |" in section  # training minutes to 0.1, images/s whole
    assert "**mixup** first (chosen on validation alone)" in section
    assert ("The figures of offline + online + logit adjustment are each seed's best of 13 tau values on the same "
            "validation split that ranks them") in section
    assert ("For scale, the same CNN with no imbalance to remedy (`part2-reference`: all 50,000 training images, seed "
            "42, part 2's protocol, one run): macro F1 0.820, cat recall 0.690, dog recall 0.680. The goal's macro F1 "
            "is above what it reached with every cat and dog image kept") in section
    assert "Logit adjustment's tau, chosen on validation balanced accuracy among 0, 0.25, ..., 3 (0: no" in section
    assert "- offline + online + logit adjustment: macro F1 0.860, cat recall 0.700, dog recall 0.660: goal reached" in section
    assert "- mixup: macro F1 0.720, cat recall 0.300, dog recall 0.400: macro F1 0.130 short; cat recall 0.350 short; dog recall 0.250 short" in section
    assert "- none: kept epoch 2 of 3 run; the cap ended 0 of 3 seed(s); training accuracy +0.250 against validation" in section
    assert "- mixup: kept epoch 2 of 60 run; the cap ended 3 of 3 seed(s); no training-accuracy curve." in section
    assert ("- offline + online + logit adjustment: tau 1.5 on seed 42, 1.5 on seed 43, 1.5 on seed 44; validation "
            "balanced accuracy 0.730 -> 0.750 (mean over 3 seed(s))." in section)
    assert "- mixup: tau" not in section and "- none: tau" not in section  # no adjustment, no tau line
    assert "Still improving when the cap ended them: mixup; a longer schedule" in section
    assert "Training accuracy more than 0.10 above validation: none;" in section
    assert (tmp_path / "remedies.png").stat().st_size > 0
    glance = page.split("## At a glance")[1].split("##")[0]
    assert ("- First of 3 remedies for the imbalance on validation: **mixup** (3 of 3 seeds): validation balanced "
            "accuracy 0.800; on test macro F1 0.720, cat recall 0.300, dog recall 0.400.") in glance
    assert ("- The combination chosen before any remedy ran: **offline + online + logit adjustment** (3 of 3 seeds): "
            "validation balanced accuracy 0.750; on test macro F1 0.860, cat recall 0.700, dog recall 0.660.") in glance
    assert ("- The goal (macro F1, cat recall, dog recall >= 0.85 / 0.65 / 0.65, mean over 3 seeds; the study's "
            "offline augmentation reached 0.80 / 0.49 / 0.55): reached by offline + online + logit adjustment "
            "(3 of 3 seeds).") in glance


def test_the_glance_names_the_goal_unreached_and_the_combination_once_when_it_leads():
    from dataclasses import replace

    from writeup.studies.glance import glance_lines

    def run(name, val, f1):
        base = trained(name, f1, val=(0.5, val, val - 0.1))
        return replace(base, model="augmented", metrics={**base.metrics, "train_seconds": 60.0})

    records = {"remedy-offline-online-logit-adjustment-seed42": {"augmented": run("c", 0.81, 0.79)},
               "remedy-offline-augmentation-seed42": {"augmented": run("o", 0.78, 0.80)}}
    lines = glance_lines(records)
    assert lines[0] == "## At a glance"
    assert lines[2].startswith("- First of 2 remedies for the imbalance on validation: **offline + online + logit "
                               "adjustment** (1 of 3 seeds): validation balanced accuracy 0.810; on test macro F1 0.790")
    assert not any("chosen before any remedy ran" in line for line in lines)  # it leads: named once
    assert lines[3].endswith("reached by no remedy so far; the remedies section says how far each got.")
    assert glance_lines({}) == []

    # every remedy on every seed, and the CNN's run with no imbalance: no "so far", and that run for scale
    done = {e.name: {e.models[0]: run(e.name, 0.80, 0.78)} for e in experiments() if e.part == "remedies"}
    reference = trained("part2-reference", 0.82)
    done["part2-reference"] = {"baseline": replace(reference, metrics={**reference.metrics, "test_macro_f1": 0.82})}
    assert glance_lines(done)[-2].endswith(
        "reached by no remedy; the remedies section says how far each got, and what the same CNN reached with no "
        "imbalance at all: macro F1 0.820, cat recall 0.300, dog recall 0.400 (part 2, one run).")


def test_a_remedy_that_adopted_anothers_training_says_whose_figures_it_shows():
    from dataclasses import replace

    from writeup.studies.remedies import adopted_lines
    from cifar10.training.backup_folders import ADOPTED_TAG

    own = trained("remedy-logit-adjustment-seed43", 0.79)
    adopted = replace(own, tags={**own.tags, ADOPTED_TAG: "remedy-none-seed44"})
    lines = adopted_lines({"logit adjustment": {43: own, 44: adopted}, "none": {44: trained("n", 0.77)}})
    assert lines[1] == "Trained once, used twice:"
    assert lines[3:] == ["- logit adjustment: seed(s) 44 restored the finished training of `remedy-none-seed44` (the "
                         "same params and data: it acts after training), so epochs, training minutes and images/s "
                         "there are that training's; its own cost is the search on validation that follows."]
    assert adopted_lines({"none": {44: trained("n", 0.77)}}) == []
