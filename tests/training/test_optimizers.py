"""Optimisers and schedules from torch.optim: the learning rate at chosen steps, every optimiser
choice trains, the default is AdamW + the linear warm-up, and prefetch() warms the first step."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from attnbench.training.config import OPTIMIZERS, SCHEDULES, TrainerConfig
from attnbench.training.loop import fit
from attnbench.training.optimizers import build_optimizer, build_schedule, lr_factor
from tests.training.conftest import Recorder, case

CPU = torch.device("cpu")


def _lrs(schedule: str, warmup: int, total: int, lr: float = 1.0) -> list[float]:
    """The lr each of the `total` steps uses, read from the real optimiser."""
    p = nn.Parameter(torch.zeros(1))
    cfg = TrainerConfig(lr=lr, warmup_steps=warmup, schedule=schedule)
    opt = build_optimizer([p], cfg, CPU)
    sched = build_schedule(opt, cfg, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        p.grad = torch.zeros(1)
        opt.step()
        sched.step()
    return out


def test_constant_is_the_linear_warm_up_then_flat() -> None:
    assert _lrs("constant", 4, 7, lr=2.0) == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0]
    assert _lrs("constant", 0, 3) == [1.0, 1.0, 1.0]


def test_warmup_linear_decays_to_zero_at_the_last_step() -> None:
    lrs = _lrs("warmup_linear", 2, 6)
    assert lrs == pytest.approx([0.5, 1.0, 0.75, 0.5, 0.25, 0.0])


def test_warmup_cosine_follows_half_a_cosine_to_zero() -> None:
    lrs = _lrs("warmup_cosine", 2, 6)
    expected = [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * j / 4)) for j in (1, 2, 3, 4)]
    assert lrs == pytest.approx(expected)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12) and lrs[3] == pytest.approx(0.5)


def test_decaying_schedules_without_warm_up_start_at_lr() -> None:
    for schedule in ("warmup_linear", "warmup_cosine"):
        lrs = _lrs(schedule, 0, 5)
        assert lrs[0] < 1.0 and lrs[-1] == pytest.approx(0.0, abs=1e-12)  # step 1 already decays
        assert lrs == sorted(lrs, reverse=True)


def test_warm_up_longer_than_the_run_never_decays() -> None:
    assert lr_factor("warmup_cosine", 10, 4)(3) == pytest.approx(0.4)


def test_the_default_is_torch_adamw_with_lambdalr_single_tensor_on_cpu() -> None:
    cfg = TrainerConfig()
    assert (cfg.optimizer, cfg.schedule) == ("adamw", "constant")
    opt = build_optimizer(nn.Linear(2, 2).parameters(), cfg, CPU)
    assert type(opt) is torch.optim.AdamW
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["foreach"], group["fused"]) == (
        cfg.lr, cfg.weight_decay, None, None)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimiser_trains(name: str) -> None:
    c = case(max_steps=12, batch_size=64, log_every=6, lr=0.05 if name == "sgd" else 3e-3,
             optimizer=name, schedule="warmup_linear", warmup_steps=2)
    before = {k: v.clone() for k, v in c.model.state_dict().items()}
    sink = Recorder()
    result = fit(c.model, c.data, c.trainer, c.seed, sink)
    first, last = (m["train/loss"] for _, m in sink.logged if "train/loss" in m)
    assert last < first, (name, first, last)
    assert any(not torch.equal(before[k], v) for k, v in c.model.state_dict().items())
    assert result.steps == 12


def test_sgd_uses_momentum() -> None:
    p = nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], TrainerConfig(optimizer="sgd", momentum=0.5), CPU)
    assert type(opt) is torch.optim.SGD and opt.param_groups[0]["momentum"] == 0.5


def test_every_schedule_and_optimiser_is_a_valid_config() -> None:
    for name in OPTIMIZERS:
        for schedule in SCHEDULES:
            assert TrainerConfig(optimizer=name, schedule=schedule).problems() == []


def test_prefetch_imports_what_the_first_step_needs_and_draws_no_random_numbers() -> None:
    code = (
        "import sys, torch\n"
        "state = torch.get_rng_state()\n"
        "from attnbench.training.optimizers import prefetch\n"
        "t = prefetch(); t.join()\n"
        "same = torch.equal(state, torch.get_rng_state())\n"
        "print(t.daemon, 'torch._dynamo' in sys.modules, same)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True"]
