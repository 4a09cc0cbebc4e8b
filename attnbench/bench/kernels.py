"""The code `attnbench bench` times: each variant built through the registry, and the references
it declares (``Attention.references``: ``naive``, ``bare``, ``plain``, ``torch``), each as a
`Runner` doing one forward+backward on fixed inputs, on the plan's device and in ``bench.dtype``.

Notation: B batch, T sequence length (queries = keys = T), D width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from attnbench.attention.base import Attention
from attnbench.bench.device import DTYPES
from attnbench.bench.plan import KINDS, BenchSettings, Case


def build_module(node: Mapping[str, Any], settings: BenchSettings, device: str = "cpu"
                 ) -> Attention:
    """The variant of config `node` at width ``bench.dim``, through the registry as training
    builds it (``device="meta"``: shapes only, for the cost facts)."""
    from attnbench.config.build import attention_factory
    from attnbench.config.schema import ComponentConfig

    d = settings.dim
    with torch.device(device):
        return attention_factory(ComponentConfig.from_node(node))(d, d, d)


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
    dev, dtype = torch.device(device), DTYPES[settings.dtype]
    torch.manual_seed(settings.seed)
    b, t, d = settings.batch, case.n, settings.dim
    attn = build_module(node, settings).eval()  # eval: dropout off
    drawn = [torch.randn(b, t, d) for _ in range(1 if settings.inputs == "self" else 3)]
    grad = torch.randn(b, t, int(attn.out_dim))  # (B, T, out_dim)
    ref = type(attn).references.get(case.kind)
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
    """The variant's case at length `n`, then the references it declares that the settings ask
    for."""
    from attnbench.attention import ATTENTION

    declared = ATTENTION.get(variant).references
    kinds = ["variant"]
    wanted = {
        "bare": settings.bare,
        "plain": settings.bare,
        "torch": settings.bare,
        "naive": settings.naive,
    }
    kinds += [k for k in KINDS[1:] if wanted[k] and k in declared]
    return [Case(variant, k, n) for k in kinds]
