"""`attnbench ui` checked as a person would see it: a finished 3-variant sweep, the MLflow UI in
headless Chromium (Debian `chromium` + `chromium-driver`, driven by Selenium), and the experiment,
the parent run, its three child runs and their `test/acc` values on screen.

A screenshot is saved as `<runs_dir>/ui_screenshot.png`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import all_runs, attnbench_cmd
from tests.e2e.servers import Started, free_port, missing, need_module, wait_http

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
VARIANTS = ("dot", "scaled", "additive")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver = need_module("selenium.webdriver", "pip install 'attnbench[e2e]'")
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        missing("Chromium and ChromeDriver", "apt-get install chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1800,1000",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()  # stops chromium and the chromedriver this fixture started


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - the SPA re-renders under our feet
            last = err
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} ({last})")


def test_ui_shows_sweep_parent_children_and_test_acc(cli, runs_dir: Path, tmp_path: Path,
                                                      browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    # A finished 3-variant sweep in the store.
    result = cli("sweep", f"attention={','.join(VARIANTS)}")
    assert result.exit_code == 0, result.output
    runs = all_runs(runs_dir)
    parent = next(r for r in runs if r.tags.get("attnbench.kind") == "sweep")
    children = {r.name: r for r in runs if r.tags.get("mlflow.parentRunId") == parent.run_id}
    assert len(children) == 3 and all(r.status == "FINISHED" for r in children.values())
    exp_id = parent.experiment_id

    # `attnbench ui` on it, as a user starts it.
    port = free_port()
    ui = Started([*attnbench_cmd(), "ui", "--port", str(port), "--runs-dir", str(runs_dir)],
                 tmp_path / "ui.log", cwd=tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", ui)
        wait_for("the URL line", lambda: f"http://127.0.0.1:{port}" in ui.text(), 30)

        browser.get(f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs?workflowType=machine_learning")
        body = lambda: browser.find_element(By.TAG_NAME, "body").text  # noqa: E731
        wait_for("the experiment's runs page", lambda: parent.name in body(), 90)
        assert "assoc_recall" in body()  # the experiment (task) name, in the breadcrumb
        for close in browser.find_elements(By.XPATH, "//button[@aria-label='Close']"):
            close.click()  # the assistant side panel, if open

        # Show the test/acc column, as a person would: Columns -> search -> tick it.
        browser.find_element(By.XPATH, "//button[normalize-space(.)='Columns']").click()
        search = wait_for("the column search box", lambda: browser.find_element(
            By.XPATH, "//input[@placeholder='Search columns']"))
        search.send_keys("test/acc")
        wait_for("the test/acc column entry", lambda: [
            e for e in browser.find_elements(By.XPATH, "//*[normalize-space(text())='test/acc']")
            if e.is_displayed()])[0].click()
        search.send_keys(Keys.ESCAPE)

        # Expand the sweep's parent run to show its jobs nested under it.
        parent_cell = wait_for("the parent row", lambda: browser.find_element(
            By.XPATH, f"//div[@role='gridcell' and .//a[normalize-space(.)='{parent.name}']]"))
        parent_cell.find_element(By.TAG_NAME, "button").click()
        for name in children:
            wait_for(f"child run {name}", lambda n=name: n in body(), 30)

        # Each child's test/acc, read from its row in the grid, matches the store.
        for name, run in children.items():
            row_index = browser.find_element(
                By.XPATH, f"//div[@role='row' and .//a[normalize-space(.)='{name}']]"
            ).get_attribute("row-index")
            cell = wait_for(f"{name}'s test/acc cell", lambda i=row_index: [
                c for c in browser.find_elements(
                    By.XPATH, f"//div[@role='row' and @row-index='{i}']"
                              "//div[@role='gridcell' and contains(@col-id, 'test/acc')]")
                if c.is_displayed() and c.text.strip()])[0]
            assert float(cell.text) == pytest.approx(run.metrics["test/acc"], abs=1e-3), name

        _widen_run_name_column(browser)
        shot = runs_dir / "ui_screenshot.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        keep = _keep_dir()
        if keep is not None:
            shutil.copy(shot, keep / "ui_screenshot.png")
    finally:
        ui.stop()
    assert "MLflow UI: http://127.0.0.1:" in ui.text()


def _widen_run_name_column(browser: Any) -> None:
    """Double-click the Run Name header's resize handle (AG Grid auto-size), so names are whole."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    handles = browser.find_elements(
        By.XPATH, "//div[contains(@class,'ag-header-cell') and contains(@col-id,'Run Name')]"
                  "//div[contains(@class,'ag-header-cell-resize')]")
    if handles:
        ActionChains(browser).double_click(handles[0]).perform()
        time.sleep(1)


def _keep_dir() -> Path | None:
    """ATTNBENCH_KEEP_SCREENSHOT=DIR also copies the screenshot there (to look at it later)."""
    import os

    value = os.environ.get("ATTNBENCH_KEEP_SCREENSHOT")
    if not value:
        return None
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path
