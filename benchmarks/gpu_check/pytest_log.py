"""A pytest plugin that appends one JSON line per test outcome to ``$GPU_CHECK_TESTLOG``.

Loaded by the kit's test stage (``python -m pytest -p benchmarks.gpu_check.pytest_log ...``).
Each line is written and flushed as the test ends, so a run stopped at its time budget still
leaves every outcome it reached. Under pytest-xdist only the controller writes (the workers'
reports reach it too).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

ENV = "GPU_CHECK_TESTLOG"
_state: dict[str, Any] = {}


def _write(record: dict[str, Any]) -> None:
    path = _state.get("path")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def reason(report: pytest.TestReport) -> str:
    """One line saying why a test failed or was skipped."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: reason")
        text = str(longrepr[2])
        text = text.removeprefix("Skipped: ")
    else:
        crash = getattr(longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(longrepr or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "")[:300]


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller writes
        return
    _state["path"] = os.environ.get(ENV)


def pytest_collection_finish(session: pytest.Session) -> None:
    _write({"event": "collected", "n": len(session.items)})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    if "xdist_n" not in _state:  # every worker collects the same list
        _state["xdist_n"] = len(ids)
        _write({"event": "collected", "n": len(ids)})


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _write({"event": "collect_error", "test": report.nodeid, "reason": reason(report)})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """setup/teardown failures are errors; the call phase gives passed/failed; a skip can come
    from setup (a skip mark) or the call (pytest.skip)."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = report.outcome
        if report.when == "setup" and report.failed:
            outcome = "error"
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
    elif report.when == "teardown" and report.failed:
        outcome = "error"
    else:
        return
    _write(
        {
            "event": "test",
            "test": report.nodeid,
            "outcome": outcome,
            "duration_s": round(report.duration, 3),
            "reason": "" if outcome == "passed" else reason(report),
        }
    )
