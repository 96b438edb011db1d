"""`make demo` and the README's walkthrough after it, as a new user runs them: the DAG as the quick-demo
experiment (the workspace untouched), one edited key as a second experiment, `make exps`, `dvc plots
diff`, and the two parent runs in MLflow's Compare page and chart view (a real `mlflow server`,
headless Chromium).

`UPDATE_SCREENSHOTS=1` rewrites the README's screenshots (docs/mlflow-compare.png and
docs/mlflow-charts.png) from what the browser test sees and asserts.
"""
from __future__ import annotations

import json
import os
import re
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from cifar10.schema import flatten_dict
from tests.conftest import REPO, default_params, make_repo, run, shrink_params
from tests.sourcedata import pack_tar, write_binary_release
from tests.test_pipeline import STAGES, ran
from tests.tinydata import make_images

pytestmark = pytest.mark.slow
PARENTS = ("quick-demo", "demo-sgd")
MODELS = ("baseline", "augmented", "frozen", "transfer")
CURVES = ("baseline", "augmented", "transfer")  # the stages' per-epoch curves: the frozen model's are transfer's first
HEADLINE = [f"{m}_test_{k}" for m in MODELS for k in ("accuracy", "macro_f1", "recall_cat", "recall_dog")]
SCREENSHOTS = REPO / "docs"


def recipe(target: str, **values: str) -> list[str]:
    """The shell commands of a Makefile target (after its install prerequisite), its variables filled in
    from `values`, else the Makefile's defaults (`NAME ?= value`)."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    defaults = dict(re.findall(r"^(\w+) \?= ?(.*)$", text, re.M))
    body = re.search(rf"^{target}: install\n((?:\t.*\n)+)", text, re.M).group(1)
    fill = lambda m: values.get(m.group(1), defaults.get(m.group(1), ""))  # noqa: E731
    return [re.sub(r"\$\((\w+)\)", fill, line.strip()) for line in body.splitlines()]


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    """The README's walkthrough on tiny data in the project's own MLflow store (mlflow.db), run once."""
    tmp = tmp_path_factory.mktemp("walkthrough")
    build = tmp / "build"
    write_binary_release(build, make_images(10, seed=21), make_images(4, seed=22))
    source = pack_tar(build / "cifar-10-batches-bin", tmp / "cifar-10-binary.tar.gz")  # a local copy, as offline
    params = shrink_params(default_params())
    params["transfer"].update(backbone="efficientnet_lite0", weights="imagenet")
    repo = make_repo(tmp / "repo", params)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        before = (repo / "params.yaml").read_bytes()
        demo = [run(["bash", "-c", command], repo) for command in recipe("demo", SOURCE=str(source))]
        untouched = (repo / "params.yaml").read_bytes() == before and not run(
            ["git", "status", "--porcelain", "params.yaml", "dvc.yaml"], repo).stdout
        shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
        run(["dvc", "exp", "apply", "quick-demo"], repo)
        second = run(["dvc", "exp", "run", "--name", "demo-sgd", "-S", "train.optimizer.name=sgd"], repo)
        exps = [run(["bash", "-c", command], repo) for command in recipe("exps")][-1].stdout
        metrics = run(["dvc", "metrics", "show"], repo).stdout
        plots = json.loads(run(["dvc", "plots", "diff", "quick-demo", "--json"], repo).stdout)["data"]
    return SimpleNamespace(repo=repo, demo_table=demo[-1].stdout, untouched=untouched, shown=shown,
                           ran=ran(second), exps=exps, metrics=metrics, plots=plots)


def parent_runs(repo) -> dict:
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cifar10-imbalance")
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id], "tags.`pipeline.parent` = 'true'")}


def test_the_demo_runs_the_dag_as_an_experiment_and_leaves_params_yaml_alone(walkthrough):
    assert walkthrough.untouched
    demo = [e for commit in walkthrough.shown for e in commit.get("experiments") or [] if e.get("name") == "quick-demo"]
    assert demo, "the results stay reachable as the quick-demo experiment"
    client = MlflowClient(f"sqlite:///{walkthrough.repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cifar10-imbalance")
    runs = client.search_runs([exp.experiment_id], "tags.dvc_exp_name = 'quick-demo'")
    assert {r.data.tags["stage"] for r in runs if "stage" in r.data.tags} == STAGES
    transfer = next(r for r in runs if r.data.tags.get("stage") == "transfer")
    assert transfer.data.tags["transfer_learning"] == "true" and transfer.data.tags["backbone"] == "EfficientNet-Lite0"


def test_one_edited_key_reruns_the_cnns_and_takes_the_transfer_model_from_the_cache(walkthrough):
    assert walkthrough.ran == {"train-baseline", "train-augmented", "evaluate@baseline", "evaluate@augmented", "compare"}


def test_each_parent_run_is_its_pipeline_state_cached_models_included(walkthrough):
    parents = parent_runs(walkthrough.repo)
    assert set(parents) == set(PARENTS)
    demo, sgd = (parents[name].data for name in PARENTS)
    for state in (demo, sgd):
        assert set(state.params) == set(flatten_dict(default_params())), "the whole params.yaml"
        assert set(state.metrics) == set(HEADLINE)
        assert state.tags["backbone"] == "efficientnet_lite0"
        assert {state.tags["precision.baseline"], state.tags["precision.augmented"]} <= {"float32", "mixed_bfloat16"}
    assert {k for k in demo.params if demo.params[k] != sgd.params[k]} == {"train.optimizer.name"}
    assert sgd.params["train.optimizer.name"] == "sgd"
    # demo-sgd did not retrain the transfer model: its parent has the cached model's figures.
    assert {k: v for k, v in sgd.metrics.items() if k.startswith("transfer")} == {
        k: v for k, v in demo.metrics.items() if k.startswith("transfer")}


def test_make_exps_shows_both_experiments_in_220_characters(walkthrough):
    lines = walkthrough.exps.splitlines()
    assert max(map(len, lines)) <= 220 and max(map(len, walkthrough.metrics.splitlines())) <= 220
    assert max(map(len, walkthrough.demo_table.splitlines())) <= 220
    header = next(line for line in lines if "Experiment" in line).split()
    metrics = [f"{m}.{k}" for m in ("base", "aug", "frz", "xfer") for k in ("acc", "f1", "cat", "dog")]
    assert header == ["Experiment", *metrics, "train.optimizer.name"], "name, the param that differs, the figures"
    rows = {name: next(line for line in lines if f"[{name}]" in line).split() for name in PARENTS}
    assert rows["quick-demo"][-1] == "adam" and rows["demo-sgd"][-1] == "sgd"


def test_plots_diff_draws_both_experiments_curves(walkthrough):
    for title in ("Accuracy per epoch", "Loss per epoch"):
        (vega,) = [p for p in walkthrough.plots[title] if p["type"] == "vega"]
        rows = vega["content"]["data"]["values"]
        assert {r["rev"] for r in rows} == {"workspace", "quick-demo"}
        assert {r["filename::field"].split("/")[0] for r in rows} == set(CURVES)  # each training's curves


def close_assistant(driver, wait) -> None:
    """Close the MLflow Assistant side panel, which a fresh browser profile opens beside the runs table."""
    from selenium.webdriver.common.by import By

    wait.until(lambda d: d.find_elements(By.XPATH, "//a/span[text()='quick-demo']"))
    for button in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
        button.click()


@pytest.mark.integration
@pytest.mark.browser
def test_the_compare_page_and_chart_view_show_the_two_parent_runs(walkthrough, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from cifar10.tracking.store import runs_url
    from tests.browser import chromium, require_browser
    from tests.servers import mlflow_server

    require_browser()
    keep = os.environ.get("UPDATE_SCREENSHOTS") == "1"
    with mlflow_server(f"sqlite:///{walkthrough.repo / 'mlflow.db'}", tmp_path / "artifacts") as url, \
            chromium() as driver:
        experiment = MlflowClient(url).get_experiment_by_name("cifar10-imbalance").experiment_id
        wait = WebDriverWait(driver, 60)
        driver.get(runs_url(url, experiment))
        close_assistant(driver, wait)
        # Select the two parent runs in the runs table, as they are (collapsed), and press Compare.
        for name in PARENTS:
            link = wait.until(ec.element_to_be_clickable((By.XPATH, f"//a/span[text()='{name}']")))
            link.find_element(By.XPATH, "./ancestor::div[@role='row']").find_element(
                By.CSS_SELECTOR, "input.ag-checkbox-input").click()
        wait.until(lambda d: [b for b in d.find_elements(By.TAG_NAME, "button") if b.text == "Compare"])[0].click()
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Parameters - Show diff only']"))
                   ).click()

        def section_rows(title: str) -> list[list[str]]:
            rows = driver.find_elements(By.XPATH, f"//button[@aria-label='{title} - Show diff only']"
                                                  "/ancestor::div[contains(@class, 'collapse-content-box')]//tr")
            return [[c.text for c in r.find_elements(By.XPATH, "./th|./td")] for r in rows]

        wait.until(lambda d: len(section_rows("Parameters")) == 1)
        names = [c.text for c in driver.find_element(By.XPATH, "//tr[contains(., 'Run Name:')]").find_elements(
            By.XPATH, "./th|./td")][1:]
        ((key, *values),) = section_rows("Parameters")  # the diff: the one edited key
        assert sorted(names) == sorted(PARENTS) and key == "train.optimizer.name"
        assert dict(zip(names, values)) == {"quick-demo": "adam", "demo-sgd": "sgd"}
        shown = driver.find_element(By.XPATH, "//button[@aria-label='Metrics - Show diff only']/ancestor::div["
                                              "contains(@class, 'collapse-content-box')]").get_attribute("textContent")
        assert all(metric in shown for metric in HEADLINE)
        if keep:
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'})",
                                  driver.find_element(By.XPATH, "//*[text()='Run details']"))
            SCREENSHOTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(SCREENSHOTS / "mlflow-compare.png"))

        # The chart view of the runs table: a chart per headline metric of the (collapsed) parents.
        driver.get(runs_url(url, experiment))
        wait.until(ec.presence_of_element_located((By.XPATH, "//a/span[text()='quick-demo']")))
        view = driver.find_element(By.CSS_SELECTOR, "input[name='runs-view-mode'][value='CHART']")
        view.find_element(By.XPATH, "./ancestor::label[1]").click()
        count = wait.until(ec.presence_of_element_located(
            (By.XPATH, "//div[text()='Model metrics']/following-sibling::div[1]")))
        assert count.text == f"({len(HEADLINE)})"
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"))
        titles = [h.get_attribute("title") for h in driver.find_elements(By.CSS_SELECTOR, "h4[title]")]
        assert titles and set(titles) <= set(HEADLINE), titles
        listed = {a.text for a in driver.find_elements(By.CSS_SELECTOR, "a[href*='/runs/'] span")}
        assert listed == set(PARENTS), "the two parent runs, not expanded"
        if keep:
            driver.save_screenshot(str(SCREENSHOTS / "mlflow-charts.png"))
