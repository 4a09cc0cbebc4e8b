"""Hydra's own failures: a full disk is refused before Hydra writes anything (one line, exit 2);
a failure the pre-flight cannot foresee (a launcher that raises) is one line, exit 1, and the
sweep's parent run is closed as FAILED, not left RUNNING."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import pytest

from tests.conftest import all_runs
from tests.errors.test_bad_input_corpus import running_runs, snapshot


def _one_line(result) -> str:  # noqa: ANN001 - a click Result
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_a_launcher_failure_closes_the_sweep_as_failed(cli, runs_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra.core.plugins import Plugins

    # Hydra loads its plugins' modules itself: patch the class its discovery found
    name = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    launcher = Plugins.instance().class_name_to_class[name]

    def broken(self, job_overrides, initial_job_idx):  # noqa: ANN001, ANN202
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(launcher, "launch", broken)
    result = cli("sweep", "seed=0,1")
    line = _one_line(result)
    assert result.exit_code == 1, result.output
    assert "Hydra failed before the jobs could run: OSError" in line
    assert "No space left on device" in line and "marked FAILED" in line
    (parent,) = all_runs(runs_dir)
    assert parent.status == "FAILED"
    assert running_runs(runs_dir) == 0


def test_a_hydra_failure_in_a_run_is_one_line(cli, runs_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra._internal.hydra import Hydra

    def broken(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise PermissionError(13, "Permission denied", "/somewhere/.hydra")

    monkeypatch.setattr(Hydra, "run", broken)
    result = cli("run")
    line = _one_line(result)
    assert result.exit_code == 1
    assert "PermissionError" in line and "Permission denied" in line
    assert running_runs(runs_dir) == 0


Usage = namedtuple("Usage", "total used free")


def test_a_nearly_full_disk_is_refused_before_hydra_writes(cli, runs_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage

    def nearly_full(path):  # noqa: ANN001, ANN202
        usage = real(path)
        return Usage(usage.total, usage.total - 2**20, 2**20)  # 1 MB free

    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    before = snapshot(runs_dir.parent)
    result = cli("sweep", "seed=0,1")
    line = _one_line(result)
    assert result.exit_code == 2
    assert "'runs_dir'" in line and "1.0 MB free" in line and "at least 64 MB" in line
    assert snapshot(runs_dir.parent) == before


@pytest.fixture
def tiny_disk(tmp_path: Path):  # noqa: ANN201 - a generator of a Path
    """A real 256 KiB tmpfs (needs root and mount; skipped elsewhere)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_full_disk_under_runs_dir(cli, tiny_disk: Path, command: str) -> None:
    runs = tiny_disk / "runs"
    args = [command, "trainer=smoke", f"runs_dir={runs}", *(["seed=0,1"] if command == "sweep"
                                                            else [])]
    result = cli(*args, smoke=False)
    line = _one_line(result)
    assert result.exit_code == 2
    assert "'runs_dir'" in line and "MB free" in line
    assert list(tiny_disk.iterdir()) == []
