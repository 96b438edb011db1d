"""The plan's capacity part: a screen of training recipes (training stages only, seed 42, at most 8 of at most 40
epochs), a confirmation that runs under the screen's winner once the records name it, every run within the hour
on a CPU with bfloat16 units, and its page section, planned or filled in from records."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.expect import with_overrides
from benchmarks.workload import image_counts
from tests.conftest import committed_params, run
from tests.studyruns import trained
from writeup.studies import capacity_plan as cp
from writeup.studies import record_file
from writeup.studies.capacity import capacity_section
from writeup.studies.plan import REMEDIES, SEEDS, experiments

ROOT = Path(__file__).resolve().parents[1]
BEST = "sgd one-cycle, less dropout"


def _capacity() -> dict:
    return {e.name: e for e in experiments() if e.part == "capacity"}


def test_the_screen_is_at_most_8_recipes_of_at_most_40_epochs_training_only_on_the_balanced_set():
    planned = _capacity()
    screen = [e for e in planned.values() if e.name.startswith("capacity-screen-")]
    assert 0 < len(screen) == len(cp.SCREEN) <= 8
    for e in screen:
        params = with_overrides(committed_params(), list(e.overrides))  # as `dvc exp run -S` sets them, validated
        assert e.target == "train-baseline" and not e.scored and e.models == ("baseline",)
        assert params.train.epochs <= 40 and params.base.seed == 42 and params.imbalance.keep_fraction == 1.0
        assert params.train.validation_from == "originals"
        assert params.train.early_stopping.monitor == "val_balanced_accuracy"
        assert params.train.early_stopping.patience >= params.train.epochs  # every schedule runs to its end
        assert params.train.model.filters == [32, 64, 128] and params.train.model.dense_units == [128]  # the CNN
    recipes = {e.overrides for e in screen}
    assert len(recipes) == len(screen)  # no two alike
    # The confirmation: under the winner, 3 seeds of each arm, and the study's side of each comparison.
    arms = {e.labels["setup"] for e in planned.values() if e.waits_for}
    assert arms == {"balanced", "none", "offline augmentation", "logit adjustment", "combination"}
    assert len([e for e in planned.values() if e.waits_for]) == 5 * len(SEEDS)
    study = [e for e in planned.values() if e.name.startswith("capacity-study-")]
    assert [e.labels["setup"] for e in study] == ["study's recipe: none", "study's recipe: offline augmentation"] * 3
    assert planned["capacity-logit-adjustment-seed43"].training_of == "capacity-none-seed43"


def _run(name: str, val: float, accuracy: float = 0.7):
    """A finished training run whose kept weights (epoch 2 of 3) have validation balanced accuracy `val`."""
    base = trained(name, accuracy, val=(0.5, val, 0.5))
    return replace(base, metrics={**base.metrics, "train_seconds": 1200.0},
                   params={**base.params, "precision": "mixed_bfloat16"})


def _screen_records(best: str = BEST, missing: int = 0) -> dict:
    """Screen records, `best` first on validation balanced accuracy."""
    out = {}
    for i, config in enumerate(list(cp.SCREEN)[:len(cp.SCREEN) - missing]):
        out[cp.screen_name(config)] = {"baseline": _run(cp.screen_name(config), 0.8 if config == best else 0.7 - 0.01 * i)}
    return out


def _remedy_records(best: str) -> dict:
    """The remedies part on every seed, `best` first on validation among the combination's candidates."""
    out = {}
    for e in experiments():
        if e.part == "remedies":
            val = 0.75 if e.labels["setup"] == best else 0.6
            out[e.name] = {e.models[0]: _run(e.name, val)}
    return out


def test_every_capacity_run_fits_the_hour_on_a_cpu_with_bfloat16_units():
    for best in cp.combination_candidates():  # whichever combination the remedies part chooses
        records = _screen_records(best="sgd one-cycle, all three") | _remedy_records(best)
        for e in _capacity().values():
            e = cp.resolve(e, records)
            assert not e.waits_for, e.name
            params = with_overrides(committed_params(), list(e.overrides))
            for model in e.models:
                n_train, n_val = image_counts(params)[f"train-{model}"]
                seconds = params.train.epochs * (n_train / cp.TRAIN_IMAGES_PER_S + n_val / cp.VALIDATION_IMAGES_PER_S)
                assert n_train <= 45_000 and seconds * cp.ALLOWANCE / 60 <= cp.BUDGET_MINUTES, (e.name, seconds)
    # The docstring's arithmetic: 40 x (45,000 / 1,600 + 5,000 / 7,400) s and 60 x (45,000 / 1,600 + 4,100 / 7,400) s
    assert 40 * (45_000 / 1_600 + 5_000 / 7_400) / 60 == pytest.approx(19.2, abs=0.05)
    assert 60 * (45_000 / 1_600 + 4_100 / 7_400) / 60 == pytest.approx(28.7, abs=0.05)
    assert "19.2 minutes" in cp.__doc__ and "28.7 minutes" in cp.__doc__


def test_the_combination_is_the_remedies_parts_first_on_validation_with_logit_adjustment():
    records = _screen_records()
    assert cp.chosen_combination(records) is None  # the remedies part has not run
    assert cp.combination_candidates() == [n for n in REMEDIES if n not in (
        "none", "offline augmentation", "logit adjustment", "online augmentation")]
    names = {e.name: e for e in experiments()}
    for best, model, twin in (("class weights", "baseline", ""),
                              ("offline + online + logit adjustment", "augmented", "capacity-offline-augmentation-seed44")):
        resolved = cp.resolve(names["capacity-combination-seed44"], records | _remedy_records(best))
        assert resolved.target == f"evaluate@{model}" and resolved.training_of == twin
        assert resolved.labels == {"setup": "combination", "seed": 44, "recipe": BEST, "remedy": best}
        assert resolved.overrides[:len(cp.recipe(BEST)) + 2] == (f"evaluate.models=[{model}]", *cp.recipe(BEST),
                                                                 "base.seed=44")
        extra = resolved.overrides[len(cp.recipe(BEST)) + 2:]
        assert extra[-1] == "train.logit_adjustment=validation" and extra.count(extra[-1]) == 1
        assert not any("translate" in o for o in resolved.overrides)  # the remedy's online augmentation gives way
        assert resolved.tags()["capacity_recipe"] == BEST
    # A seed missing from the remedies part: the ranking is not final, so the combination waits.
    partial = _remedy_records("mixup")
    partial.pop("remedy-focal-loss-seed43")
    waiting = cp.resolve(names["capacity-combination-seed42"], records | partial)
    assert waiting.waits_for.startswith("the remedies part's ranking on validation (all 3 seeds of class weights")


def _dry_run(project: Path, records: dict) -> list[str]:
    record_file.save(records, project / "STUDIES.json")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "scripts.studies", "run", "--only", "capacity", "--dry-run"],
                         cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.startswith("[")]


def test_a_dry_run_shows_the_confirmation_waiting_for_the_screen_then_under_its_winner(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    n = len(_capacity())

    lines = _dry_run(project, {})
    assert lines[0].startswith(f"[1/{n}] capacity-screen-sgd-one-cycle: dvc exp run --temp --force --name "
                               "capacity-screen-sgd-one-cycle -S imbalance.keep_fraction=1.0 ")
    assert lines[0].endswith(" -S base.seed=42 train-baseline")
    assert f"[9/{n}] capacity-balanced-seed42: waits for the capacity screen's winner (0 of 8 screen runs recorded)" in lines
    study = next(line for line in lines if "capacity-study-none-seed43:" in line)
    assert "-S train.epochs=60 -S base.seed=43 evaluate@baseline" in study  # the study's side does not wait

    lines = _dry_run(project, _screen_records(missing=1))
    assert f"[8/{n}] capacity-screen-sgd-one-cycle-all-three: dvc exp run" in lines[7]  # the one still to run
    assert lines[0] == f"[1/{n}] capacity-screen-sgd-one-cycle: recorded in STUDIES.json (run on CPU A), skipped"
    assert f"[{n - 5}/{n}] capacity-none-seed44: waits for the capacity screen's winner (7 of 8 screen runs " \
           "recorded)" in lines

    lines = _dry_run(project, _screen_records())
    sets = " ".join(f"-S {o}" for o in cp.recipe(BEST))
    none = next(line for line in lines if " capacity-none-seed43:" in line)
    assert none.endswith(f"--name capacity-none-seed43 -S evaluate.models=[baseline] {sets} -S base.seed=43 "
                         "evaluate@baseline")
    balanced = next(line for line in lines if " capacity-balanced-seed44:" in line)
    assert f"{sets} -S base.seed=44 -S imbalance.keep_fraction=1.0 evaluate@baseline" in balanced
    adjusted = next(line for line in lines if " capacity-logit-adjustment-seed42:" in line)
    assert adjusted.endswith("-S train.logit_adjustment=validation evaluate@baseline (adopts the training of "
                             "capacity-none-seed42)")
    offline = next(line for line in lines if " capacity-offline-augmentation-seed42:" in line)
    assert offline.endswith(f"-S evaluate.models=[augmented] {sets} -S base.seed=42 evaluate@augmented")
    combination = next(line for line in lines if " capacity-combination-seed42:" in line)
    assert combination.endswith("waits for the remedies part's ranking on validation (all 3 seeds of class weights, "
                                "oversampling, focal loss, mixup, offline + online + logit adjustment)")


@pytest.mark.slow
def test_a_screen_run_trains_only_and_its_unscored_record_is_kept(pipeline_repo, monkeypatch):
    """The first screen recipe through the runner and real DVC, cut to 2 epochs: train-baseline only, no test
    image scored, its training run (without test figures) in STUDIES.json, where the confirmation reads it."""
    from mlflow.tracking import MlflowClient

    repo, name = pipeline_repo, cp.screen_name(list(cp.SCREEN)[0])
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the project's own store, as users run it
    out = run([sys.executable, "-m", "scripts.studies", "run", "--name", name, "-S", "train.epochs=2",
               "-S", "train.batch_size=16"], repo, {"PYTHONPATH": str(repo)})
    assert f"{name}: done" in out.stdout
    saved = json.loads((repo / "STUDIES.json").read_text())["experiments"][name]["baseline"]
    assert saved["params"]["train.optimizer.schedule"] == "one_cycle" and saved["params"]["train.epochs"] == "2"
    assert len(saved["curves"]["val_balanced_accuracy"]) == 2
    assert not any(k.startswith("test_") for k in saved["metrics"])  # never scored
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cifar10-imbalance").experiment_id
    stages = {r.data.tags.get("stage") for r in client.search_runs([exp], f"tags.dvc_exp_name = '{name}'")}
    assert "train-baseline" in stages and not any(s and s.startswith("evaluate") for s in stages)
    assert cp.screen_scores(record_file.load(repo / "STUDIES.json")) == {list(cp.SCREEN)[0]: pytest.approx(
        max(saved["curves"]["val_balanced_accuracy"]))}
    again = run([sys.executable, "-m", "scripts.studies", "run", "--name", name, "--dry-run"], repo,
                {"PYTHONPATH": str(repo)})
    assert f"{name}: finished earlier, skipped" in again.stdout


def _confirmation_records(recipe_of_none: str = BEST) -> dict:
    """Every capacity run on every seed: the chosen recipe lifts everything above the study's."""
    records = _screen_records() | _remedy_records("class weights")
    figures = {"balanced": (0.91, 0.91, 0.90, 0.88), "none": (0.85, 0.84, 0.60, 0.62),
               "offline augmentation": (0.86, 0.85, 0.70, 0.72), "logit adjustment": (0.87, 0.86, 0.72, 0.74),
               "combination": (0.88, 0.86, 0.71, 0.70), "study's recipe: none": (0.75, 0.72, 0.30, 0.40),
               "study's recipe: offline augmentation": (0.76, 0.74, 0.45, 0.50)}
    for e in _capacity().values():
        if e.name.startswith("capacity-screen-"):
            continue
        e = cp.resolve(e, records)
        acc, f1, cat, dog = figures[e.labels["setup"]]
        bump = 0.01 * (e.labels["seed"] - 43)
        base = _run(e.name, acc - 0.05, acc + bump)
        recipe = recipe_of_none if e.labels["setup"] == "none" else e.labels["recipe"]
        records[e.name] = {e.models[0]: replace(base, model=e.models[0], tags={**base.tags, "capacity_recipe": recipe},
                                                metrics={**base.metrics, "test_macro_f1": f1 + bump,
                                                         "test_recall_cat": cat, "test_recall_dog": dog})}
    return records


def test_the_section_says_what_is_planned_and_that_it_waits_until_records_exist():
    section = "\n".join(capacity_section({}))
    assert section.startswith("## Capacity: the study's CNN trained to its capacity")
    assert (f"**Planned, waiting**: none of the {len(_capacity())} runs has finished. They wait for a CPU with "
            "bfloat16 units") in section
    assert section.count("| waits | | | | | |") == len(cp.SCREEN)
    assert "0 of 8 recipes have finished: the confirmation waits for the rest." in section
    assert "| balanced | waits | 0 | – |" in section and "| none | study's | 0 | – |" in section
    assert "Nothing to set against them yet" in section and "goal reached" not in section


def test_the_section_ranks_the_screen_and_sets_the_confirmation_against_the_study_and_the_goals():
    section = "\n".join(capacity_section(_confirmation_records()))
    screen = section.split("### The screen")[1].split("###")[0]
    rows = [line for line in screen.splitlines() if line.startswith("| ") and not line.startswith(("| recipe", "| ---"))]
    assert rows[0].startswith(f"| **{BEST}** | `optimizer.name=sgd` ")
    assert rows[0].endswith("| 0.8000 | 3 (2) | mixed_bfloat16 | 20.0 | 500 | CPU A |")
    assert [row.split(" | ")[0] for row in rows[1:3]] == ["| sgd one-cycle", "| sgd warm-up cosine"]  # 0.70, 0.69
    assert f"Chosen on validation: **{BEST}** (0.8000), the recipe of every run below." in screen
    table = section.split("### Over seeds")[1]
    assert "The combination is the remedies part's first on validation among its other remedies: class weights." in table
    assert (f"| balanced | {BEST} | 3 | 0.860 (0.860 to 0.860) | 0.910 (0.900 to 0.920) | 0.910 (0.900 to 0.920) | "
            "0.900 (0.900 to 0.900) | 0.880 (0.880 to 0.880) |") in table
    assert "| combination (class weights, with logit adjustment) | " in table
    assert "| offline augmentation | study's | 3 | " in table
    # Paired by seed, like for like, judged by the page's rule: macro F1 has no interval without a confusion matrix.
    assert ("- none: test accuracy +0.100 (+0.100 to +0.100): better; macro F1 +0.120 (+0.120 to +0.120): no verdict "
            "(no interval); cat recall +0.300 (+0.300 to +0.300): better; dog recall +0.220 (+0.220 to +0.220): "
            "better.") in table
    goals = section.split("### Against the goals")[1]
    assert "- The balanced set under the chosen recipe: test accuracy 0.910 (3 of 3 seeds): goal (>= 0.90) reached." in goals
    assert "- none under the chosen recipe: macro F1 0.840, cat recall 0.600, dog recall 0.620 (3 of 3 seeds): " \
           "macro F1 0.010 short; cat recall 0.100 short; dog recall 0.080 short." in goals
    assert "- logit adjustment under the chosen recipe: macro F1 0.860, cat recall 0.720, dog recall 0.740 (3 of 3 " \
           "seeds): goal reached." in goals
    assert "another recipe" not in section


def test_a_confirmation_run_under_an_earlier_choice_is_named_not_counted_silently(tmp_path):
    from writeup.studies.report import studies_markdown

    records = _confirmation_records(recipe_of_none="adamw one-cycle")
    section = "\n".join(capacity_section(records))
    assert ("Ran under another recipe than the chosen one, so not its runs: `capacity-none-seed42` (adamw one-cycle), "
            "`capacity-none-seed43` (adamw one-cycle), `capacity-none-seed44` (adamw one-cycle).") in section
    page = studies_markdown(records, "test", tmp_path)
    assert page.index("## Beyond the study") < page.index("## Capacity")
    todo = page.split("**Still to run**")[1].split("\n")[0]
    assert "capacity-" not in todo  # every capacity run recorded, the combination under the model it trained
