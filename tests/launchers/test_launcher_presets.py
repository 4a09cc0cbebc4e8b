"""The launcher presets under conf/hydra/launcher/ compose on top of the plugins' own configs
(checked with Hydra's `--cfg hydra`, nothing is launched), and `attnbench list` shows them."""

from __future__ import annotations

import os

import pytest
import yaml

from attnbench.run.app import jobs_sharing_this_machine
from tests.e2e.servers import need_module


def hydra_cfg(cli, *overrides: str) -> dict:  # noqa: ANN001 - the cli fixture
    result = cli("run", *overrides, "--cfg", "hydra", smoke=False)
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.output)["hydra"]


def test_slurm_preset_asks_for_gpu_cpus_time(cli) -> None:
    need_module("hydra_plugins.hydra_submitit_launcher", "pip install 'attnbench[slurm]'")
    launcher = hydra_cfg(cli, "hydra/launcher=slurm", "hydra.launcher.partition=gpu")["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["partition"] == "gpu"
    assert launcher["gpus_per_node"] == 1 and launcher["cpus_per_task"] == 4
    assert launcher["timeout_min"] == 120 and launcher["mem_gb"] == 16


@pytest.mark.e2e
def test_ray_cluster_preset_joins_a_running_cluster(cli) -> None:
    need_module("hydra_plugins.hydra_ray_launcher", "pip install 'attnbench[ray]'")
    launcher = hydra_cfg(cli, "hydra/launcher=ray_cluster")["launcher"]
    assert launcher["_target_"].endswith("RayLauncher")
    assert launcher["ray"]["init"] == {"address": "auto", "object_store_memory": None}
    assert launcher["ray"]["remote"] == {"num_cpus": 1}
    assert jobs_sharing_this_machine(launcher) == os.cpu_count()  # 1 CPU, so 1 thread, per job


JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
RAY = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"


@pytest.mark.parametrize(("launcher", "jobs"), [
    ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 1),
    ({"_target_": JOBLIB, "n_jobs": 2}, 2),
    ({"_target_": JOBLIB, "n_jobs": -1}, 8),  # one per core
    ({"_target_": RAY, "ray": {"remote": {}}}, 8),  # Ray's default: one CPU per task
    ({"_target_": RAY, "ray": {"remote": {"num_cpus": 2}}}, 4),
])
def test_parallel_jobs_split_the_cores(
    launcher: dict, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`trainer.threads: 0` gives each job cores / jobs_sharing_this_machine(...) threads."""
    from omegaconf import OmegaConf

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert jobs_sharing_this_machine(OmegaConf.create(launcher)) == jobs


def test_list_shows_launcher_presets_and_sweepers(cli) -> None:
    result = cli("list")
    rows = [line for line in result.output.splitlines() if "hydra/" in line]
    for option in ("joblib", "submitit_slurm", "ray", "slurm", "ray_cluster", "optuna"):
        assert any(f" {option} " in row for row in rows), option
