"""TRANSFER.md from a study's records: the deeper part continues the first, and its trials are checked."""
import argparse

import pytest

from scripts import transfer_study as ts
from writeup.transfer_page import markdown


def _row(step: str, val: float, **config) -> dict:
    config = {"flip_test": True, "fine_tune_blocks": 0, "fine_tune_learning_rate": 1e-4, "fine_tune_epochs": 3,
              **config}
    return {"step": step, "config": config, "val_accuracy_final": val - 0.01, "val_accuracy_flip_average": val,
            "val": val, "train_seconds": 60.0, "extra_pass_seconds": 0.0}


def _part(steps: list[dict], chosen: str, test: dict) -> dict:
    return {"steps": steps, "chosen": chosen, "test": test, "pass_seconds_per_image": 0.01, "load_average": 0.2,
            "cores": 2, "train_images": 900, "val_images": 100, "test_images": 500}


FIRST = _part([_row("study's head on frozen features", 0.80),
               _row("+ fine-tune the top 2 blocks, lr 0.0001, 3 epochs", 0.83, fine_tune_blocks=2)],
              "+ fine-tune the top 2 blocks, lr 0.0001, 3 epochs", {"floor": 0.79, "chosen": 0.8211})


def test_first_study_alone_names_its_chosen_recipe():
    page = markdown({**FIRST, "commit": "a" * 40}, "cmd", "a CPU", "a" * 40)
    assert "| + fine-tune the top 2 blocks, lr 0.0001, 3 epochs | 0.8200 | 0.8300 | +0.0300 | yes | 1.0 |" in page
    assert "the chosen recipe **0.8211**" in page
    assert '"fine_tune_blocks": 2' in page.split("**The chosen recipe:**")[1]
    assert "## Fine-tuning deeper" not in page


def _deeper(steps: list[dict], chosen: str | None, test: dict) -> dict:
    return {**_part(steps, chosen, test), "commit": "b" * 40, "machine": "another CPU", "first_chosen_val": 0.83}


def test_deeper_part_is_rendered_and_its_choice_becomes_the_recipe():
    deeper = _deeper([{**_row("+ fine-tune the top 5 blocks, lr 0.0001, 3 epochs", 0.825, fine_tune_blocks=5),
                       "val_before_fine_tune": 0.8101},
                      {**_row("+ fine-tune the top 8 blocks, lr 0.0001, 3 epochs", 0.861, fine_tune_blocks=8),
                       "val_before_fine_tune": 0.8102}],
                     "+ fine-tune the top 8 blocks, lr 0.0001, 3 epochs", {"chosen": 0.8543})
    page = markdown({**FIRST, "commit": "a" * 40, "deeper": deeper}, "cmd", "a CPU", "a" * 40)
    first, second = page.split("## Fine-tuning deeper")
    assert "the chosen recipe **0.8211**" in first
    assert "`cmd --deeper 5:0.0001:3,8:0.0001:3` (commit `bbbbbbbbbb`, another CPU)" in second
    assert "| + fine-tune the top 5 blocks, lr 0.0001, 3 epochs | 0.8101 | 0.8150 | 0.8250 | -0.0050 | no | 1.0 |" in second
    assert "| + fine-tune the top 8 blocks, lr 0.0001, 3 epochs | 0.8102 | 0.8510 | 0.8610 | +0.0310 | yes | 1.0 |" in second
    assert "the recipe chosen here **0.8543** (the recipe chosen above: 0.8211" in second
    assert '"fine_tune_blocks": 8' in second.split("**The chosen recipe:**")[1]


def test_deeper_part_without_a_better_trial_keeps_the_first_recipe_and_the_test_set_unused():
    deeper = _deeper([{**_row("+ fine-tune the top 8 blocks, lr 0.0001, 3 epochs", 0.829, fine_tune_blocks=8),
                       "val_before_fine_tune": 0.8102}], None, {})
    page = markdown({**FIRST, "commit": "a" * 40, "deeper": deeper}, "cmd", "a CPU", "a" * 40)
    assert "| -0.0010 | no |" in page and "the test set was not used again" in page
    assert '"fine_tune_blocks": 2' in page.split("**The chosen recipe:**")[1]


def test_deeper_trials_are_parsed_and_checked():
    assert ts._trials("5:1e-4:3,8:0.0001:2") == [(5, 1e-4, 3), (8, 1e-4, 2)]
    for bad in ("5:1e-4", "17:1e-4:3", "5:0:3", "five:1e-4:3"):
        with pytest.raises(argparse.ArgumentTypeError, match="--deeper"):
            ts._trials(bad)


def test_deeper_without_a_first_study_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ts.main(["--project", str(tmp_path), "--output", str(tmp_path / "T.md"), "--deeper", "5:1e-4:3"])
    assert "T.json is missing" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
