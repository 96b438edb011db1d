"""`dvc plots diff` draws its charts without a network: .dvc/config gives DVC the page template
vendor/vega/dvc-plots.html, which carries Vega, Vega-Lite and vega-embed inlined.

A temporary git + DVC repository holds the project's .dvc/config, vendor/vega/, its plots section of
dvc.yaml and the stages that write the per-epoch curves it reads; two experiments of those curves,
written by the train stages' own writer, are drawn by `make plots` (the real `dvc plots diff`) and
rendered by headless Chromium with its network cut. DVC's stock page (the libraries from a CDN) is
the control: the same browser draws none of it.
"""
from __future__ import annotations

import configparser
import contextlib
import hashlib
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cifar10.paths import history_csv
from scripts.vendor_vega import PACKAGES, PAGE, page
from tests.browser import chromium, require_browser
from tests.conftest import REPO, run
from tests.test_demo import CURVES, recipe

EPOCHS = {"curves-a": 5, "curves-b": 3}  # two experiments, told apart by their length too
# Per chart: each line mark's label and path, and the page's versions, scripts and requests.
DRAWN = """return {
  charts: [...document.querySelectorAll('svg.marks')].map(svg => ({
    title: (svg.querySelector('.role-title-text text') || {}).textContent,
    lines: [...svg.querySelectorAll('path[aria-roledescription="line mark"]')].map(
      p => [p.getAttribute('aria-label'), p.getAttribute('d'), p.getAttribute('stroke')])})),
  versions: typeof vega === 'undefined' ? null : [vega.version, vegaLite.version, vegaEmbed.version],
  requests: performance.getEntriesByType('resource').map(e => e.name)}"""


def per_epoch_plots(dvc_yaml: dict) -> dict[str, dict[str, list[str]]]:
    """Title -> {file: fields} of the plots section's definitions drawn against the epoch."""
    return {title: spec["y"] for item in dvc_yaml["plots"] if isinstance(item, dict)
            for title, spec in item.items() if spec.get("x") == "epoch"}


def curves(epochs: int, lift: float, model: int) -> list[dict]:
    """Rows of a history CSV: rising accuracy and falling loss, one row an epoch."""
    return [{"epoch": e, "loss": 2.0 - 0.2 * e - lift, "accuracy": 0.1 * e + lift + 0.02 * model,
             "val_loss": 2.1 - 0.2 * e - lift, "val_accuracy": 0.08 * e + lift, "learning_rate": 1e-3,
             "balanced_accuracy": 0.09 * e + lift, "val_balanced_accuracy": 0.07 * e + lift}
            for e in range(1, epochs + 1)]


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.sources.append(dict(attrs).get("src"))


def script_sources(html: str) -> list[str | None]:
    """The src of every <script> of a page (None for an inline one)."""
    parser = _Scripts()
    parser.feed(html)
    return parser.sources


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The page `make plots PLOTS_ARGS="diff curves-a curves-b"` (plain `dvc plots diff curves-a curves-b`)
    writes, and DVC's stock page of the same (before .dvc/config names the template)."""
    from cifar10.training.history import write_history

    repo = tmp_path_factory.mktemp("plots") / "repo"
    repo.mkdir()
    project = yaml.safe_load((REPO / "dvc.yaml").read_text())
    plotted = {Path(f) for files in per_epoch_plots(project).values() for f in files}
    assert plotted == {history_csv(m) for m in CURVES}, "the per-epoch plots read the train stages' curves"
    # The stages that write the curves, with those outputs only (`dvc exp save` records, never runs, them).
    stages = {name: {"cmd": stage["cmd"], "outs": outs} for name, stage in project["stages"].items()
              if (outs := [o for o in stage.get("outs", []) if Path(o) in plotted])}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages, "plots": project["plots"]}, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    shutil.copytree(REPO / PAGE.parent, repo / PAGE.parent)
    run(git + ["add", "-A"], repo)
    run(git + ["commit", "-q", "-m", "init"], repo)
    for lift, (name, epochs) in enumerate(EPOCHS.items()):
        for i, model in enumerate(CURVES):
            write_history(repo / history_csv(model), curves(epochs, 0.3 * lift, i))
        run(["dvc", "exp", "save", "--name", name], repo)

    run(["dvc", "plots", "diff", *EPOCHS, "--out", "stock_plots"], repo)
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    make_plots = recipe("plots", PLOTS_ARGS=f"diff {' '.join(EPOCHS)}")
    shown = [run(["bash", "-c", command], repo) for command in make_plots]
    return SimpleNamespace(repo=repo, project=project, shown=shown[-1].stdout,
                           offline=repo / "dvc_plots" / "index.html", stock=repo / "stock_plots" / "index.html")


@pytest.fixture(scope="module")
def browser_tools():
    require_browser()


@pytest.fixture(scope="module")
def rendered(browser_tools, pages):
    """What headless Chromium, offline, draws of each page: charts, versions, requests, errors."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    drawn = {}
    with chromium() as driver:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        for key in ("offline", "stock"):
            driver.get(getattr(pages, key).as_uri())
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
            if key == "offline":  # vega-embed draws asynchronously, each chart once its view has run
                titles = set(per_epoch_plots(pages.project))
                with contextlib.suppress(TimeoutException):  # the test then says what is missing
                    wait.until(lambda d: titles <= {c["title"] for c in d.execute_script(DRAWN)["charts"]
                                                    if c["lines"]})
            drawn[key] = SimpleNamespace(**driver.execute_script(DRAWN), severe=[
                e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"])
    return drawn


def _label(aria: str) -> dict[str, str]:
    """Vega's aria-label of a mark, 'epoch: 1; y: 0.1; rev: curves-a; ...', as a dict."""
    return dict(part.split(": ", 1) for part in aria.split("; "))


@pytest.mark.slow
def test_the_page_dvc_writes_loads_no_script_from_the_network(pages):
    assert pages.shown.strip() == pages.offline.as_uri(), "`dvc plots diff` writes dvc_plots/index.html"
    html = pages.offline.read_text()
    online = re.compile(r"^\s*(https?:)?//", re.I)
    assert not [s for s in script_sources(html) if s and online.match(s)]
    assert set(script_sources(html)) == {None}, "every script inline: the page works from any folder"
    # The check tells the pages apart: DVC's stock page takes the three libraries from a CDN.
    assert len([s for s in script_sources(pages.stock.read_text()) if s and online.match(s)]) == 3


@pytest.mark.slow
@pytest.mark.browser
def test_both_experiments_curves_are_drawn_offline(pages, rendered):
    page_drawn = rendered["offline"]
    assert page_drawn.versions == list(PACKAGES.values())
    assert page_drawn.requests == [], "the page fetched nothing"
    assert page_drawn.severe == []
    charts = {c["title"]: c["lines"] for c in page_drawn.charts if c["title"]}
    for title, files in per_epoch_plots(pages.project).items():
        root = os.path.commonpath(list(files))
        series = {f"{Path(f).relative_to(root).as_posix()}::{field}" for f, fields in files.items() for field in fields}
        assert title in charts, f"{title!r} was not drawn; drawn: {sorted(charts)}"
        points, colours = {}, {}
        for aria, path, stroke in charts[title]:
            label = _label(aria)
            key = (label["rev"], label["filename::field"])
            points.setdefault(key, set()).add(len(re.findall(r"[ML]", path)))
            colours.setdefault(label["rev"], set()).add(stroke)
        # Every curve of both experiments, each line through one point an epoch of its experiment.
        assert points == {(rev, s): {epochs} for rev, epochs in EPOCHS.items() for s in series}, title
        assert len(colours) == 2 and all(len(c) == 1 for c in colours.values())
        assert colours["curves-a"] != colours["curves-b"], "each experiment in its own colour"


@pytest.mark.slow
@pytest.mark.browser
def test_dvcs_stock_page_draws_nothing_in_the_same_offline_browser(rendered):
    stock = rendered["stock"]
    assert stock.versions is None and not stock.charts
    assert stock.requests and all(r.startswith("https://cdn.jsdelivr.net/") for r in stock.requests)
    assert any("ERR_INTERNET_DISCONNECTED" in message for message in stock.severe)


def test_the_template_is_the_vendored_builds_inlined_and_dvcs_html_template():
    committed = (REPO / PAGE).read_text(encoding="utf-8")
    assert committed == page(REPO / PAGE.parent), "run `python -m scripts.vendor_vega --page`"
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    assert (REPO / ".dvc" / config["plots"]["html_template"]).resolve() == (REPO / PAGE).resolve()
    readme = (REPO / PAGE.parent / "README.md").read_text()
    for name, version in PACKAGES.items():
        assert f"| {name} | {version} |" in readme
        for file in (f"{name}.min.js", f"{name}.LICENSE"):
            digest = hashlib.sha256((REPO / PAGE.parent / file).read_bytes()).hexdigest()
            assert f"{digest}  {file}" in readme, f"{file} is not the refreshed one"
