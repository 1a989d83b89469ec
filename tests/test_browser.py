"""The report and the dashboard in a real headless Chromium: plots drawn, no JavaScript error.

Screenshots go to ``test-artifacts/`` at the repository root. Without Chromium (Debian's
``chromium`` and ``chromium-driver``) or selenium these tests fail under CI=true and are
skipped elsewhere.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from .search_helpers import ROOT
from .study_fixture import get_json, running_dashboard, shared_tiny_report, shared_tiny_study

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("VMPO_TUNE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VMPO_TUNE_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def missing(reason: str):
    """Fail under CI (the browser is part of what CI installs), skip with the reason elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must have it (.ci/run installs chromium and chromium-driver)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    return shared_tiny_study(tmp_path_factory)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (pip install -e '.[dev]')")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            missing(f"{path} not found: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, done, timeout: float = 30):
    """Evaluate ``script`` until ``done(result)``; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = driver.execute_script(script)
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def severe_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver, name: str) -> Path:
    """A full-page screenshot (the window grows to the page's height, up to 16000 px)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height), 800), 16000))
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


PLOTS = """return Array.from(document.querySelectorAll('.js-plotly-plot')).map(
    el => ({n: el.data ? el.data.length : 0, svgs: el.querySelectorAll('svg.main-svg').length,
            title: el.layout && el.layout.title ? (el.layout.title.text || '') : ''}));"""


def test_report_plots_render_without_errors(browser, tiny_study):
    report = shared_tiny_report(tiny_study)
    assert report.proc.returncode == 0, report.proc.stderr
    browser.set_window_size(1400, 900)
    browser.get(report.html.resolve().as_uri())
    # history, parallel coordinates, slices, curves, wall time (importances and contour withheld: few trials)
    plots = wait_for(browser, PLOTS, lambda p: len(p) == 5 and all(x["svgs"] for x in p))
    assert len(plots) == 5, plots
    # nothing wider than a 1,400 px window: the page never scrolls sideways (wide tables scroll in their box)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert all(p["svgs"] >= 1 and p["n"] >= 1 for p in plots), plots
    curves = next(p for p in plots if p["title"] == "Learning curves")
    with_curve = [t for t in tiny_study.load().get_trials() if t.intermediate_values]
    assert curves["n"] == len(with_curve)  # one drawn trace per trial with evaluations
    shot = screenshot(browser, "report.png")
    assert severe_errors(browser) == [], f"JavaScript errors (screenshot {shot})"


def test_dashboard_page_renders_without_errors(browser, tiny_study, tmp_path):
    with running_dashboard(tiny_study, tmp_path / "optuna-dashboard.log") as server:
        (summary,) = get_json(f"{server.base}/api/studies")["study_summaries"]
        browser.get(f"{server.base}/dashboard/studies/{summary['study_id']}")
        plots = wait_for(browser, PLOTS, lambda p: len(p) >= 4 and all(x["svgs"] for x in p))
        # history, importances, timeline, intermediate values: each drawn with data
        assert len(plots) >= 4 and all(p["svgs"] >= 1 and p["n"] >= 1 for p in plots), plots
        page = browser.find_element("tag name", "body").text
        assert summary["study_name"] in page
        shot = screenshot(browser, "dashboard.png")
        assert severe_errors(browser) == [], f"JavaScript errors (screenshot {shot})"
