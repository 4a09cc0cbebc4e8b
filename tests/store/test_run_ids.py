"""Run ids as attnbench prints them: any unique prefix of 6+ characters works wherever an id is
taken (`Tracker.get_run`, so `compare --sweep`, `evaluate`, `reproduce`); a short, unknown or
ambiguous one is one line (the ambiguous one naming its matches)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from attnbench.errors import TrackingError
from tests.analysis.test_compare import fill_store
from tests.conftest import tracker_for

TWIN = "abcdef12"  # two runs made to share this prefix


@pytest.fixture
def twins(runs_dir: Path) -> tuple[str, str, str]:
    """A sweep parent and two job runs whose ids both start with TWIN."""
    tracker = tracker_for(runs_dir)
    exp = tracker.experiment_id("ids")
    parent = tracker.start_run(exp, "sweep-ids", {"attnbench.kind": "sweep"})
    made = [tracker.start_run(exp, f"job-{i}", {"attention": "dot"}, parent) for i in (0, 1)]
    for run in [*made, parent]:
        tracker.end_run(run)
    renamed = [TWIN + run[len(TWIN):] for run in made]
    with sqlite3.connect(runs_dir / "mlflow.db") as conn:
        for old, new in zip(made, renamed, strict=True):
            for table in ("runs", "tags", "latest_metrics", "metrics", "params"):
                conn.execute(f"UPDATE {table} SET run_uuid = ? WHERE run_uuid = ?",  # noqa: S608
                             (new, old))
    return parent, renamed[0], renamed[1]


def test_a_unique_prefix_is_the_run(runs_dir: Path, twins: tuple[str, str, str]) -> None:
    parent, first, _ = twins
    tracker = tracker_for(runs_dir)
    for typed in (parent, parent[:8], parent[:6], parent[:8].upper(), first[:9]):
        assert tracker.get_run(typed).run_id in (parent, first)
    assert tracker.get_run(parent[:6]).run_id == parent
    assert tracker.get_run(first[: len(TWIN) + 1]).run_id == first


@pytest.mark.parametrize(("typed", "says"), [
    ("abcde", "is too short: give at least 6 characters"),
    ("0f0f0f0f", "No run with id '0f0f0f0f' (or starting so)"),
    (TWIN, f"Run id prefix '{TWIN}' is ambiguous: it matches {TWIN}"),
])
def test_a_short_unknown_or_ambiguous_id_is_one_line(
    runs_dir: Path, twins: tuple[str, str, str], typed: str, says: str
) -> None:
    with pytest.raises(TrackingError, match=r"^[^\n]*$") as err:
        tracker_for(runs_dir).get_run(typed)
    assert says in str(err.value)
    if typed == TWIN:  # both matches, by full id and name
        assert f"{twins[1]} (job-0)" in str(err.value) and f"{twins[2]} (job-1)" in str(err.value)


def test_commands_take_the_prefix_attnbench_prints(
    cli, runs_dir: Path, twins: tuple[str, str, str]
) -> None:
    parent, _ = fill_store(runs_dir)  # a sweep with metrics to compare
    result = cli("compare", "--sweep", parent[:8], "--format", "json", "--no-plots",
                 "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sweep_run_id"] == parent
    ambiguous = cli("evaluate", TWIN, "--runs-dir", str(runs_dir))
    lines = [ln for ln in ambiguous.output.splitlines() if ln.strip()]
    assert ambiguous.exit_code == 2 and len(lines) == 1 and "is ambiguous" in lines[0]
    short = cli("reproduce", twins[0][:5], "--runs-dir", str(runs_dir))
    assert short.exit_code == 2 and "at least 6 characters" in short.output
