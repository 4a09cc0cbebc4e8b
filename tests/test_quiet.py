"""Quiet by default: a sweep prints its table and the notes a user must read, each once; Hydra's
lines and the libraries' INFO logging go to each job's log file (conf/hydra/*_logging/quiet.yaml),
and `-v` brings them back to the terminal."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import SMOKE, all_runs, attnbench_cmd, write_reviews

NOISE = ("[HYDRA]", "INFO")


def _noise(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(word in line for word in NOISE)]


def test_a_sweep_prints_no_hydra_or_info_line(cli, runs_dir: Path) -> None:
    result = cli("sweep", "attention=dot,scaled")
    assert result.exit_code == 0, result.output
    assert _noise(result.output) == []
    assert result.stdout.splitlines()[0].startswith("sweep ")  # the table comes first
    # Hydra's job log is still written, in each job's folder
    logs = sorted((runs_dir / "multirun").glob("*/*/app.log"))
    assert [p.parent.name for p in logs] == ["0", "1"]


@pytest.mark.slow  # a subprocess that imports torch and MLflow and builds a font cache: ~15 s
def test_a_fresh_home_prints_no_library_line(runs_dir: Path, tmp_path: Path) -> None:
    """A subprocess with an empty HOME: matplotlib builds its font cache (an INFO line in the
    job's log file, not on the terminal); nothing else logs either."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("MPLCONFIGDIR", None)
    done = subprocess.run([*attnbench_cmd(), "sweep", "attention=dot,scaled", *SMOKE,
                           f"runs_dir={runs_dir}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _noise(done.stdout + done.stderr) == []
    assert done.stderr == ""
    assert (home / ".cache" / "matplotlib").is_dir()  # the cache was built by this run
    logged = "".join(p.read_text() for p in (runs_dir / "multirun").glob("*/*/app.log"))
    assert "matplotlib.font_manager][INFO] - generated new fontManager" in logged


def _reviews(tmp_path: Path) -> Path:
    """A text file task whose columns are detected (a note every job's data load makes)."""
    data = tmp_path / "reviews.csv"
    write_reviews(data)
    data.write_text(data.read_text().replace("text,label", "sentence,label", 1))
    return data


@pytest.mark.slow  # 10 jobs (test_verbose_brings_hydra_lines_back checks 2 in the default run)
def test_a_data_note_shows_once_in_a_ten_job_sweep(cli, runs_dir: Path, tmp_path: Path) -> None:
    data = _reviews(tmp_path)
    result = cli("sweep", "task=text", f"task.path={data}", "backbone=rnn",
                 "attention=dot,scaled", "seed=range(0,5)")
    assert result.exit_code == 0, result.output
    assert len([r for r in all_runs(runs_dir) if r.status == "FINISHED"]) == 10 + 1
    notes = [ln for ln in result.output.splitlines() if "detected text column" in ln]
    assert notes == [f"note: {data} (task.path): no column 'text'; using the detected text "
                     "column 'sentence' and label column 'label' (set task.text_column / "
                     "task.label_column to choose)"]
    assert _noise(result.output) == []
    logged = [p.read_text() for p in sorted((runs_dir / "multirun").glob("*/*/app.log"))]
    assert len(logged) == 10 and all("detected text column" in text for text in logged)


def test_verbose_brings_hydra_lines_back(cli, runs_dir: Path, tmp_path: Path) -> None:
    """-v: Hydra's lines and each job's INFO log on the terminal; the note still once."""
    data = _reviews(tmp_path)
    args = ("sweep", "task=text", f"task.path={data}", "backbone=rnn", "attention=dot",
            "seed=0,1")
    quiet = cli(*args)
    assert quiet.exit_code == 0, quiet.output
    assert _noise(quiet.output) == []
    assert len([ln for ln in quiet.output.splitlines() if "detected text column" in ln]) == 1
    loud = cli(*args, "-v")
    assert loud.exit_code == 0, loud.output
    assert "[HYDRA] Launching 2 jobs locally" in loud.output
    assert f"[HYDRA] \t#1 : task=text task.path={data} backbone=rnn attention=dot seed=1" \
        in loud.output
    info = [ln for ln in loud.output.splitlines()
            if "[INFO]" in ln and "detected text column" in ln]
    notes = [ln for ln in loud.output.splitlines() if ln.startswith("note: ")]
    assert len(info) == 2 and len(notes) == 1  # each job logs it; the note is shown once
    assert os.environ.get("ATTNBENCH_VERBOSE") is None  # set for the command only


def test_quiet_logging_is_attnbench_default(cli, runs_dir: Path, tmp_path: Path) -> None:
    """The quiet configs are attnbench's defaults (the safety guard allows them as attnbench's
    own); a -cd folder's file of the same name does not replace them."""
    shared = tmp_path / "shared" / "hydra" / "job_logging"
    shared.mkdir(parents=True)
    (shared / "quiet.yaml").write_text("version: 1\nroot:\n  level: DEBUG\n")
    for args in ([], ["-cd", str(tmp_path / "shared")]):
        result = cli("run", *args, "--cfg", "hydra", smoke=False)
        assert result.exit_code == 0, result.output
        hydra = yaml.safe_load(result.output)["hydra"]
        job, own = hydra["job_logging"], hydra["hydra_logging"]
        assert job["handlers"]["console"]["level"] == "WARNING"
        assert job["handlers"]["file"]["filename"] == "${hydra.runtime.output_dir}/" \
                                                      "${hydra.job.name}.log"
        assert job["root"] == {"level": "INFO", "handlers": ["console", "file"]}
        assert own["handlers"]["console"]["level"] == "WARNING"


def test_optuna_logs_through_the_root_logger() -> None:
    optuna = pytest.importorskip("optuna")
    from attnbench.console import optuna_through_root

    optuna_through_root()
    logger = logging.getLogger("optuna")
    assert logger.propagate and logger.handlers == []  # no handler of its own (colour codes)
    optuna.logging.get_logger("optuna.study").info("probe")  # does not re-add its handler
    assert logger.handlers == []


def test_mlflow_run_links_are_off_unless_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    from attnbench.store.tracker import _quiet_libraries

    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    monkeypatch.setenv("ATTNBENCH_VERBOSE", "1")
    _quiet_libraries()
    assert "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT" not in os.environ
    monkeypatch.delenv("ATTNBENCH_VERBOSE")
    _quiet_libraries()
    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
    assert logging.getLogger("mlflow").level == logging.WARNING
