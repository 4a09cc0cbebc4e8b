"""The code `attnbench bench` times: each variant built through the registry, and its references
(``naive``, ``bare``, ``plain``, ``torch``), each as a `Runner` doing one forward+backward on fixed
inputs, on the plan's device and in ``bench.dtype``.

Notation: B batch, T sequence length (queries = keys = T), D width, H heads, Dh = D / H per-head
width, Hd the additive scorer's hidden width, R lowrank's projected rows, w local's window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.bench.device import DTYPES
from attnbench.bench.plan import KINDS, BenchSettings, Case


# -- the references ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """What a reference case times: ``fn(attn, *inputs)``. ``inputs`` turns the case's random
    (B, T, D) queries, keys and values into the tensors the timed call takes (its gradient leaves);
    None means it takes them as they are and returns the variant's (B, T, out_dim) output."""

    fn: Callable[..., Tensor]
    inputs: Callable[[Any, Tensor, Tensor, Tensor], tuple[Tensor, ...]] | None = None
    # A peer module (PyTorch's own implementation) built from the variant's weights: ``fn`` gets
    # it instead of the variant, and its parameters are the gradient leaves.
    peer: Callable[[Any], nn.Module] | None = None


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


def _general_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return _dot_naive(attn.dot, q, attn.W(k), v)  # qᵀ(W k), scale 1


def _cosine_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    from attnbench.attention.cosine import EPS

    beta = torch.exp(-attn.log_temperature)  # 1/τ
    qn = F.normalize(q, dim=-1, eps=EPS) * beta  # (B, T, D)
    return _dot_naive(attn.dot, qn, F.normalize(k, dim=-1, eps=EPS), v)


def _linear_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    from attnbench.attention.linear import feature_map

    sim = feature_map(q) @ feature_map(k).transpose(1, 2)  # (B, T, T): φ(Q)φ(K)ᵀ, positive
    return sim / sim.sum(dim=-1, keepdim=True) @ v  # row-normalised, (B, T, D)


def _lowrank_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    t = k.shape[1]
    e = torch.softmax(attn.key_logits[:, :t], dim=-1)  # E: (R, T), rows over positions
    f = torch.softmax(attn.value_logits[:, :t], dim=-1)  # F: (R, T)
    ek, fv = e @ k, f @ v  # (B, R, D) each: the projected keys and values
    weights = torch.softmax(q @ ek.transpose(1, 2) * attn.scale, dim=-1)  # (B, T, R)
    return weights @ fv  # (B, T, D)


def _local_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    from attnbench.attention.local import band_mask

    qh, kh, vh = _heads(attn, q, k, v)
    scores = qh @ kh.transpose(-2, -1) / qh.shape[-1] ** 0.5  # (B, H, T, T)
    if q is k:  # the window applies to self-attention only, as in the variant
        scores = scores.masked_fill(~band_mask(q.shape[1], attn.window, q.device), float("-inf"))
    return _merge(attn, torch.softmax(scores, dim=-1) @ vh)


def _torch_mha(attn: Any) -> nn.Module:
    """``nn.MultiheadAttention`` with multihead's width, heads and weights (batch_first; the
    packed (3D, D) in-projection, as PyTorch builds it when query, key and value widths match)."""
    d = attn.d_model
    mha = nn.MultiheadAttention(d, attn.heads, dropout=attn.dropout, batch_first=True)
    with torch.no_grad():
        projs = (attn.q_proj, attn.k_proj, attn.v_proj)
        mha.in_proj_weight.copy_(torch.cat([p.weight for p in projs]))  # (3D, D)
        mha.in_proj_bias.copy_(torch.cat([p.bias for p in projs]))  # (3D,)
        mha.out_proj.weight.copy_(attn.out_proj.weight)
        mha.out_proj.bias.copy_(attn.out_proj.bias)
    return mha.eval()


def _torch_mha_call(mha: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return mha(q, k, v, need_weights=False)[0]  # (B, T, D)


# bare: one SDPA call on the tensors the variant's own SDPA call sees (multihead: its projected
# heads), the floor; plain: the whole variant as plain torch calls; torch: PyTorch's own
# module for the variant, same weights; naive: every intermediate materialised.
REFERENCES: dict[tuple[str, str], Reference] = {
    ("dot", "naive"): Reference(_dot_naive),
    ("dot", "bare"): Reference(_dot_bare),
    ("scaled", "naive"): Reference(_dot_naive),
    ("scaled", "bare"): Reference(_dot_bare),
    ("general", "naive"): Reference(_general_naive),
    ("cosine", "naive"): Reference(_cosine_naive),
    ("multihead", "naive"): Reference(_multihead_naive),
    ("multihead", "plain"): Reference(_multihead_plain),
    ("multihead", "bare"): Reference(_sdpa, _projected_heads),
    ("multihead", "torch"): Reference(_torch_mha_call, peer=_torch_mha),
    ("additive", "naive"): Reference(_additive_naive),
    ("linear", "naive"): Reference(_linear_naive),
    ("lowrank", "naive"): Reference(_lowrank_naive),
    ("local", "naive"): Reference(_local_naive),
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


def build_runner(
    case: Case, node: Mapping[str, Any], settings: BenchSettings, device: str = "cpu"
) -> Runner:
    """Build the variant through the registry (as training does) and its inputs, seeded.

    Weights and inputs are drawn on the CPU in float32 (the same numbers on every device), then
    moved to ``device`` and cast to ``bench.dtype``. ``bench.inputs=self`` passes one (B, T, D)
    tensor as query, key and value (a Transformer's self-attention, the only input ``local``
    applies its window to); ``separate`` passes three independent ones.
    """
    from attnbench.config.build import attention_factory
    from attnbench.config.schema import ComponentConfig

    dev, dtype = torch.device(device), DTYPES[settings.dtype]
    torch.manual_seed(settings.seed)
    b, t, d = settings.batch, case.n, settings.dim
    spec = ComponentConfig.from_node(node)
    attn: nn.Module = attention_factory(spec)(d, d, d).eval()  # eval: dropout off
    drawn = [torch.randn(b, t, d) for _ in range(1 if settings.inputs == "self" else 3)]
    grad = torch.randn(b, t, int(attn.out_dim))  # (B, T, out_dim)
    ref = REFERENCES.get((case.variant, case.kind))
    module = ref.peer(attn) if ref is not None and ref.peer is not None else attn
    module.to(device=dev, dtype=dtype)
    given = [x.to(device=dev, dtype=dtype).requires_grad_() for x in drawn]  # (B, T, D) each
    q, k, v = given * 3 if len(given) == 1 else given  # self-attention: one tensor, three roles
    if ref is not None and ref.inputs is not None:  # its own leaves, e.g. multihead's heads
        inputs = ref.inputs(module, q, k, v)
        return Runner(  # SDPA: output shape = query's
            lambda: ref.fn(module, *inputs), list(inputs), torch.randn_like(inputs[0])
        )
    fn = (lambda: module(q, k, v)[0]) if ref is None else (lambda: ref.fn(module, q, k, v))
    return Runner(fn, [*given, *module.parameters()], grad.to(device=dev, dtype=dtype))


def cases_for(variant: str, n: int, settings: BenchSettings) -> list[Case]:
    """The variant's case at length `n`, then the references it has that the settings ask for."""
    kinds = ["variant"]
    wanted = {
        "bare": settings.bare,
        "plain": settings.bare,
        "torch": settings.bare,
        "naive": settings.naive,
    }
    kinds += [k for k in KINDS[1:] if wanted[k] and (variant, k) in REFERENCES]
    return [Case(variant, k, n) for k in kinds]
