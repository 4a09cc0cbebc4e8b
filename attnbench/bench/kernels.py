"""The code `attnbench bench` times: each variant built through the registry, and the references
it declares (``Attention.references``: ``naive``, ``bare``, ``plain``, ``torch``), each as a
`Runner` on fixed inputs, on the plan's device and in ``bench.dtype``: one forward and one
backward (``bench.mode=train``, each a phase timed on its own) or one inference forward
(``forward``); under ``bench.causal`` the variant gets the causal mask a decoder hands it and
each reference its causal form (``Reference.causal``). Decoding cases are decode.py's.

Notation: B batch, T sequence length (queries = keys = T), D width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from attnbench.attention.base import Attention
from attnbench.bench.device import DTYPES
from attnbench.bench.plan import KINDS, BenchSettings, Case, not_benched


def build_module(node: Mapping[str, Any], settings: BenchSettings, device: str = "cpu"
                 ) -> Attention:
    """The variant of config `node` at width ``bench.dim``, through the registry as training
    builds it (``device="meta"``: shapes only, for the cost facts)."""
    from attnbench.config.build import attention_factory
    from attnbench.config.run_config import ComponentConfig

    d = settings.dim
    with torch.device(device):
        return attention_factory(ComponentConfig.from_node(node))(d, d, d)


class Runner:
    """One call of a case on fixed random inputs (``bench.mode``: train = forward + backward,
    forward = inference forward): call it to run once, or run its ``phases`` one by one."""

    def __init__(self, fn: Callable[[], Tensor], leaves: list[Tensor], grad: Tensor,
                 mode: str = "train") -> None:
        self.fn = fn
        self.leaves = leaves
        self.grad = grad
        self.mode = mode
        self.out: Tensor | None = None

    def clear(self) -> None:
        self.out = None
        for t in self.leaves:
            t.grad = None

    def forward(self) -> None:
        """The training forward; its output is kept for ``backward``."""
        self.clear()  # every call allocates its gradients afresh, as a training step does
        self.out = self.fn()

    def backward(self) -> None:
        out, self.out = self.out, None
        if out is not None and out.requires_grad:
            out.backward(self.grad)

    def infer(self) -> None:
        """The forward without autograd (``torch.inference_mode``)."""
        with torch.inference_mode():
            self.fn()

    def phases(self) -> tuple[Callable[[], None], ...]:
        """What one call runs, in order, each timed on its own: (forward, backward) or (infer,)."""
        return (self.forward, self.backward) if self.mode == "train" else (self.infer,)

    def __call__(self) -> None:
        for phase in self.phases():
            phase()


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
    mode, causal = settings.mode, settings.causal
    torch.manual_seed(settings.seed)
    b, t, d = settings.batch, case.n, settings.dim
    attn = build_module(node, settings).eval()  # eval: dropout off
    drawn = [torch.randn(b, t, d) for _ in range(1 if settings.inputs == "self" else 3)]
    grad = torch.randn(b, t, int(attn.out_dim))  # (B, T, out_dim)
    ref = type(attn).references.get(case.kind)
    module = ref.peer(attn) if ref is not None and ref.peer is not None else attn
    module.to(device=dev, dtype=dtype)
    train = mode == "train"  # inference: no input asks for a gradient (nor hooks one)
    given = [x.to(device=dev, dtype=dtype).requires_grad_(train) for x in drawn]  # (B, T, D)
    q, k, v = given * 3 if len(given) == 1 else given  # self-attention: one tensor, three roles
    extra = {"causal": True} if causal else {}  # a reference's causal form (Reference.causal)
    if ref is not None and ref.inputs is not None:  # its own leaves, e.g. multihead's heads
        inputs = tuple(x.requires_grad_(train) for x in ref.inputs(module, q, k, v))
        return Runner(  # SDPA: output shape = query's
            lambda: ref.fn(module, *inputs, **extra), list(inputs), torch.randn_like(inputs[0]),
            mode,
        )
    if ref is not None:
        fn = lambda: ref.fn(module, q, k, v, **extra)  # noqa: E731
    else:  # the causal mask a decoder's self-attention hands the variant: (1, T, T), built once
        mask = torch.ones(t, t, dtype=torch.bool, device=dev).tril()[None] if causal else None
        fn = lambda: module(q, k, v, mask)[0]  # noqa: E731
    return Runner(fn, [*given, *module.parameters()], grad.to(device=dev, dtype=dtype), mode)


def cases_for(variant: str, n: int, settings: BenchSettings) -> list[Case]:
    """The variant's case at length `n`, then the references it declares that the settings ask
    for (none when decoding; under ``bench.causal`` only those with a causal form); nothing for
    a case ``skipped`` names."""
    gone = skipped(variant, settings)
    if variant in gone:
        return []
    kinds = ["variant", *(k for k in _wanted(variant, settings)
                          if Case(variant, k, n).label not in gone)]
    return [Case(variant, k, n) for k in kinds]


def _wanted(variant: str, settings: BenchSettings) -> list[str]:
    """The reference kinds the variant declares that the settings ask for, in KINDS order."""
    from attnbench.attention import ATTENTION

    if settings.mode == "decode":
        return []
    declared = ATTENTION.get(variant).references
    wanted = {
        "bare": settings.bare,
        "plain": settings.bare,
        "torch": settings.bare,
        "naive": settings.naive,
    }
    return [k for k in KINDS[1:] if wanted[k] and k in declared]


def skipped(variant: str, settings: BenchSettings) -> dict[str, str]:
    """Case label -> why the settings skip it at every length: the variant itself
    (`plan.not_benched`: no causal form under ``bench.causal``, the baseline when decoding), or,
    under ``bench.causal``, a reference without a causal form."""
    from attnbench.attention import ATTENTION

    why = not_benched(variant, settings)
    if why is not None:
        return {variant: f"skipped: {variant} {why}"}
    if not settings.causal:
        return {}
    references = ATTENTION.get(variant).references
    return {Case(variant, k, 0).label: "skipped: this reference has no causal form"
            for k in _wanted(variant, settings) if not references[k].causal}
