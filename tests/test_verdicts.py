"""The one rule behind every "A beats B" on STUDIES.md, on constructed records: better, worse, not
distinguishable, and no verdict across a mix of CPU model, training code or training set; the intervals it measures
with come from the test counts the records keep."""
from __future__ import annotations

import math

import pytest

from tests.studyruns import trained
from writeup.studies.uncertainty import (Figure, mean_with, figure_on_test, interval_on_test, validation_half_width,
                                         validation_support, with_interval)
from writeup.studies.verdicts import BETTER, NO_VERDICT, UNDECIDED, WORSE, against_reference, compare, verdict

ACCURACY = figure_on_test("test accuracy", "test_accuracy")
SEEDS = (42, 43, 44)


def _pairs(a: dict[int, float], b: dict[int, float], **b_kwargs) -> dict:
    return {s: (trained(f"a{s}", a[s], seed=s), trained(f"b{s}", b[s], seed=s, **b_kwargs)) for s in a}


def test_the_yardstick_is_the_test_set_interval_from_the_recorded_counts():
    """0.80 on 10,000 balanced test images: the binomial half-width 1.96 sqrt(0.8 * 0.2 / 10,000) = 0.0078."""
    run = trained("r", 0.80, cat=0.80, dog=0.80)
    found = interval_on_test(run, "test_accuracy")
    assert found.low < 0.80 < found.high
    assert found.half_width == pytest.approx(1.959964 * math.sqrt(0.8 * 0.2 / 10_000), rel=0.15)
    cat = interval_on_test(trained("r", 0.80, cat=0.27), "test_recall_cat")  # 270 of 1,000 cats
    assert cat.half_width == pytest.approx(1.959964 * math.sqrt(0.27 * 0.73 / 1000), rel=0.15)
    assert interval_on_test(run, "test_macro_f1") is None  # no confusion matrix: no macro F1 interval
    assert with_interval(run, "test_accuracy") == f"0.800 [{found.low:.3f}, {found.high:.3f}]"
    over_seeds = mean_with([trained("a", 0.70), trained("b", 0.72), trained("c", 0.74)], ACCURACY)
    assert over_seeds.startswith("0.720 (0.700 to 0.740) ±0.00")


def test_the_rule_on_paired_differences():
    assert verdict([0.02, 0.03, 0.01], 0.008) == BETTER
    assert verdict([-0.02, -0.03, -0.01], 0.008) == WORSE
    assert verdict([0.02, 0.03, -0.001], 0.008) == UNDECIDED  # the signs disagree
    assert verdict([0.005, 0.006, 0.007], 0.008) == UNDECIDED  # every seed above zero, the mean within the yardstick
    assert verdict([0.02], 0.008) == BETTER  # one seed: its difference alone must pass
    assert verdict([0.02, 0.03], None) == NO_VERDICT and verdict([], 0.008) == NO_VERDICT


def test_better_worse_and_not_distinguishable_on_records():
    high, low = {s: 0.80 for s in SEEDS}, {s: 0.77 for s in SEEDS}
    better = compare(_pairs(high, low), ACCURACY)
    assert better.verdict == BETTER and better.shift() == "+0.030 (+0.030 to +0.030)"
    assert better.yardstick == pytest.approx(0.0083, abs=0.0015)  # the wider interval: 0.77's
    assert better.cell() == "+0.030 (+0.030 to +0.030): better"
    assert compare(_pairs(low, high), ACCURACY).verdict == WORSE
    close = compare(_pairs(high, {s: 0.795 for s in SEEDS}), ACCURACY)  # +0.005 on every seed: within the yardstick
    assert close.verdict == UNDECIDED
    mixed_signs = compare(_pairs({42: 0.80, 43: 0.80, 44: 0.76}, low), ACCURACY)
    assert mixed_signs.verdict == UNDECIDED and mixed_signs.per_seed() == "42: +0.030, 43: +0.030, 44: -0.010"


@pytest.mark.parametrize("other, named", [({"cpu": "Intel(R) Xeon(R) Processor (family 6 model 167; amx)"}, "CPU"),
                                          ({"commit": "fedcba98"}, "code"),
                                          ({"data": "bbbb0002"}, "training set")])
def test_a_pair_that_mixes_cpu_commit_or_training_set_gets_no_verdict(other, named):
    a = {s: trained(f"a{s}", 0.80, seed=s, data="aaaa0001") for s in SEEDS}
    b = {s: trained(f"b{s}", 0.70, seed=s, **{"data": "aaaa0001", **other}) for s in SEEDS}
    found = compare({s: (a[s], b[s]) for s in SEEDS}, ACCURACY)
    assert found.verdict == NO_VERDICT and not found.judged and found.yardstick is None
    assert found.cell() == f"+0.100 (+0.100 to +0.100): no verdict (mixes {named})"  # the mix named beside the figure
    assert named.split()[0] in found.mixed[42][0]
    # One seed mixed: it is shown, named and left out; the others are judged.
    b[43] = trained("b43", 0.70, seed=43, data="aaaa0001")
    b[44] = trained("b44", 0.70, seed=44, data="aaaa0001")
    partly = compare({s: (a[s], b[s]) for s in SEEDS}, ACCURACY)
    assert partly.verdict == BETTER and sorted(partly.judged) == [43, 44] and list(partly.mixed) == [42]
    assert partly.cell().endswith(f"on seeds 43, 44: better (seed 42 left out: {named})")
    assert partly.per_seed() == "42: +0.100*, 43: +0.100, 44: +0.100"


def test_a_training_set_the_comparison_itself_changes_is_not_a_mix():
    """Offline augmentation against no remedy trains on another set by design: that is the treatment."""
    a = {s: trained(f"a{s}", 0.80, seed=s, data="aaaa0001", model="augmented") for s in SEEDS}
    b = {s: trained(f"b{s}", 0.75, seed=s, data="bbbb0002") for s in SEEDS}
    assert compare({s: (a[s], b[s]) for s in SEEDS}, ACCURACY).verdict == NO_VERDICT
    assert compare({s: (a[s], b[s]) for s in SEEDS}, ACCURACY, same_data=False).verdict == BETTER


def test_a_figure_without_an_interval_gets_no_verdict():
    macro_f1 = figure_on_test("macro F1", "test_macro_f1")  # no confusion matrix in these records
    found = compare(_pairs({s: 0.80 for s in SEEDS}, {s: 0.70 for s in SEEDS}), macro_f1)
    assert found.verdict == NO_VERDICT and found.cell() == "+0.100 (+0.100 to +0.100): no verdict (no interval)"


def test_runs_against_a_published_figure():
    runs = {s: trained(f"d{s}", acc, seed=s) for s, acc in zip(SEEDS, (0.72, 0.74, 0.73))}
    below = against_reference(runs, 0.78, ACCURACY)
    assert below.verdict == WORSE and below.shift() == "-0.050 (-0.060 to -0.040)"
    assert against_reference(runs, 0.735, ACCURACY).verdict == UNDECIDED  # one seed above it


def test_validation_balanced_accuracy_is_measured_on_the_validation_split_it_came_from():
    """4,100 validation images drawn from the imbalanced set: 500 a class, 50 cats and 50 dogs; each class at its
    test recall, combined: wider than the test set's, and wider again on logit adjustment's ranking half."""
    run = trained("r", 0.80, cat=0.4, dog=0.55)
    support = validation_support(run)
    assert support["cat"] == support["dog"] == 50 and support["airplane"] == 500 and sum(support.values()) == 4100
    assert validation_support(run, half=True)["cat"] == 25
    whole, half = validation_half_width(run), validation_half_width(run, half=True)
    by_hand = 1.959964 * math.sqrt(sum(p * (1 - p) / n for p, n in (
        (0.4, 50), (0.55, 50), *[((10 * 0.8 - 0.95) / 8, 500)] * 8))) / 10
    assert whole == pytest.approx(by_hand, rel=0.15)
    assert half == pytest.approx(whole * math.sqrt(2), rel=0.15)
    augmented = trained("a", 0.80, model="augmented")
    augmented.params["val_images"] = "5000"  # the rebalanced set's split: every class alike
    assert set(validation_support(augmented).values()) == {500}
    kept = Figure("val", lambda r: 0.7, validation_half_width)
    assert mean_with([run], kept) == f"0.700 ±{whole:.3f}"


def test_runs_at_commits_that_left_the_training_code_alone_are_like_for_like():
    """A commit that changed only pages or tests changes nothing a run compares; one that changed a file the
    train stage imports does (git history: 0f8bf18 changed the train stage's dropout layer)."""
    from writeup.studies.code_version import same_training_code, train_code

    assert same_training_code("8db0f9c", "cb0b850")  # the runner and the README, not the train stage
    assert not same_training_code("0f8bf18", "0f8bf18~1")
    assert train_code("a + b") == "a + b" and train_code("not-a-commit") == "not-a-commit"
