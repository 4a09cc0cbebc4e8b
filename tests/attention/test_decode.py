"""Every causal variant decoded step by step (``Attention.decode``, attention/causal.py), and the
positional schemes it declares it takes inside attention (``accepts_rotary``, ``accepts_bias``).

Variants come from conf/attention/*.yaml as in test_conformance.py; ``local`` runs with a window
of 3 so that its decoding state (the last w positions) is trimmed.

Notation: B batch, T sequence length, D width, P prompt length.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from attnbench.attention.causal import Positions
from attnbench.backbones.positions import alibi_bias, rope
from tests.attention.test_conformance import YAMLS, build

B, T, D, P = 3, 11, 16, 5
SCHEMES = {
    "none": None,
    "rope": ("accepts_rotary", lambda q, k: Positions(q, k, rotate=rope)),
    "alibi": ("accepts_bias", lambda q, k: Positions(q, k, bias=alibi_bias)),
}


def variant(path: Path) -> torch.nn.Module:
    extra = {"window": 3} if path.stem == "local" else {}
    return build(path, dq=D, dk=D, dv=D, **extra)


def sequence() -> tuple[Tensor, Tensor, Tensor]:
    """x (B, T, D); keep (B, T) with row 1 left-padded by two (a decoding prompt) and row 2 by
    one; pos (B, T): each row's own positions, counted from its first real token."""
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(5))
    keep = torch.ones(B, T, dtype=torch.bool)
    keep[1, :2] = False
    keep[2, :1] = False
    pos = (torch.arange(T)[None] - (~keep).sum(1, keepdim=True)).clamp(min=0)
    return x, keep, pos


def cases() -> list:
    return [pytest.param(path, scheme, id=f"{path.stem}-{scheme}")
            for path in YAMLS for scheme in SCHEMES]


def usable(attn: torch.nn.Module, scheme: str) -> bool:
    spec = SCHEMES[scheme]
    return attn.causal and not attn.baseline and (spec is None or getattr(attn, spec[0]))


@pytest.mark.parametrize(("path", "scheme"), cases())
def test_decoding_step_by_step_equals_the_causal_forward(path: Path, scheme: str) -> None:
    """A prompt of P positions, then one position per call: the contexts equal ``forward``'s
    rows over the whole sequence under the causal mask of its real tokens."""
    attn = variant(path)
    if not usable(attn, scheme):
        pytest.skip(f"{path.stem} does not take {scheme} (or is not causal)")
    x, keep, pos = sequence()
    make = SCHEMES[scheme][1] if SCHEMES[scheme] else None
    mask = torch.ones(T, T, dtype=torch.bool).tril()[None] & keep[:, None, :]
    extra = {} if make is None else {"positions": make(pos, pos)}
    with torch.no_grad():
        whole, _ = attn(x, x, x, mask, **extra)  # (B, T, D)
        state, parts = None, []
        for start, stop in [(0, P), *((i, i + 1) for i in range(P, T))]:
            new = x[:, start:stop]
            positions = None if make is None else make(pos[:, start:stop], pos[:, :stop])
            ctx, state = attn.decode(new, new, new, keep[:, start:stop], state, positions)
            parts.append(ctx)
    stepped = torch.cat(parts, dim=1)
    real = keep[..., None].expand_as(whole)  # padded rows see nothing either way
    torch.testing.assert_close(stepped[real], whole[real], atol=1e-5, rtol=0)


def test_local_keeps_a_window_and_linear_a_fixed_size_state() -> None:
    """The states a decoding benchmark compares: local's w positions, linear's (D, Dv + 1)."""
    x, keep, _ = sequence()
    by_name = {p.stem: p for p in YAMLS}
    local, linear, scaled = (variant(by_name[n]) for n in ("local", "linear", "scaled"))
    with torch.no_grad():
        _, window = local.decode(x, x, x, keep)
        _, sums = linear.decode(x, x, x, keep)
        _, cache = scaled.decode(x, x, x, keep)
    assert window.key.shape[-2] == 3 and window.keep.shape == (B, 3)
    assert sums.sums.shape == (B, D, D + 1)
    assert cache.key.shape == (B, T, D)  # a KV cache keeps every position


@pytest.mark.parametrize("scheme", ["rope", "alibi"])
@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_a_scheme_inside_attention_depends_on_distances_only(path: Path, scheme: str) -> None:
    """Shifting every position by 7 changes nothing (RoPE and ALiBi are relative); the scheme
    does change the output (it is applied), and the weights path agrees with the fast path,
    also on local's blocked path (T = 64)."""
    attn = variant(path)
    if not usable(attn, scheme):
        pytest.skip(f"{path.stem} does not take {scheme}")
    make = SCHEMES[scheme][1]
    for t in (T, 64):
        x = torch.randn(2, t, D, generator=torch.Generator().manual_seed(t))
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        pos = torch.arange(t)[None]
        with torch.no_grad():
            plain, _ = attn(x, x, x, mask)
            fast, _ = attn(x, x, x, mask, positions=make(pos, pos))
            shifted, _ = attn(x, x, x, mask, positions=make(pos + 7, pos + 7))
            slow, _ = attn(x, x, x, mask, need_weights=True, positions=make(pos, pos))
        torch.testing.assert_close(shifted, fast, atol=1e-5, rtol=0)
        torch.testing.assert_close(slow, fast, atol=1e-5, rtol=0)
        assert not torch.allclose(fast, plain, atol=1e-4)
