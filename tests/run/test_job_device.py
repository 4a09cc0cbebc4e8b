"""Parallel joblib workers on a multi-GPU machine get one GPU each, round-robin by job number
(checked with torch's CUDA queries faked: the logic is the same on any machine)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from attnbench.config.validate import validate
from attnbench.run.app import with_job_device

BASE = {"seed": 0, "runs_dir": "runs", "attention": {"name": "dot"},
        "backbone": {"name": "transformer"}, "task": {"name": "copy"}, "tracking": {"uri": None}}
JOBLIB = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}


def _hc(num: int, launcher: dict) -> SimpleNamespace:
    return SimpleNamespace(job=SimpleNamespace(num=num), launcher=launcher)


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)


@pytest.mark.usefixtures("gpus")
def test_joblib_jobs_get_one_gpu_each_round_robin() -> None:
    cfg = validate({**BASE, "trainer": {"device": "auto"}})
    devices = [with_job_device(cfg, _hc(n, JOBLIB), 2).trainer.device for n in range(5)]
    assert devices == ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]


@pytest.mark.usefixtures("gpus")
@pytest.mark.parametrize(("device", "launcher", "jobs"), [
    ("cpu", JOBLIB, 2),  # the user chose the CPU
    ("cuda:1", JOBLIB, 2),  # the user chose a GPU
    ("auto", JOBLIB, 1),  # one job at a time: it may use any GPU
    ("auto", {"_target_": "hydra_plugins.hydra_submitit_launcher.SlurmLauncher"}, 4),
])
def test_other_jobs_keep_their_device(device: str, launcher: dict, jobs: int) -> None:
    cfg = validate({**BASE, "trainer": {"device": device}})
    assert with_job_device(cfg, _hc(1, launcher), jobs).trainer.device == device
