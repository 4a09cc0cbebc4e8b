"""Finding and organising runs: `sweep --name/--tag/--note` (MLflow tags on the sweep and its
jobs), `attnbench runs` (the recent sweeps with their compare command), `compare --sweep NAME`,
and `sweep --dry-run` (the jobs a sweep would launch, and the cells `--resume` would skip)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import all_runs, tracker_for

SWEEP = "attnbench.kind"


def _sweep(tracker, exp: str, name: str | None, statuses: list[str], start_ms: int) -> str:  # noqa: ANN001
    """A sweep parent with one job run per status (made directly in the store: fast)."""
    exp_id = tracker.experiment_id(exp)
    tags = {SWEEP: "sweep", **({"attnbench.sweep_name": name} if name else {})}
    parent = tracker.start_run(exp_id, name or "sweep-20261207-120000", tags,
                               start_time_ms=start_ms)
    for i, status in enumerate(statuses):
        job = tracker.start_run(exp_id, f"dot-rnn-{exp}-s{i}", {"attention": "dot"}, parent,
                                start_ms + i)
        if status != "RUNNING":
            tracker.end_run(job, status)
    tracker.end_run(parent, "FAILED" if "FAILED" in statuses else "FINISHED")
    return parent


def _rows(output: str) -> list[list[str]]:
    """The table's body rows, as columns split at runs of 2+ spaces."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    body = lines[lines.index(next(ln for ln in lines if set(ln.strip()) == {"─"})) + 1:]
    return [re.split(r"\s{2,}", ln.strip()) for ln in body]


def test_runs_lists_recent_sweeps_with_their_compare_command(
    cli, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # wide enough for the compare command on every row
    tracker = tracker_for(runs_dir)
    old = _sweep(tracker, "reverse", None, ["FINISHED"] * 2, 1_700_000_000_000)
    new = _sweep(tracker, "assoc_recall", "baseline", ["FINISHED", "FAILED", "KILLED"],
                 1_700_000_100_000)
    result = cli("runs", "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    assert [row[0] for row in rows] == [new[:8], old[:8]]  # newest first
    assert rows[0][1:5] == ["baseline", "assoc_recall", "3 (2 failed)", "FAILED"]
    assert rows[1][1:5] == ["-", "reverse", "2", "FINISHED"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows[0][5])
    assert rows[0][6] == f"attnbench compare --sweep {new[:8]}"
    limited = cli("sweeps", "--limit", "1", "--runs-dir", str(runs_dir))  # the alias
    assert [row[0] for row in _rows(limited.stdout)] == [new[:8]]
    one = cli("runs", "-e", "reverse", "--runs-dir", str(runs_dir))
    assert [row[0] for row in _rows(one.stdout)] == [old[:8]]


@pytest.mark.parametrize(("args", "says"), [
    (["-e", "nope"], "Unknown experiment 'nope'. Experiments in the store: "),
    (["--limit", "0"], "--limit 0: give a number of sweeps >= 1"),
    (["--runs-dir", "{runs}/missing"], "No MLflow store at"),
])
def test_runs_bad_input_is_one_line(cli, runs_dir: Path, args: list[str], says: str) -> None:
    argv = [a.format(runs=runs_dir) for a in args]
    result = cli("runs", *argv, *([] if "--runs-dir" in argv else ["--runs-dir", str(runs_dir)]))
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and says in lines[0]


def test_runs_on_an_empty_store_says_how_to_make_one(cli, runs_dir: Path) -> None:
    result = cli("runs", "--runs-dir", str(runs_dir))
    assert result.exit_code == 0
    assert result.stdout.strip().startswith("No sweep in the store yet: attnbench sweep")


def test_runs_through_a_tracking_uri(cli, runs_dir: Path) -> None:
    """The store named by a URI (the code path of a tracking server: no local runs folder)."""
    parent = _sweep(tracker_for(runs_dir), "copy", "viauri", ["FINISHED"], 1_700_000_000_000)
    result = cli("runs", "--tracking-uri", f"sqlite:///{runs_dir / 'mlflow.db'}",
                 "--runs-dir", str(runs_dir.parent / "elsewhere"))
    assert result.exit_code == 0, result.output
    assert _rows(result.stdout)[0][:3] == [parent[:8], "viauri", "copy"]


def test_a_named_tagged_noted_sweep_is_found_by_name(cli, runs_dir: Path) -> None:
    result = cli("sweep", "attention=dot,scaled", "--name", "base-1", "--tag", "project=glue",
                 "--tag", "owner=ana lab", "--note", "first try: dot vs scaled")
    assert result.exit_code == 0, result.output
    runs = all_runs(runs_dir)
    (parent,) = [r for r in runs if r.tags.get(SWEEP) == "sweep"]
    children = [r for r in runs if r.tags.get("mlflow.parentRunId") == parent.run_id]
    assert parent.name == "base-1" and len(children) == 2
    for run in (parent, *children):
        assert run.tags["attnbench.sweep_name"] == "base-1"
        assert run.tags["project"] == "glue" and run.tags["owner"] == "ana lab"
        assert run.tags["mlflow.note.content"] == "first try: dot vs scaled"
    assert {r.tags["attention"] for r in children} == {"dot", "scaled"}  # identity kept
    compared = cli("compare", "--sweep", "base-1", "--format", "json", "--no-plots",
                   "--runs-dir", str(runs_dir))
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.stdout)["sweep_run_id"] == parent.run_id
    listed = cli("runs", "--runs-dir", str(runs_dir))
    assert _rows(listed.stdout)[0][:4] == [parent.run_id[:8], "base-1", "assoc_recall", "2"]
    unknown = cli("compare", "--sweep", "base-2", "--no-plots", "--runs-dir", str(runs_dir))
    assert unknown.exit_code == 2 and "nor a sweep named so" in unknown.output


@pytest.mark.parametrize(("flag", "says"), [
    (["--name", "two words"], "a sweep name is 1-64 letters"),
    (["--tag", "nokey"], "give KEY=VALUE"),
    (["--tag", "mlflow.user=x"], "a tag MLflow or attnbench sets itself"),
    (["--tag", "attention=x"], "a tag MLflow or attnbench sets itself"),
    (["--note", "x" * 5001], "--note: 5001 characters, at most 5000"),
])
def test_a_bad_label_is_one_line_before_anything_runs(cli, runs_dir: Path, flag: list[str],
                                                       says: str) -> None:
    result = cli("sweep", "attention=dot", *flag)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and says in lines[0], result.output
    assert all_runs(runs_dir) == []


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folder`, files with their size and modification time (a
    folder's time changes when the pre-flight tries a throw-away folder in it)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            if p.is_file() else (0, 0) for p in folder.rglob("*")}


def test_dry_run_lists_the_jobs_and_writes_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from attnbench.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep", "attention=dot,scaled", "seed=0,1",
                                      "trainer=smoke", "hydra/launcher=joblib", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dry run: the sweep would launch 4 jobs")
    assert lines[1:5] == [
        "  #0 : attention=dot seed=0 trainer=smoke", "  #1 : attention=dot seed=1 trainer=smoke",
        "  #2 : attention=scaled seed=0 trainer=smoke",
        "  #3 : attention=scaled seed=1 trainer=smoke"]
    assert "Hydra settings: hydra/launcher=joblib" in result.stdout
    assert list(tmp_path.iterdir()) == []  # no store, no runs/ folder, no Hydra folder
    bad = CliRunner().invoke(app, ["sweep", "attention=nope", "--dry-run"])
    assert bad.exit_code == 2 and "Unknown attention 'nope'" in bad.output


def test_dry_run_with_resume_names_the_cells_it_would_skip(cli, runs_dir: Path) -> None:
    first = cli("sweep", "attention=dot", "seed=0,1")
    assert first.exit_code == 0, first.output
    done = {r.tags["seed"]: r.run_id for r in all_runs(runs_dir) if r.tags.get("seed")}
    before = _tree(runs_dir)
    result = cli("sweep", "attention=dot", "seed=0,1,2", "--resume", "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == (f"  #0 : attention=dot seed=0 trainer=smoke runs_dir={runs_dir}   "
                        f"(skip: FINISHED run {done['0'][:8]}, same config hash)")
    assert "skip: FINISHED run " + done["1"][:8] in lines[2]
    assert "skip" not in lines[3] and "seed=2" in lines[3]
    assert lines[-1] == ("--resume would skip 2 of 3 cells (a FINISHED run with the same config "
                         "hash) and train or continue 1")
    assert _tree(runs_dir) == before  # the store read, not written


def test_dry_run_names_the_cells_a_backbone_cannot_run(cli, runs_dir: Path) -> None:
    """A grid with a cell the lm cannot run (lowrank: no causal form), with --resume after a
    finished cell: the jobs it would run and skip are named, not numbered, and the note says
    which variants the lm takes."""
    first = cli("sweep", "backbone=lm", "attention=scaled")
    assert first.exit_code == 0, first.output
    done = next(r.run_id for r in all_runs(runs_dir) if r.tags.get("seed"))
    result = cli("sweep", "backbone=lm", "attention=lowrank,scaled", "--resume", "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "would launch 2 jobs" in out
    assert f"  skip: scaled-lm-assoc_recall-s0 (FINISHED run {done[:8]}, same config hash)" in out
    assert "note: backbone 'lm' cannot run attention 'lowrank'" in out and "Compatible" in out
    assert out.splitlines()[-1].startswith("--resume would skip 1 of 1 cells")


@pytest.mark.e2e
def test_runs_and_names_on_a_tracking_server(cli, tmp_path: Path) -> None:
    """`mlflow server` on 127.0.0.1 (started and stopped here, by its PID): a named sweep made
    through it is listed by `runs --tracking-uri` and compared by name; MLflow prints no run
    links on the terminal."""
    import sys

    from tests.e2e.servers import Started, free_port, wait_http

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = Started([str(Path(sys.executable).parent / "mlflow"), "server", "--host",
                      "127.0.0.1", "--port", str(port), "--workers", "1", "--backend-store-uri",
                      f"sqlite:///{tmp_path / 'server.db'}", "--default-artifact-root",
                      str(tmp_path / "artifacts")], tmp_path / "server.log")
    try:
        wait_http(f"{uri}/health", server)
        made = cli("sweep", "attention=dot,scaled", "tracking=server", f"tracking.uri={uri}",
                   "--name", "on-server")
        assert made.exit_code == 0, made.output
        assert "View run" not in made.output and _noise_free(made.output)
        listed = cli("runs", "--tracking-uri", uri)
        assert listed.exit_code == 0, listed.output
        row = _rows(listed.stdout)[0]
        assert row[1:5] == ["on-server", "assoc_recall", "2", "FINISHED"]
        compared = cli("compare", "--sweep", "on-server", "--tracking-uri", uri, "--no-plots",
                       "--format", "json")
        assert compared.exit_code == 0, compared.output
        assert json.loads(compared.stdout)["sweep_run_id"].startswith(row[0])
    finally:
        server.stop()


def _noise_free(output: str) -> bool:
    return not any(word in line for line in output.splitlines() for word in ("[HYDRA]", "INFO"))
