"""The code `attnbench bench` times: each variant built through the registry, and its references
(``naive``, ``bare``, ``plain``), each as a `Runner` doing one forward+backward on fixed inputs.

Notation: B batch, T sequence length (queries = keys = T), D width, H heads, Dh = D / H per-head
width, Hd the additive scorer's hidden width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.bench.plan import KINDS, BenchSettings, Case


# -- the references ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """What a reference case times: ``fn(attn, *inputs)``. ``inputs`` turns the case's random
    (B, T, D) queries, keys and values into the tensors the timed call takes (its gradient leaves);
    None means it takes them as they are and returns the variant's (B, T, out_dim) output."""

    fn: Callable[..., Tensor]
    inputs: Callable[[Any, Tensor, Tensor, Tensor], tuple[Tensor, ...]] | None = None


def _dot_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    weights = torch.softmax(q @ k.transpose(1, 2) * attn.scale, dim=-1)  # (B, T, T)
    return weights @ v  # (B, T, D)


def _dot_bare(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    # (B, 1, T, D): PyTorch's fused CPU kernel takes 4-D inputs only
    return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=attn.scale)[
        :, 0
    ]


def _heads(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    b, t, d = q.shape
    h = attn.heads
    split = [
        F.linear(x, p.weight, p.bias).view(b, -1, h, d // h).transpose(1, 2)  # (B, H, T, Dh)
        for x, p in ((q, attn.q_proj), (k, attn.k_proj), (v, attn.v_proj))
    ]
    return split[0], split[1], split[2]


def _projected_heads(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, ...]:
    """The (B, H, T, Dh) tensors multihead hands its SDPA call, as fresh leaves (same strides)."""
    with torch.no_grad():
        return tuple(x.requires_grad_() for x in _heads(attn, q, k, v))


def _merge(attn: Any, ctx: Tensor) -> Tensor:
    b, _, t, _ = ctx.shape
    ctx = ctx.transpose(1, 2).reshape(b, t, attn.d_model)  # (B, T, D)
    return F.linear(ctx, attn.out_proj.weight, attn.out_proj.bias)


def _sdpa(attn: Any, qh: Tensor, kh: Tensor, vh: Tensor) -> Tensor:
    return F.scaled_dot_product_attention(qh, kh, vh)  # (B, H, T, Dh)


def _multihead_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    qh, kh, vh = _heads(attn, q, k, v)
    weights = torch.softmax(qh @ kh.transpose(-2, -1) / qh.shape[-1] ** 0.5, dim=-1)  # (B,H,T,T)
    return _merge(attn, weights @ vh)


def _multihead_plain(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    qh, kh, vh = _heads(attn, q, k, v)
    return _merge(attn, F.scaled_dot_product_attention(qh, kh, vh))


def _additive_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    from attnbench.attention.additive import additive_scores_naive

    scores = additive_scores_naive(attn.W(q), attn.U(k), attn.v.weight[0])  # (B, T, T)
    return torch.softmax(scores, dim=-1) @ v


# bare: one SDPA call on the tensors the variant's own SDPA call sees (multihead: its projected
# heads), the floor; plain: the whole variant as plain torch calls; naive: materialised.
REFERENCES: dict[tuple[str, str], Reference] = {
    ("dot", "naive"): Reference(_dot_naive),
    ("dot", "bare"): Reference(_dot_bare),
    ("scaled", "naive"): Reference(_dot_naive),
    ("scaled", "bare"): Reference(_dot_bare),
    ("multihead", "naive"): Reference(_multihead_naive),
    ("multihead", "plain"): Reference(_multihead_plain),
    ("multihead", "bare"): Reference(_sdpa, _projected_heads),
    ("additive", "naive"): Reference(_additive_naive),
}


class Runner:
    """One forward+backward of a case on fixed random inputs: call it to run once."""

    def __init__(self, fn: Callable[[], Tensor], leaves: list[Tensor], grad: Tensor) -> None:
        self.fn = fn
        self.leaves = leaves
        self.grad = grad

    def clear(self) -> None:
        for t in self.leaves:
            t.grad = None

    def __call__(self) -> None:
        self.clear()  # every call allocates its gradients afresh, as a training step does
        out = self.fn()
        if out.requires_grad:
            out.backward(self.grad)


def build_runner(case: Case, node: Mapping[str, Any], settings: BenchSettings) -> Runner:
    """Build the variant through the registry (as training does) and its inputs, seeded."""
    from attnbench.config.build import attention_factory
    from attnbench.config.schema import ComponentConfig

    torch.manual_seed(settings.seed)
    b, t, d = settings.batch, case.n, settings.dim
    spec = ComponentConfig.from_node(node)
    attn: nn.Module = attention_factory(spec)(d, d, d).eval()  # eval: dropout off
    q, k, v = (torch.randn(b, t, d, requires_grad=True) for _ in range(3))  # (B, T, D)
    ref = REFERENCES.get((case.variant, case.kind))
    if ref is not None and ref.inputs is not None:  # its own leaves, e.g. multihead's heads
        inputs = ref.inputs(attn, q, k, v)
        return Runner(  # SDPA: output shape = query's
            lambda: ref.fn(attn, *inputs), list(inputs), torch.randn_like(inputs[0])
        )
    fn = (lambda: attn(q, k, v)[0]) if ref is None else (lambda: ref.fn(attn, q, k, v))
    return Runner(fn, [q, k, v, *attn.parameters()], torch.randn(b, t, int(attn.out_dim)))


def cases_for(variant: str, n: int, settings: BenchSettings) -> list[Case]:
    """The variant's case at length `n`, then the references it has that the settings ask for."""
    kinds = ["variant"]
    wanted = {"bare": settings.bare, "plain": settings.bare, "naive": settings.naive}
    kinds += [k for k in KINDS[1:] if wanted[k] and (variant, k) in REFERENCES]
    return [Case(variant, k, n) for k in kinds]
