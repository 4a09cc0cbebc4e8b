"""The launcher presets under conf/hydra/launcher/ compose on top of the plugins' own configs
(checked with Hydra's `--cfg hydra`, nothing is launched), and `attnbench list` shows them."""

from __future__ import annotations

import pytest
import yaml

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


def test_list_shows_launcher_presets_and_sweepers(cli) -> None:
    result = cli("list")
    rows = [line for line in result.output.splitlines() if "hydra/" in line]
    for option in ("joblib", "submitit_slurm", "ray", "slurm", "ray_cluster", "optuna"):
        assert any(f" {option} " in row for row in rows), option
