"""attnbench's AdamW against the reference it replaces: torch.optim.AdamW + LambdaLR warm-up.

The trainer's optimiser exists only to skip torch.optim's import of torch._dynamo; its
parameters must follow torch's bit for bit (torch.equal, not a tolerance), so results do not
depend on which of the two trained them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from attnbench.training.optim import AdamW


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Embedding(11, 8), nn.Flatten(), nn.Linear(40, 16), nn.Tanh(),
                         nn.Linear(16, 3))


def _train(model: nn.Module, opt_step, zero_grad, steps: int, frozen_until: int) -> None:
    g = torch.Generator().manual_seed(1)
    for step in range(1, steps + 1):
        x = torch.randint(0, 11, (6, 5), generator=g)
        y = torch.randint(0, 3, (6,), generator=g)
        zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if step <= frozen_until:  # the embedding gets no gradient in the first steps
            model[0].weight.grad = None
        opt_step()


@pytest.mark.parametrize(("lr", "weight_decay", "warmup"), [
    (1e-3, 0.01, 0), (3e-3, 0.0, 5), (1e-2, 0.1, 7),
])
def test_adamw_equals_torch_adamw_with_lambdalr_bit_for_bit(
    lr: float, weight_decay: float, warmup: int
) -> None:
    ours, ref = _model(0), _model(0)
    opt = AdamW(ours.parameters(), lr=lr, weight_decay=weight_decay, warmup_steps=warmup)
    t_opt = torch.optim.AdamW(ref.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        t_opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
    )

    def t_step() -> None:
        t_opt.step()
        sched.step()

    lrs = []
    for _ in range(3):  # the schedule, as LambdaLR gives it
        lrs.append((opt.lr, t_opt.param_groups[0]["lr"]))
        _train(ours, opt.step, opt.zero_grad, 1, frozen_until=0)
        _train(ref, t_step, lambda: t_opt.zero_grad(set_to_none=True), 1, frozen_until=0)
    assert all(a == b for a, b in lrs), lrs
    _train(ours, opt.step, opt.zero_grad, 17, frozen_until=4)
    _train(ref, t_step, lambda: t_opt.zero_grad(set_to_none=True), 17, frozen_until=4)
    for (name, a), b in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b), (name, (a - b).abs().max())
    changed = _model(0)
    assert not torch.equal(changed[2].weight, ours[2].weight)  # it did train


def test_adamw_rejects_bad_settings() -> None:
    params = list(_model(0).parameters())
    with pytest.raises(ValueError, match="lr must be > 0"):
        AdamW(params, lr=0.0)
    with pytest.raises(ValueError, match="betas"):
        AdamW(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="no trainable parameters"):
        AdamW([p.detach() for p in params])
    with pytest.raises(ValueError, match="complex"):
        AdamW([torch.zeros(2, dtype=torch.complex64, requires_grad=True)])


def test_training_imports_neither_torch_optim_nor_dynamo() -> None:
    """The point of the module: a training step does not import torch._dynamo."""
    code = (
        "import sys, torch\n"
        "from attnbench.training.optim import AdamW\n"
        "m = torch.nn.Linear(4, 2); opt = AdamW(m.parameters(), warmup_steps=2)\n"
        "for _ in range(3):\n"
        "    opt.zero_grad(); m(torch.randn(3, 4)).sum().backward(); opt.step()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
