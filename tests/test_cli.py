"""The CLI end to end on the smoke trainer: run, sweep, list, Hydra flags, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONF, all_runs, attnbench_cmd, tracker_for


def test_help_lists_commands(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("run", "sweep", "list"):
        assert command in result.output


def test_list_shows_every_yaml_under_conf(cli) -> None:
    result = cli("list")
    assert result.exit_code == 0
    for group in ("attention", "backbone", "task", "trainer", "tracking"):
        options = [p.stem for p in (CONF / group).glob("*.yaml")]
        assert options, group
        for option in options:
            assert option in result.output, f"{group}/{option} missing from `attnbench list`"


def test_run_logs_one_finished_run(cli, runs_dir: Path) -> None:
    result = cli("run", "attention=additive")
    assert result.exit_code == 0, result.output
    runs = all_runs(runs_dir)
    assert len(runs) == 1
    run = runs[0]
    assert run.status == "FINISHED"
    assert run.name == "additive-transformer-assoc_recall-s0"
    assert run.tags["attention"] == "additive" and run.tags["seed"] == "0"
    assert run.params["attention.name"] == "additive"
    assert run.params["backbone.d_model"] == "64"
    for metric in ("train/loss", "val/acc", "test/acc", "cost/params", "cost/train_s"):
        assert metric in run.metrics, metric
    assert 0.0 <= run.metrics["test/acc"] <= 1.0
    # the summary on stdout: the run, its primary metrics, where to look next
    assert f"finished: additive-transformer-assoc_recall-s0 (run {run.run_id})" in result.stdout
    assert f"test/acc {run.metrics['test/acc']:.4f}" in result.stdout
    assert "attnbench compare -e assoc_recall" in result.stdout
    # output captured, not a terminal: no progress bar at all (in a terminal: tests/test_console.py)
    assert "━" not in result.output
    tracker = tracker_for(runs_dir)
    dst = runs_dir.parent
    saved = yaml.safe_load(
        tracker.download_artifact(run.run_id, "config/config.yaml", dst).read_text()
    )
    assert saved["attention"]["name"] == "additive"
    assert saved["trainer"]["max_steps"] == 3
    overrides = tracker.download_artifact(run.run_id, "config/overrides.yaml", dst).read_text()
    assert "attention=additive" in yaml.safe_load(overrides)
    artifacts = {a.path for a in tracker.client.list_artifacts(run.run_id, "checkpoints")}
    assert artifacts == {"checkpoints/best.pt"}


def test_sweep_makes_parent_and_named_children(cli, runs_dir: Path) -> None:
    result = cli("sweep", "attention=none,dot", "seed=range(0,2)")
    assert result.exit_code == 0, result.output
    runs = all_runs(runs_dir)
    parents = [r for r in runs if r.tags.get("attnbench.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].status == "FINISHED"
    children = [r for r in runs if r.tags.get("mlflow.parentRunId") == parents[0].run_id]
    assert sorted(r.name for r in children) == [
        "dot-transformer-assoc_recall-s0",
        "dot-transformer-assoc_recall-s1",
        "none-transformer-assoc_recall-s0",
        "none-transformer-assoc_recall-s1",
    ]
    assert all(r.status == "FINISHED" for r in children)
    # the end-of-sweep table names every job
    for r in children:
        assert r.tags["attention"] in result.output


def test_cfg_job_prints_composed_config_without_training(cli, runs_dir: Path) -> None:
    result = cli("run", "attention=multihead", "attention.heads=2", "--cfg", "job", smoke=False)
    assert result.exit_code == 0, result.output
    composed = yaml.safe_load(result.output)
    assert composed["attention"] == {"name": "multihead", "heads": 2, "dropout": 0.0}
    assert not runs_dir.exists() or all_runs(runs_dir) == []


def test_unknown_attention_is_one_line_exit_2_nothing_stored(cli, runs_dir: Path) -> None:
    result = cli("run", "attention=nope")
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert "nope" in lines[0]
    for name in ("none", "dot", "scaled", "additive", "multihead"):
        assert name in lines[0]
    assert "Traceback" not in result.output
    assert all_runs(runs_dir) == []


def test_unknown_key_and_bad_type_reported_together(cli, runs_dir: Path) -> None:
    result = cli("run", "trainer.lr=abc", "backbone.dropout=1.5")
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "trainer.lr" in result.output and "backbone.dropout" in result.output
    assert all_runs(runs_dir) == []


@pytest.mark.slow  # two worker processes each importing torch + MLflow: ~90 s on 2 busy cores
def test_joblib_launcher_two_parallel_jobs(runs_dir: Path, tmp_path: Path) -> None:
    """A real subprocess with Hydra's joblib launcher: both jobs land under one parent."""
    cmd = [
        *attnbench_cmd(),
        "sweep",
        "attention=dot,scaled",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "trainer=smoke",
        f"runs_dir={runs_dir}",
    ]
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_KEYS}
    env["GOMP_SPINCOUNT"] = "1000"  # the user's OpenMP setting wins, and workers inherit it
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = all_runs(runs_dir)
    parent = next(r for r in runs if r.tags.get("attnbench.kind") == "sweep")
    children = [r for r in runs if r.tags.get("mlflow.parentRunId") == parent.run_id]
    assert sorted(r.tags["attention"] for r in children) == ["dot", "scaled"]
    assert all(r.status == "FINISHED" and "test/acc" in r.metrics for r in children)
    # each worker's torch uses the trainer's threads (smoke: 1), whatever the number of workers
    assert {r.tags["attnbench.threads"] for r in children} == {"1"}
    assert {r.tags["attnbench.openmp_wait"] for r in children} == {"GOMP_SPINCOUNT=1000"}


OPENMP_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def test_openmp_waits_passively_unless_the_user_chose() -> None:
    """Set at `import attnbench`, before torch loads its OpenMP runtime."""
    code = "import os, attnbench; print(attnbench.OPENMP_WAIT, os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_KEYS}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["OMP_WAIT_POLICY=PASSIVE", "PASSIVE"]
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["OMP_WAIT_POLICY=ACTIVE", "ACTIVE"]


def test_version_names_attnbench_and_its_engines(cli) -> None:
    from attnbench import __version__

    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"attnbench {__version__} (torch ")


def test_unsupported_sweep_syntax_is_one_line_before_any_run(cli, runs_dir: Path) -> None:
    result = cli("sweep", "trainer.lr=interval(0.001,0.01)")
    assert result.exit_code == 2
    (line,) = [ln for ln in result.output.splitlines() if ln.strip()]
    assert line.startswith("error: 'trainer.lr=interval(0.001,0.01)'") and "optuna" in line
    assert all_runs(runs_dir) == []  # no sweep parent left RUNNING for `compare` to pick
    result = cli("run", "-sc", "install=bash")
    assert result.exit_code == 2 and "attnbench --install-completion" in result.output


@pytest.mark.parametrize(("override", "says"), [
    ("trainer.device=cuda", "'trainer.device' = 'cuda'"),
    ("trainer.precision=16", "'trainer.precision' = '16'"),
])
def test_a_device_this_machine_lacks_is_one_line_before_any_run(
    cli, runs_dir: Path, override: str, says: str
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the device is valid here")
    result = cli("run", override)
    assert result.exit_code == 2
    (line,) = [ln for ln in result.output.splitlines() if ln.strip()]
    assert line.startswith(f"error: {says}") and "Valid here:" in line
    assert all_runs(runs_dir) == []


@pytest.mark.parametrize(("override", "starts"), [
    ("hydra/launcher=ray_cluster", "hydra/launcher=ray_cluster builds on Hydra's Ray cluster "
                                   "launcher (ray), which is not installed: "),
    ("hydra/launcher=ray", "hydra/launcher=ray is Hydra's Ray cluster launcher (ray), which is "
                           "not installed: "),
])
def test_a_launcher_not_installed_names_its_extra(cli, runs_dir: Path, override: str,
                                                  starts: str) -> None:
    from attnbench.config.launchers import PLUGINS, installed

    if installed(next(p for p in PLUGINS if p.name == "ray")):
        pytest.skip("hydra-ray-launcher is installed here")
    result = cli("sweep", override)
    (line,) = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and line.startswith(f"error: {starts}"), line
    assert "pip install 'attnbench[ray]'. Installed launchers: basic, joblib" in line
    assert "ray_cluster," not in line  # a preset of a missing plugin is not offered
    unknown = cli("sweep", "hydra/launcher=rayy")
    (line,) = [ln for ln in unknown.output.splitlines() if ln.strip()]
    assert line.startswith("error: Unknown hydra/launcher 'rayy'. Valid options: basic, joblib")
    assert line.endswith("; not installed: ray, ray_aws (pip install 'attnbench[ray]'), "
                         "ray_cluster (builds on ray)")
    assert all_runs(runs_dir) == []


def test_shared_options_are_declared_once() -> None:
    """--runs-dir, --tracking-uri, --debug and -v live in cli/options.py (Typer's Annotated
    style); the command modules use them and declare none themselves."""
    from attnbench.cli import app, options

    cli_dir = Path(options.__file__).parent
    for path in sorted(cli_dir.glob("*.py")):
        if path.name != "options.py":
            text = path.read_text(encoding="utf-8")
            for flag in ('"--runs-dir"', '"--tracking-uri"', '"--debug"', '"--verbose"'):
                assert flag not in text, f"{path.name} declares {flag}"
    import typer.main

    group = typer.main.get_command(app)
    shared = {"runs_dir": "--runs-dir", "tracking_uri": "--tracking-uri", "debug": "--debug"}
    for name in ("compare", "runs", "evaluate", "reproduce", "ui"):
        params = {p.name: p for p in group.commands[name].params}
        for param, flag in shared.items():
            assert params[param].opts == [flag], (name, param)
    for name in ("run", "sweep", "ui"):
        params = {p.name: p for p in group.commands[name].params}
        assert params["verbose"].opts == ["--verbose", "-v"], name
