"""The MLflow UI as a user sees it: a real `mlflow server` on 127.0.0.1 and headless Chromium.

The URL the README gives opens the experiment's runs table (not MLflow 3's GenAI overview), and the
stage runs of one pipeline execution sit under their parent run.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import pytest

from cifar10.schema import Params
from cifar10.tracking.runs import stage_run
from cifar10.tracking.store import runs_url
from tests.browser import CHROMIUM, FLAGS, chromium, require_browser
from tests.servers import mlflow_server

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]
STAGES = ("download", "imbalance-subsample", "train-baseline")


@pytest.fixture(scope="module")
def browser_tools():
    require_browser()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, mlflow_template, browser_tools):
    """A tracking server holding the runs of one pipeline execution, made by the stages' own run code."""
    tmp = tmp_path_factory.mktemp("ui")
    shutil.copy(mlflow_template, tmp / "server.db")
    with mlflow_server(f"sqlite:///{tmp / 'server.db'}", tmp / "artifacts") as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", url)
        mp.setenv("PIPELINE_RUN_GROUP", "ui-test")
        mp.setenv("DVC_EXP_NAME", "ui-check")
        for stage in STAGES:
            with stage_run(stage, Params(), ["base"]) as tracker:
                tracker.log_metrics({"loss": 1.0}, step=1)
        yield url, tracker.experiment_id


def test_the_readme_url_opens_the_runs_table_not_the_genai_overview(pipeline):
    url, experiment = pipeline
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                              "--dump-dom", runs_url(url, experiment)], capture_output=True, text=True, timeout=180).stdout
    titles = re.findall(r"<title>([^<]*)</title>", dom)
    assert titles and titles[0] == f"Runs - Experiment {experiment} - MLflow", titles
    assert ">ui-check</span>" in dom  # the parent run, named after the DVC experiment
    assert "Model registry" in dom and "Evaluation runs" not in dom  # the model-training side bar


def test_stage_runs_sit_under_their_parent(pipeline):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, experiment = pipeline
    with chromium() as driver:
        driver.get(runs_url(url, experiment))
        wait = WebDriverWait(driver, 60)
        names = "div[col-id='attributes.`Run Name`'] a"
        parent = wait.until(ec.presence_of_element_located((By.XPATH, "//a/span[text()='ui-check']")))
        row = parent.find_element(By.XPATH, "./ancestor::div[@role='row']")
        assert [a.text for a in driver.find_elements(By.CSS_SELECTOR, names)] == ["ui-check"]  # collapsed
        row.find_element(By.CSS_SELECTOR, "div[col-id='attributes.`Run Name`'] button").click()
        for stage in STAGES:
            wait.until(ec.presence_of_element_located((By.XPATH, f"//a/span[text()='{stage}']")))
        shown = [a.text for a in driver.find_elements(By.CSS_SELECTOR, names)]
        assert shown[0] == "ui-check" and sorted(shown[1:]) == sorted(STAGES)
        left = driver.execute_script(f'return [...document.querySelectorAll("{names}")]'
                                     ".map(a => a.getBoundingClientRect().left)")
        assert all(x > left[0] for x in left[1:]), "stage runs are indented under their parent"
