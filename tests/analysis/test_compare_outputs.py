"""Where compare writes: an -o file that cannot be written is refused before any report is
written or logged; a runs folder copied elsewhere (MLflow keeps absolute artifact paths) is
pointed at its own artifacts/ first, so the report lands in the copy, never in the original."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.analysis.test_compare import fill_store
from tests.conftest import tracker_for


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("original") / "runs"
    root.mkdir()
    shutil.copy(empty_store, root / "mlflow.db")
    parent, _ = fill_store(root)
    return root, parent


def _report_files(tracker, run_id: str) -> list[str]:  # noqa: ANN001 - Tracker
    return [a.path for a in tracker.client.list_artifacts(run_id, "report/test-acc_by_attention")]


@pytest.mark.parametrize("output", ["/dev/null/x.md", "{file}/x.md", "{folder}"],
                         ids=["under-dev-null", "under-a-file", "a-folder"])
def test_an_unwritable_output_is_refused_before_anything_is_written(
    cli, runs_dir: Path, original: tuple[Path, str], tmp_path: Path, output: str
) -> None:
    db, parent = original[0] / "mlflow.db", original[1]
    shutil.copy(db, runs_dir / "mlflow.db")
    (tmp_path / "afile").write_text("x")
    target = output.format(file=tmp_path / "afile", folder=tmp_path)
    result = cli("compare", "--no-plots", "--format", "markdown", "-o", target, "--runs-dir",
                 str(runs_dir))
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: --output ") and "Traceback" not in result.output
    assert not (runs_dir / "reports").exists()
    assert _report_files(tracker_for(runs_dir), parent) == []


def test_a_copied_runs_folder_reports_into_the_copy(cli, tmp_path: Path,
                                                   original: tuple[Path, str]) -> None:
    root, parent = original
    copy = tmp_path / "elsewhere" / "runs"
    shutil.copytree(root, copy)
    result = cli("compare", "--no-plots", "--runs-dir", str(copy))
    assert result.exit_code == 0, result.output
    assert f"note: this store was copied from {root.resolve()}" in result.stderr
    copied = tracker_for(copy)
    assert sorted(_report_files(copied, parent)) == [
        f"report/test-acc_by_attention/table.{suffix}" for suffix in ("csv", "json", "md", "tex")]
    logged = copy / "artifacts"
    assert any(p.name == "table.md" for p in logged.rglob("*")), "logged into the copy"
    assert not (root / "artifacts").exists() or not any(
        p.name == "table.md" for p in (root / "artifacts").rglob("*")), "not into the original"
    again = cli("compare", "--no-plots", "--runs-dir", str(copy))
    assert again.exit_code == 0 and "copied from" not in again.stderr  # relocated once
