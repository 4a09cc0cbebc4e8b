"""Every attention variant against the contract in attnbench/attention/base.py.

Variants are found by globbing conf/attention/*.yaml and built exactly as a run builds them:
``ATTENTION.get(yaml["name"])(d_query, d_key, d_value, **rest_of_yaml)``. A new YAML is therefore
tested automatically. Reference checks compare each variant with its paper formula computed by
hand (or with ``torch.nn.MultiheadAttention``) from the module's own weights.

Notation: B batch, TQ query length, TK key length, DQ/DK/DV widths.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode

from attnbench.attention import ATTENTION
from attnbench.attention.additive import additive_scores, additive_scores_naive
from attnbench.attention.base import CONTEXT_ARGS, Attention, Call
from attnbench.registry import check_params, params_of
from tests.attention.helpers import LargestFloatTensor

CONF = Path(__file__).resolve().parents[2] / "conf" / "attention"
YAMLS = sorted(CONF.glob("*.yaml"))
B, TQ, TK, DQ, DK, DV = 3, 5, 7, 16, 16, 8
TOL = 1e-5


def load_yaml(path: Path) -> tuple[str, dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    params = dict(data)
    return params.pop("name"), params


def build(path: Path, dq: int = DQ, dk: int = DK, dv: int = DV, **override: Any) -> nn.Module:
    name, params = load_yaml(path)
    torch.manual_seed(0)
    return ATTENTION.get(name)(dq, dk, dv, **{**params, **override}).eval()


def inputs(
    b: int = B, tq: int = TQ, tk: int = TK, dq: int = DQ, dk: int = DK, dv: int = DV, seed: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, tq, dq, generator=g, requires_grad=True)  # (B, TQ, DQ)
    k = torch.randn(b, tk, dk, generator=g, requires_grad=True)  # (B, TK, DK)
    v = torch.randn(b, tk, dv, generator=g, requires_grad=True)  # (B, TK, DV)
    return q, k, v


def ragged_mask(b: int = B, tq: int = TQ, tk: int = TK) -> Tensor:
    """(B, TQ, TK): random holes, key padding in batch 1, one fully masked row (0, 1)."""
    g = torch.Generator().manual_seed(2)
    mask = torch.rand(b, tq, tk, generator=g) > 0.4
    mask[:, :, 0] = True  # at least one key per row...
    mask[1, :, tk - 3 :] = False  # key padding
    mask[0, 1] = False  # ...except this row
    return mask


def grads(tensors: list[Tensor]) -> list[Tensor]:
    return [t.grad.clone() if t.grad is not None else torch.zeros_like(t) for t in tensors]


def zero_grads(module: nn.Module, tensors: list[Tensor]) -> None:
    module.zero_grad(set_to_none=True)
    for t in tensors:
        t.grad = None


@pytest.fixture(params=YAMLS, ids=lambda p: p.stem)
def conf(request: pytest.FixtureRequest) -> Path:
    return request.param


# --- registry, YAML and contract attributes ---------------------------------------------------


def test_conf_folder_has_yamls() -> None:
    assert YAMLS, f"no attention YAML found under {CONF}"


def test_every_registered_name_has_a_yaml_and_vice_versa() -> None:
    yaml_names = {load_yaml(p)[0] for p in YAMLS}
    assert yaml_names == set(ATTENTION.names())


def test_yaml_matches_constructor(conf: Path) -> None:
    name, params = load_yaml(conf)
    first = conf.read_text().splitlines()[0]
    assert first.startswith("# ") and f"attention={name}" in first, first
    assert conf.stem == name
    cls = ATTENTION.get(name)
    assert check_params(cls, params, "attention", CONTEXT_ARGS) == []
    allowed = params_of(cls, CONTEXT_ARGS)
    assert set(params) == set(allowed), "YAML keys must be exactly the constructor's kwargs"
    for key, value in params.items():
        assert allowed[key].kind is allowed[key].KEYWORD_ONLY, key
        assert allowed[key].default == value, f"{name}.{key}: YAML and default disagree"


def test_contract_attributes(conf: Path) -> None:
    """The facts of attention/base.py: declared with the right types, widths kept, a module
    docstring with the notation legend (base.py's contract, STYLE item 3)."""
    attn = build(conf)
    cls = type(attn)
    assert isinstance(attn, Attention)
    assert cls.name == conf.stem
    assert cls.baseline is (cls.name == "none")
    for fact in ("projects", "fused", "materialises", "equal_widths", "bounded_in_bf16"):
        assert isinstance(getattr(cls, fact), bool), fact
    assert not (cls.fused and cls.materialises), "a fused fast path materialises no scores"
    assert isinstance(cls.reference, str) and len(cls.reference) > 10
    assert set(cls.references) <= {"naive", "bare", "plain", "torch"}
    assert (attn.d_query, attn.d_key, attn.d_value) == (DQ, DK, DV)
    assert isinstance(attn.out_dim, int) and attn.out_dim > 0
    call = Call(B, TQ, TK)
    assert attn.memory_bytes(call) >= 0 and attn.memory_bytes(call, "naive") >= 0
    flops = attn.flops(call)
    assert flops is None or flops > 0
    limit = attn.length_limit()
    assert limit is None or (isinstance(limit[0], str) and limit[1] >= 1)
    doc = sys.modules[cls.__module__].__doc__
    assert doc and "Notation" in doc, "module docstring needs the notation legend"


def test_a_variant_that_says_it_does_not_materialise_does_not(conf: Path) -> None:
    """``materialises = False``: no float tensor as large as one (B, T, T) score matrix in a
    training forward+backward of self-attention (unmasked: a bool mask SDPA turns into a float
    one, (B, 1, T, T), which ``memory_bytes`` counts apart)."""
    b, t, d = 2, 128, 8
    attn = build(conf, dq=d, dk=d, dv=d).train()
    if attn.materialises:
        pytest.skip(f"{conf.stem} materialises its scores")
    x = torch.randn(b, t, d, requires_grad=True)
    with LargestFloatTensor() as seen:
        ctx, _ = attn(x, x, x)
        if ctx.requires_grad:
            ctx.square().sum().backward()
    assert seen.numel < b * t * t, (seen.numel, b * t * t)


# --- shapes, masks, distributions ------------------------------------------------------------


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_shapes(conf: Path, need_weights: bool, masked: bool) -> None:
    attn = build(conf)
    q, k, v = inputs()
    ctx, w = attn(q, k, v, mask=ragged_mask() if masked else None, need_weights=need_weights)
    assert ctx.shape == (B, TQ, attn.out_dim)
    if need_weights and not attn.baseline:
        assert w is not None and w.shape == (B, TQ, TK)
    else:
        assert w is None


@pytest.mark.parametrize(
    "mask",
    [
        torch.ones(B, 1, TK, dtype=torch.bool).index_fill_(2, torch.tensor([5, 6]), False),
        torch.ones(TQ, TK, dtype=torch.bool).tril_(),  # causal-style (TQ, TK)
    ],
    ids=["key-padding(B,1,TK)", "(TQ,TK)"],
)
def test_broadcast_masks(conf: Path, mask: Tensor) -> None:
    attn = build(conf)
    q, k, v = inputs()
    for need_weights in (False, True):
        ctx, w = attn(q, k, v, mask=mask, need_weights=need_weights)
        ref, _ = attn(q, k, v, mask=mask.expand(B, TQ, TK).clone(), need_weights=need_weights)
        torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)


def test_non_bool_mask_is_refused(conf: Path) -> None:
    attn = build(conf)
    with pytest.raises(TypeError, match="bool"):
        attn(*inputs(), mask=torch.ones(B, TQ, TK))


def test_weights_are_distributions_and_masked_keys_get_zero(conf: Path) -> None:
    attn = build(conf)
    mask = ragged_mask()
    _, w = attn(*inputs(), mask=mask, need_weights=True)
    if attn.baseline:
        assert w is None
        return
    rows = mask.any(dim=-1)  # (B, TQ)
    torch.testing.assert_close(w.sum(-1)[rows], torch.ones(int(rows.sum())), atol=TOL, rtol=0)
    assert (w[~mask] == 0).all(), "masked keys must get exactly zero weight"
    assert (w[~rows] == 0).all(), "a fully masked row must give all-zero weights"
    assert (w >= 0).all()


@pytest.mark.parametrize("need_weights", [False, True])
def test_fully_masked_row_gives_zero_and_no_nan(conf: Path, need_weights: bool) -> None:
    attn = build(conf)
    q, k, v = inputs()
    mask = ragged_mask()
    ctx, w = attn(q, k, v, mask=mask, need_weights=need_weights)
    assert torch.isfinite(ctx).all()
    assert (ctx[0, 1] == 0).all(), "a row with nothing to attend to must give a zero context"
    loss = ctx.square().sum() + (w.square().sum() if w is not None else 0)
    if loss.requires_grad:
        loss.backward()
    for t in [q, k, v, *attn.parameters()]:
        assert t.grad is None or torch.isfinite(t.grad).all()
    if q.grad is not None and not attn.projects:  # the empty row's query influences nothing
        assert (q.grad[0, 1] == 0).all()


@pytest.mark.parametrize("masked", [False, True])
def test_fast_path_equals_weights_path(conf: Path, masked: bool) -> None:
    attn = build(conf)
    q, k, v = inputs()
    mask = ragged_mask() if masked else None
    tensors = [q, k, v, *attn.parameters()]
    results = []
    for need_weights in (False, True):
        zero_grads(attn, [q, k, v])
        ctx, _ = attn(q, k, v, mask=mask, need_weights=need_weights)
        if ctx.requires_grad:
            ctx.square().sum().backward()
        results.append((ctx.detach(), grads(tensors)))
    (fast, g_fast), (slow, g_slow) = results
    torch.testing.assert_close(fast, slow, atol=TOL, rtol=0)
    for a, b in zip(g_fast, g_slow, strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_fast_path_does_not_materialise_weights(
    conf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"sdpa": 0, "softmax": 0}
    sdpa = F.scaled_dot_product_attention
    softmax = torch.softmax

    def counting_sdpa(*args: Any, **kwargs: Any) -> Tensor:
        calls["sdpa"] += 1
        return sdpa(*args, **kwargs)

    def counting_softmax(*args: Any, **kwargs: Any) -> Tensor:
        calls["softmax"] += 1
        return softmax(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting_sdpa)
    monkeypatch.setattr(torch, "softmax", counting_softmax)
    monkeypatch.setattr(F, "softmax", counting_softmax)
    attn = build(conf)
    _, w = attn(*inputs(), mask=ragged_mask())
    assert w is None
    if attn.fused:
        assert calls == {"sdpa": 1, "softmax": 0}, calls
    else:  # e.g. additive: no fused kernel exists for its score, but SDPA alone is never mixed in
        assert calls["sdpa"] == 0 or calls["softmax"] == 0, calls
    calls.update(sdpa=0, softmax=0)
    attn(*inputs(), mask=ragged_mask(), need_weights=True)
    if attn.fused:
        assert calls["sdpa"] == 0 and calls["softmax"] == 1, calls


@pytest.mark.parametrize("masked", [False, True])
def test_fast_path_fits_a_fused_kernel(conf: Path, masked: bool) -> None:
    """SDPA gets shapes a fused (flash) kernel accepts, so it does not fall back to the maths."""
    attn = build(conf, dv=DK)  # PyTorch's fused CPU kernel needs equal key and value widths
    if not attn.fused:
        pytest.skip(f"{conf.stem} has no fused path")
    q, k, v = inputs(dv=DK)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        ctx, _ = attn(q, k, v, mask=ragged_mask() if masked else None)
        ctx.sum().backward()
    ref, _ = attn(q, k, v, mask=ragged_mask() if masked else None, need_weights=True)
    torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)


def test_dropout_is_honoured_by_both_paths(conf: Path) -> None:
    attn = build(conf)
    if "dropout" not in params_of(type(attn), CONTEXT_ARGS):
        pytest.skip(f"{conf.stem} has no dropout")
    attn = build(conf, dropout=0.5).train()
    q, k, v = inputs()
    for need_weights in (False, True):
        torch.manual_seed(0)
        ctx, w = attn(q, k, v, mask=ragged_mask(), need_weights=need_weights)
        ref, _ = attn.eval()(q, k, v, mask=ragged_mask())
        attn.train()
        assert torch.isfinite(ctx).all() and not torch.allclose(ctx, ref)
        if w is not None:  # the returned weights stay a distribution
            torch.testing.assert_close(w.sum(-1)[0, 0], torch.tensor(1.0), atol=TOL, rtol=0)


def test_the_equal_widths_fact_holds(conf: Path) -> None:
    """``equal_widths``: other query and key widths are refused in one line naming the variants
    that take them; without it, they work."""
    name, params = load_yaml(conf)
    cls = ATTENTION.get(name)
    if cls.equal_widths:
        with pytest.raises(ValueError, match="d_query must equal d_key") as err:
            cls(DQ, DK - 4, DV, **params)
        takers = [n for n in ATTENTION.names()
                  if not (ATTENTION.get(n).equal_widths or ATTENTION.get(n).baseline)]
        assert all(f"'{n}'" in str(err.value) for n in takers), err.value
    else:
        attn = cls(DQ, DK - 4, DV, **params).eval()
        ctx, _ = attn(*inputs(dk=DK - 4), mask=ragged_mask())
        assert ctx.shape == (B, TQ, attn.out_dim)


def test_wrong_sized_widths_are_refused(conf: Path) -> None:
    name, params = load_yaml(conf)
    with pytest.raises(ValueError, match="d_value.*>= 1.*0"):
        ATTENTION.get(name)(DQ, DK, 0, **params)


# --- causality: a causal language model's mixer ---------------------------------------------


@pytest.mark.parametrize("t", [9, 64], ids=["short", "long"])  # 64: local's blocked fast path
@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "weights"])
def test_a_causal_mask_hides_later_positions(conf: Path, need_weights: bool, t: int) -> None:
    """``causal``: self-attention under a causal mask (with key padding) — new values from
    position p on change no output before p, and do change the output at p."""
    attn = build(conf, dq=DK, dk=DK, dv=DK)
    if not attn.causal:
        pytest.skip(f"{conf.stem} declares no causal form (causal = False)")
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, t, DK, generator=g)
    keep = torch.ones(2, t, dtype=torch.bool)
    keep[1, 2] = False  # a padded key in the second row
    mask = torch.ones(t, t, dtype=torch.bool).tril()[None] & keep[:, None, :]
    p = t - 3
    y = x.clone()
    y[:, p:] = torch.randn(2, t - p, DK, generator=g)
    before, _ = attn(x, x, x, mask=mask, need_weights=need_weights)  # query is key: self-attention
    after, _ = attn(y, y, y, mask=mask, need_weights=need_weights)
    torch.testing.assert_close(after[:, :p], before[:, :p], atol=1e-6, rtol=0)
    if not attn.baseline:
        assert not torch.allclose(after[:, p], before[:, p], atol=1e-4)


# --- per-variant references ------------------------------------------------------------------

DOT_YAML = CONF / "dot.yaml"
SCALED_YAML = CONF / "scaled.yaml"
ADDITIVE_YAML = CONF / "additive.yaml"
MULTIHEAD_YAML = CONF / "multihead.yaml"
NONE_YAML = CONF / "none.yaml"


def by_hand_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


def key_padding() -> Tensor:
    """(B, 1, TK) True = real key; every batch keeps at least one key."""
    lengths = torch.tensor([TK, TK - 3, 2])
    return (torch.arange(TK)[None, :] < lengths[:, None])[:, None, :]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(("path", "scale"), [(DOT_YAML, 1.0), (SCALED_YAML, 1 / math.sqrt(DK))])
def test_dot_and_scaled_match_the_formula(path: Path, scale: float, masked: bool) -> None:
    attn = build(path)
    q, k, v = inputs()
    mask = key_padding() if masked else None
    ref = by_hand_softmax(q @ k.transpose(1, 2) * scale, mask) @ v  # softmax(QKᵀ·s)V
    for need_weights in (False, True):
        ctx, _ = attn(q, k, v, mask=mask, need_weights=need_weights)
        torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)


def test_dot_family_needs_equal_query_and_key_widths() -> None:
    for name in ("dot", "scaled"):
        with pytest.raises(ValueError, match="d_query=16, d_key=8"):
            ATTENTION.get(name)(16, 8, 8)


def additive_by_hand(
    attn: nn.Module, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None
) -> Tensor:
    """softmax_j(vᵀ tanh(W q_i + U k_j + b)) v_j, with the full (B, TQ, TK, Hd) tensor."""
    wq = q @ attn.W.weight.T  # (B, TQ, Hd)
    uk = k @ attn.U.weight.T + attn.U.bias  # (B, TK, Hd)
    e = torch.tanh(wq[:, :, None, :] + uk[:, None, :, :]) @ attn.v.weight[0]  # (B, TQ, TK)
    return by_hand_softmax(e, mask) @ v


@pytest.mark.parametrize("chunk_bytes", [None, 1, 3 * 7 * 16 * 4 * 2])  # default, 1 row, 2 rows
@pytest.mark.parametrize("dk", [DK, 12])
def test_additive_matches_the_formula_and_its_gradients(chunk_bytes: int | None, dk: int) -> None:
    kw = {} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}
    attn = build(ADDITIVE_YAML, dk=dk, **kw)
    q, k, v = inputs(dk=dk)
    mask = key_padding()
    tensors = [q, k, v, *attn.parameters()]
    ctx, _ = attn(q, k, v, mask=mask)
    ctx.square().sum().backward()
    got = grads(tensors)
    zero_grads(attn, [q, k, v])
    ref = additive_by_hand(attn, q, k, v, mask)
    ref.square().sum().backward()
    torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)
    for a, b in zip(got, grads(tensors), strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_additive_hidden_width() -> None:
    assert build(ADDITIVE_YAML, hidden=0).W.out_features == DQ
    assert build(ADDITIVE_YAML, hidden=24).U.out_features == 24


def test_additive_chunked_scores_gradcheck() -> None:
    g = torch.Generator().manual_seed(3)
    wq = torch.randn(2, 5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    uk = torch.randn(2, 4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    vv = torch.randn(3, dtype=torch.float64, generator=g, requires_grad=True)
    for budget in (1, 2 * 4 * 3 * 8 * 2):  # 1 row per chunk; 2 rows (last chunk shorter)
        torch.testing.assert_close(
            additive_scores(wq, uk, vv, budget), additive_scores_naive(wq, uk, vv)
        )
        assert torch.autograd.gradcheck(
            lambda a, b, c, n=budget: additive_scores(a, b, c, n), (wq, uk, vv)
        )


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor):
                self.numel = max(self.numel, t.numel())
        return out


def test_additive_chunking_bounds_every_intermediate() -> None:
    b, tq, tk, hd = 2, 32, 16, 8
    pairs = b * tq * tk  # the (B, TQ, TK) scores/weights are expected
    budget = b * 4 * tk * hd * 4  # 4 query rows of float32 hidden units per chunk
    sizes = {}
    for label, chunk_bytes in (("chunked", budget), ("naive", 2**40)):
        attn = build(ADDITIVE_YAML, dq=hd, dk=hd, dv=hd, chunk_bytes=chunk_bytes).train()
        q, k, v = inputs(b, tq, tk, hd, hd, hd)
        with _LargestTensor() as seen:
            ctx, _ = attn(q, k, v)
            ctx.sum().backward()
        sizes[label] = seen.numel
    assert sizes["naive"] == pairs * hd  # the detector sees the broadcast...
    assert sizes["chunked"] <= max(pairs, budget // 4), sizes  # ...and chunking removes it


def test_multihead_heads_must_divide_width() -> None:
    with pytest.raises(ValueError, match=r"d_query=16.*heads=3.*1, 2, 4, 8, 16"):
        build(MULTIHEAD_YAML, heads=3)
    assert build(MULTIHEAD_YAML).out_dim == DQ


@pytest.mark.parametrize("dims", [(16, 16, 16), (16, 12, 10)], ids=["packed", "kdim-vdim"])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_multihead_equals_torch_mha(dims: tuple[int, int, int], padded: bool, bias: bool) -> None:
    dq, dk, dv = dims
    heads = 4
    torch.manual_seed(5)
    mha = nn.MultiheadAttention(dq, heads, kdim=dk, vdim=dv, bias=bias, batch_first=True).eval()
    ours = build(MULTIHEAD_YAML, dq=dq, dk=dk, dv=dv, heads=heads)
    ours.load_from_torch_mha(mha)
    q, k, v = inputs(dq=dq, dk=dk, dv=dv)
    valid = key_padding() if padded else None  # (B, 1, TK), True = real key
    ref, ref_w = mha(q, k, v, key_padding_mask=None if valid is None else ~valid[:, 0])
    for need_weights in (False, True):
        ctx, w = ours(q, k, v, mask=valid, need_weights=need_weights)
        torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)
        if need_weights:
            torch.testing.assert_close(w, ref_w, atol=TOL, rtol=0)


def test_multihead_refuses_a_mismatched_torch_mha() -> None:
    with pytest.raises(ValueError, match="num_heads=2"):
        build(MULTIHEAD_YAML).load_from_torch_mha(nn.MultiheadAttention(DQ, 2, batch_first=True))


def test_none_returns_zeros_and_no_weights() -> None:
    attn = build(NONE_YAML)
    q, k, v = inputs()
    for need_weights in (False, True):
        ctx, w = attn(q, k, v, mask=ragged_mask(), need_weights=need_weights)
        assert w is None
        assert ctx.shape == (B, TQ, DV) and (ctx == 0).all()


@pytest.mark.parametrize(
    ("name", "dims", "kwargs", "match"),
    [
        ("dot", (DQ, DK, DV), {"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ("scaled", (DQ, DK, DV), {"dropout": -0.1}, r"dropout must be in \[0, 1\), got -0.1"),
        ("additive", (DQ, DK, DV), {"hidden": -1}, "hidden must be >= 0"),
        ("additive", (DQ, DK, DV), {"chunk_bytes": 0}, "chunk_bytes must be a positive"),
        ("additive", (DQ, DK, DV), {"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
        ("multihead", (DQ, DK, DV), {"heads": 0}, "heads must be >= 1, got 0"),
        ("multihead", (DQ, DK, DV), {"heads": 5}, "d_query=16 must be divisible by heads=5"),
        ("multihead", (DQ, DK, DV), {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ("none", (0, DK, DV), {}, "d_query must be a positive width"),
    ],
)
def test_invalid_constructor_values(
    name: str, dims: tuple[int, int, int], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        ATTENTION.get(name)(*dims, **kwargs)
