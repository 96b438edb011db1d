"""The STUDIES.md page: computed from MLflow records and nothing else; it opens with the answers, every figure
carries its interval, every "A beats B" is the one rule's paired verdict, and no verdict crosses a mix."""
from __future__ import annotations

from dataclasses import replace

from mlflow.tracking import MlflowClient

from tests.studyruns import trained, training_run
from writeup.studies.plan import experiments
from writeup.studies.records import trained_models
from writeup.studies.report import studies_markdown

SEEDS = (42, 43, 44)


def _section(page: str, start: str, end: str = "\n## ") -> str:
    return page.split(start)[1].split(end)[0]


def test_page_is_computed_from_the_records(tmp_path, monkeypatch):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("cifar10-imbalance")
    training_run(client, exp, "part2-reference", "baseline", 0.80, [0.5, 0.7, 0.8])
    training_run(client, exp, "part2-activation-sigmoid", "baseline", 0.60, [0.3, 0.5, 0.6])
    training_run(client, exp, "part2-activation-tanh", "baseline", 0.75, [0.4, 0.6, 0.75])
    training_run(client, exp, "part2-hidden-layers-0", "baseline", 0.79, [0.5, 0.79], cpu="Other CPU")
    training_run(client, exp, "part2-hidden-layers-2", "baseline", 0.70, [0.5, 0.70])
    for variant, acc in (("1x3x3", 0.795), ("1x7x7", 0.70)):  # the reference's 0.80 leads 1x3x3 by 0.005 only
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
    assert "7 of 87 planned experiments have finished" in page
    assert page.index("## Answers") < page.index("How to read it") < page.index("## Part 2")
    # Part 2: one seed a variant; each step a pair, judged where like for like.
    activation = _section(page, "### activation", "###")
    assert ("**Holds** here (one seed): relu minus tanh: +0.050 against a yardstick of 0.00") in activation
    assert "tanh minus sigmoid: +0.150 against a yardstick of" in activation and "**better**" in activation
    assert ("| sigmoid | `part2-activation-sigmoid` | 42 | `abc1234def` | float32 | Test CPU | 3 | 3 | 0.6000 | "
            "0.6000 [0.59") in activation  # the test accuracy's 95% interval beside it
    assert (tmp_path / "figures" / "activation.png").stat().st_size > 5000
    hidden = _section(page, "### hidden layers", "###")
    # 0 ran on another CPU: that step is named and gets no verdict; 2 against 1 is like for like and falls.
    assert ("**Does not hold** here (one seed): 1 minus 0: +0.010: **no verdict** (mixes CPU Test CPU / Other CPU)"
            in hidden)
    assert "2 minus 1: -0.100 against a yardstick of" in hidden and "**worse**" in hidden
    convs = _section(page, "### convs per block", "##")
    assert "**Not distinguishable** here (one seed): 2x3x3 minus 1x3x3: +0.005 against a yardstick of" in convs
    summary = _section(page, "## Part 2", "### hidden layers")
    assert "| [hidden layers](#hidden-layers) | more hidden layers give higher accuracy | **does not hold** | 2 minus 1:" \
        in summary
    assert "| [optimizer](#optimizer) | adam is above sgd at every epoch | **not yet checked** | – |" in summary
    assert "(deeper beats wider) | **not distinguishable** | 2x3x3 minus 1x3x3: +0.005" in summary
    # Part 3's gap table: ours against the study, and no-restore minus the defaults on the same CPU, commit, set.
    gap = _section(page, "### The gap", "### Runs")
    row = next(line for line in gap.splitlines() if line.startswith("| baseline | accuracy |"))
    assert row.startswith("| baseline | accuracy | 0.78 | 0.730 (0.720 to 0.740) ±0.00")
    assert "| -0.050 (-0.060 to -0.040): below |" in row
    assert "| +0.020 (+0.010 to +0.030): better |" in row  # +0.01 and +0.03, both beyond the yardstick
    kept = next(line for line in gap.splitlines() if line.startswith("| baseline | val balanced accuracy"))
    assert "| +0.060: better |" in kept  # only seed 43 logged the curve on both runs: one pair
    assert "No setup is proposed as a default" in gap  # better on one of three seeds is not every seed
    assert "| defaults, rerun | baseline |" not in gap  # no rerun recorded: no such pair
    # Each run names the bytes it trained on (the training set's MD5, as dvc.lock has it), not the test set's.
    assert "| `part3-defaults-seed42` | baseline | 42 | float32 | `abc1234def` | Test CPU | 67e51e58 | 3 (2) | 0.7200 [" in page
    answers = _section(page, "## Answers", "How to read it")
    assert "| Does the study's baseline CNN reach its published figures (2 seeds)? | No: below it on accuracy" in answers
    assert "augmented CNN" not in answers and "remedy" not in answers
    assert "| Does a setup of part 3 (early stopping, validation split) move test accuracy? | no-restore (baseline): " \
           "better | like-for-like pairs with the defaults: 2 of 2 |" in answers
    todo = page.split("**Still to run**")[1].split("\n")[0]
    assert "`part3-defaults-seed44`" in todo and "`part3-defaults-seed42`" in todo and "part2-reference" not in todo
    assert "`f32-seed42` and `f32-seed43` run in one sitting with their bfloat16 mate, on a CPU with bfloat16 units" \
        in todo


def _setups(**more) -> dict:
    defaults = {s: {"baseline": trained(f"d{s}", acc, seed=s)} for s, acc in zip(SEEDS, (0.72, 0.74, 0.73))}
    return {"defaults": defaults, **more}


def test_the_gap_is_one_table_of_paired_shifts_with_verdicts():
    from writeup.studies.gap import gap_lines, gap_table

    rises = {s: {"baseline": trained(f"n{s}", acc + 0.03, seed=s, val=(0.6, 0.7, 0.71), restore=False)}
             for s, acc in zip(SEEDS, (0.72, 0.74, 0.73))}
    elsewhere = {s: {"baseline": trained(f"v{s}", 0.80, seed=s, cpu="Intel(R) Xeon(R) (family 6 model 207)")}
                 for s in SEEDS}
    originals = {s: {"baseline": trained(f"o{s}", 0.70, seed=s)} for s in SEEDS}
    table = "\n".join(gap_table(_setups(**{"no-restore": rises, "val-balanced": elsewhere,
                                           "val-originals": originals})))
    head, _, accuracy, macro, cat, dog, kept = table.splitlines()
    assert head == ("| model | figure | study | ours: defaults, 3 seeds | ours against the study | no-restore minus the "
                    "defaults | val-balanced minus the defaults | val-originals minus the defaults |")
    assert accuracy.startswith("| baseline | accuracy | 0.78 | 0.730 (0.720 to 0.740) ±0.00")
    assert accuracy.endswith("| -0.050 (-0.060 to -0.040): below | +0.030 (+0.030 to +0.030): better | "
                             "+0.070 (+0.060 to +0.080): no verdict (mixes CPU) | "
                             "-0.030 (-0.040 to -0.020): worse |")
    # Macro F1 has no interval without a confusion matrix: no verdict, whatever the shift.
    assert "| baseline | macro F1 | 0.76 | 0.730 (0.720 to 0.740) | -0.030 (-0.040 to -0.020): no verdict (no interval)" \
        in macro
    assert "(mixes CPU)" in cat and "(mixes CPU)" in dog
    # Kept weights: validation's own yardstick; val-originals validates on other rows, so it is not judged there.
    assert kept.startswith("| baseline | val balanced accuracy of the kept weights | – | 0.700 (0.700 to 0.700) ±0.02")
    assert "| +0.010 (+0.010 to +0.010): not distinguishable |" in kept and kept.endswith(
        "| – (validates on other rows) |")
    lines = "\n".join(gap_lines(_setups(**{"no-restore": rises})))
    assert "| no-restore | baseline | 42 | `n42` − `d42` | nothing | +0.030 | +0.030 | +0.000 | +0.000 | +0.010 |" in lines
    assert "No setup is proposed as a default" in lines  # +0.02 on validation is within its yardstick
    assert lines.index("| model | figure |") < lines.index("<details>") < lines.index("Not measurable here")


def test_bfloat16_is_judged_only_against_like_for_like_float32_partners_and_waits_for_three():
    from writeup.studies.gap import WAITS, gap_lines, gap_table

    bf16 = {s: {"baseline": trained(f"b{s}", 0.77, seed=s, ips=1500.0, sitting="one",
                                    cpu="Intel(R) Xeon(R) (family 6 model 167)", commit="bcf1256d75")} for s in SEEDS}
    partner = {44: {"baseline": trained("f44", 0.75, seed=44, ips=750.0, sitting="one",
                                        cpu="Intel(R) Xeon(R) (family 6 model 167)", commit="bcf1256d75")}}
    one = gap_table(_setups(mixed_bfloat16=bf16, **{"float32 partner": partner}))
    assert one[0].endswith("| mixed_bfloat16 minus its float32 partner |")
    assert one[2].endswith(f"| +0.020 (1 of 3 like-for-like pairs): {WAITS} |")  # not against the defaults' band
    lines = "\n".join(gap_lines(_setups(mixed_bfloat16=bf16, **{"float32 partner": partner})))
    assert "Speed: bfloat16 trains at 2.00x float32's images/s (1 pair(s) of one sitting on one CPU, Xeon 6/167)." in lines
    # Partners of another commit or CPU do not count: the pair mixes, it waits still.
    partner[42] = {"baseline": trained("f42", 0.70, seed=42, cpu="AMD EPYC (family 25 model 17)", commit="bcf1256d75")}
    partner[43] = {"baseline": trained("f43", 0.70, seed=43, cpu="Intel(R) Xeon(R) (family 6 model 167)",
                                       commit="4832728804")}
    mixed = gap_table(_setups(mixed_bfloat16=bf16, **{"float32 partner": partner}))
    assert mixed[2].endswith(f"| +0.020 (1 of 3 like-for-like pairs): {WAITS} |")
    # Three like-for-like pairs: the rule decides.
    for s in (42, 43):
        partner[s] = {"baseline": trained(f"f{s}", 0.75, seed=s, cpu="Intel(R) Xeon(R) (family 6 model 167)",
                                          commit="bcf1256d75")}
    judged = gap_table(_setups(mixed_bfloat16=bf16, **{"float32 partner": partner}))
    assert judged[2].endswith("| +0.020 (+0.020 to +0.020): better |")


def test_the_defaults_rerun_says_whether_a_run_repeats_across_cpus():
    from writeup.studies.gap import rerun_line

    first = trained("part3-defaults-seed42", 0.72, seed=42, cpu="AMD EPYC (family 25 model 17)", commit="4832728804")
    again = replace(first, experiment="rerun-defaults-seed42", tags={**first.tags, "cpu": "Intel(R) Xeon(R) (family 6 "
                                                                     "model 207)", "git_commit": "c8bc7f40bf"})
    setups = {"defaults": {42: {"baseline": first}}, "defaults, rerun": {42: {"baseline": again}}}
    assert rerun_line(setups) == ("The defaults' rerun: the baseline of seed 42 repeated exactly (Xeon 6/207 at "
                                  "c8bc7f4, EPYC 25/17 at 4832728).")
    moved = replace(again, metrics={**again.metrics, "test_accuracy": 0.73})
    assert "did not repeat" in rerun_line({**setups, "defaults, rerun": {42: {"baseline": moved}}})


def test_where_early_stopping_ends_a_run_is_one_descriptive_line(tmp_path):
    from writeup.studies.stopping import stop_figure, stop_lines

    def stopped(name: str, best: int, acc: float):
        run_ = trained(name, acc)
        return {"baseline": replace(run_, metrics={**run_.metrics, "best_epoch": best})}

    rising = {"defaults": {42: stopped("d42", 15, 0.716), 43: stopped("d43", 7, 0.685)},
              "val-balanced": {42: stopped("v42", 25, 0.766)}, "mixed_bfloat16": {}}
    assert stop_lines(rising) == [
        "Where early stopping ends a run (figure above): Spearman's rank correlation of best epoch and test accuracy "
        "over every part-3 run, baseline +1.00 over 3 runs (best epochs 7 to 25). The runs span setups, CPU models "
        "and commits and share trainings up to where they stop: a description, no verdict."]
    stop_figure(rising, tmp_path / "stopping.png")
    assert (tmp_path / "stopping.png").stat().st_size > 5000
    # Two runs, or one best epoch for all: nothing to relate.
    assert stop_lines({"defaults": rising["defaults"]}) == []
    assert stop_lines({"defaults": {s: stopped(f"d{s}", 15, a) for s, a in ((42, 0.7), (43, 0.71), (44, 0.72))}}) == []


def test_validation_is_compared_with_test_per_model_and_the_synthetic_split_named_only_when_it_overstates_more():
    from writeup.studies.gap import validation_line

    def both(base_val, aug_val):  # kept (best, epoch 2) val balanced accuracy; test accuracy 0.70 for both
        run = trained("r", 0.70, val=(0.5, base_val, 0.5))
        return {"baseline": run, "augmented": replace(run, model="augmented", curves={"val_balanced_accuracy": [0.5, aug_val]})}

    line = validation_line({42: both(0.72, 0.80), 43: both(0.70, 0.78)})
    assert "baseline +0.010 (+0.000 to +0.020) (2 seed(s)); augmented +0.090 (+0.080 to +0.100) (2 seed(s))." in line
    assert "synthetic variants of images it trains on" in line
    assert "synthetic" not in validation_line({42: both(0.80, 0.72)})


def test_a_band_of_differences_never_shows_minus_zero():
    from writeup.studies.part3 import band

    assert band([-0.0001], "+") == "+0.000" and band([-0.0006], "+") == "-0.001"
    assert band([0.7161, 0.685, 0.7377]) == "0.713 (0.685 to 0.738)"


def _remedy(name, model, val, f1, cat, dog, seed, commit="8db0f9c4b9", **metrics):
    base = trained(name, f1, val=(0.5, val, val - 0.1), seed=seed, model=model, cat=cat, dog=dog, commit=commit,
                   data=f"{model[:4]}{seed}")
    return replace(base, params={**base.params, "train.validation_from": "originals"},
                   metrics={**base.metrics, "test_macro_f1": f1, "train_seconds": 600.0, **metrics})


def _remedy_records(scores: dict[str, tuple], **per_remedy) -> dict:
    """Every seed of each remedy in `scores` (validation, macro F1, cat, dog), plus `per_remedy` metrics."""
    records = {}
    for e in experiments():
        if e.part == "remedies" and e.labels["setup"] in scores:
            val, f1, cat, dog = scores[e.labels["setup"]]
            bump = 0.01 * (e.labels["seed"] - 43)
            extra = per_remedy.get(e.labels["setup"], lambda v: {})(val + bump)
            records[e.name] = {e.models[0]: _remedy(e.name, e.models[0], val + bump, f1 + bump, cat, dog,
                                                    e.labels["seed"], **extra)}
    return records


def test_remedies_are_ranked_on_validation_each_against_the_first_and_a_tau_tuned_on_that_split_is_not(tmp_path):
    from writeup.studies.remedies_section import remedies_section

    def old_way(val):  # tau the best of the grid on the very split that ranks
        return {"logit_adjustment_tau": 1.5, "val_balanced_accuracy_unadjusted": val - 0.02,
                "val_balanced_accuracy_adjusted": val}

    scores = {"none": (0.70, 0.70, 0.10, 0.20), "mixup": (0.80, 0.72, 0.30, 0.40),
              "oversampling": (0.79, 0.74, 0.35, 0.45), "offline + online + logit adjustment": (0.90, 0.86, 0.70, 0.66)}
    records = _remedy_records(scores, **{"offline + online + logit adjustment": old_way})
    records["part2-reference"] = {"baseline": replace(trained("part2-reference", 0.82, cat=0.69, dog=0.68),
                                                      metrics={**trained("r", 0.82, cat=0.69, dog=0.68).metrics,
                                                               "test_macro_f1": 0.82})}
    section = "\n".join(remedies_section(records, tmp_path))
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit() or line.startswith("| –")]
    assert [row.split(" | ")[1] for row in rows] == ["mixup", "oversampling", "none",
                                                     "offline + online + logit adjustment"]
    assert rows[0].startswith("| 1 | mixup | 3 | 0.800 (0.790 to 0.810) ±0.0")
    # -0.01 on every seed, within validation's yardstick (50 cats and 50 dogs); none is 0.10 below: worse.
    assert "| 2 | oversampling | 3 | 0.790 (0.780 to 0.800) ±0.0" in rows[1] and \
        "| -0.010 (-0.010 to -0.010): not distinguishable |" in rows[1]
    assert "| -0.100 (-0.100 to -0.100): worse |" in rows[2]
    assert rows[3].startswith("| – | offline + online + logit adjustment | 3 | 0.900 (0.890 to 0.910), tuned on the "
                              "ranking's own split | no verdict until rerun |")
    assert "**mixup** ranks first; against it, not distinguishable: oversampling; worse: none." in section
    assert ("Chosen the old way (offline + online + logit adjustment: tau 1.5 (seed 42), 1.5 (seed 43), 1.5 (seed 44)): "
            "each seed's tau the best of 13 on the whole validation split") in section
    assert "| oversampling | 42: -0.010, 43: -0.010, 44: -0.010 | 0.0" in section  # the per-seed differences
    assert "The goal (macro F1, cat recall, dog recall >= 0.85 / 0.65 / 0.65" in section
    assert "reached by offline + online + logit adjustment." in section
    assert "For scale, the same CNN with no imbalance to remedy (`part2-reference`, all 50,000 training images" in section
    assert "cat recall 0.690 [0.6" in section
    assert "validation from original images only (500 images a class, 50 cat, 50 dog)" in section
    assert (tmp_path / "remedies.png").stat().st_size > 0


def test_logit_adjustment_chosen_on_one_half_is_ranked_on_the_other_with_that_halfs_yardstick():
    from writeup.studies.remedies import VALIDATION, ranking, remedy_runs
    from writeup.studies.remedies_section import tau_lines

    def halves(val):  # chosen on one half, scored on the other: the figure the ranking reads
        return {"logit_adjustment_tau": 1.0, "val_balanced_accuracy_unadjusted": 0.70,
                "val_balanced_accuracy_adjusted": 0.95, "val_balanced_accuracy_ranking_unadjusted": 0.69,
                "val_balanced_accuracy_ranking": val + 0.02}

    records = _remedy_records({"none": (0.70, 0.70, 0.10, 0.20), "logit adjustment": (0.70, 0.75, 0.40, 0.45)},
                              **{"logit adjustment": halves})
    ranked = ranking(remedy_runs(records))
    assert ranked.order == ["logit adjustment", "none"] and not ranked.tuned
    against = ranked.against_first["none"]
    assert [round(d, 3) for d in against.judged.values()] == [-0.02, -0.02, -0.02]  # ranking half, not 0.95
    # Half the validation rows: logit adjustment's interval is about sqrt(2) times none's, and sets the yardstick.
    whole = max(VALIDATION.half_width(r) for r in remedy_runs(records)["none"].values())
    assert against.yardstick > 1.3 * whole and against.verdict == "not distinguishable"
    lines = tau_lines(remedy_runs(records))
    assert "- logit adjustment, seed 42: tau 1; choosing half 0.700 -> 0.950; ranking half 0.690 -> 0.710." in lines


def test_the_page_opens_with_the_answers_each_resting_on_a_figure_with_its_interval():
    from writeup.studies.answers import answer_lines

    records = {f"part3-defaults-seed{s}": {"baseline": trained(f"d{s}", acc, seed=s, cat=0.1, dog=0.25),
                                           "augmented": trained(f"a{s}", acc + 0.05, seed=s, model="augmented",
                                                                cat=0.42, dog=0.55)}
               for s, acc in zip(SEEDS, (0.70, 0.72, 0.71))}
    xeon = {"cpu": "Intel(R) Xeon(R) (family 6 model 167)", "commit": "bcf1256d75"}
    records["bf16-seed44"] = {m: trained("bf16-seed44", 0.76, seed=44, model=m, **xeon) for m in ("baseline", "augmented")}
    records["f32-seed44"] = {m: trained("f32-seed44", 0.75, seed=44, model=m, **xeon) for m in ("baseline", "augmented")}
    records |= _remedy_records({"none": (0.70, 0.70, 0.10, 0.20), "mixup": (0.80, 0.72, 0.30, 0.40),
                                "oversampling": (0.79, 0.74, 0.35, 0.45)})
    lines = answer_lines(records)
    assert lines[:4] == ["## Answers", "", "| question | answer | the figure it rests on |", "| --- | --- | --- |"]
    rows = {line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:] for line in lines[4:] if line}
    baseline = rows["Does the study's baseline CNN reach its published figures (3 seeds)?"]
    assert baseline[0] == "No: below it on accuracy, cat recall and dog recall; macro F1: no interval"
    assert baseline[1].startswith("test accuracy 0.710 (0.700 to 0.720) ±0.00") and baseline[1].endswith(
        "against the study's 0.78 |")
    augmented = rows["Does the study's augmented CNN reach its published figures (3 seeds)?"]
    assert augmented[0] == "No: below it on accuracy and cat recall; not distinguishable on dog recall; macro F1: no " \
                           "interval"
    bf16 = next(v for k, v in rows.items() if k.startswith("Does training in bfloat16"))
    assert bf16[0] == "Waits for runs on a CPU with bfloat16 units (1 of 3 like-for-like pairs)"
    assert bf16[1].startswith("bfloat16 minus float32, test accuracy: baseline +0.010 (seed 44); augmented +0.010 "
                              "(seed 44); yardstick 0.00")
    first = rows["Which remedy for the imbalance ranks first on validation?"]
    assert first[0] == "mixup; not distinguishable from oversampling; above none"
    assert first[1].startswith("validation balanced accuracy 0.800 (0.790 to 0.810) ±0.0")
    goal = rows["Does any remedy reach the goal (macro F1, cat recall, dog recall >= 0.85 / 0.65 / 0.65)?"]
    assert goal[0] == "No: every remedy's cat recall is below 0.65 on every seed"
    assert goal[1].startswith("the highest cat recall: oversampling, 0.350 (0.350 to 0.350) ±0.0")
    assert answer_lines({}) == []


def test_a_remedy_that_adopted_anothers_training_says_whose_figures_it_shows():
    from cifar10.training.backup_folders import ADOPTED_TAG
    from writeup.studies.remedies_section import adopted_lines

    own = trained("remedy-logit-adjustment-seed43", 0.79)
    adopted = replace(own, tags={**own.tags, ADOPTED_TAG: "remedy-none-seed44"})
    lines = adopted_lines({"logit adjustment": {43: own, 44: adopted}, "none": {44: trained("n", 0.77)}})
    assert lines == ["logit adjustment: seed(s) 44 restored the finished training of `remedy-none-seed44` (it acts "
                     "after training), so epochs, training minutes and images/s there are that training's.", ""]
    assert adopted_lines({"none": {44: trained("n", 0.77)}}) == []
