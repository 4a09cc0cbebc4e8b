"""Every backbone against the contract in attnbench/backbones/base.py, with every attention
variant it accepts (a pair its settings rule out, ``Backbone.incompatible``, must be refused in
one line naming the variants it runs).

Backbones and variants are found by globbing conf/backbone/*.yaml and conf/attention/*.yaml, and
built as a run builds them (``BACKBONES.get(name)(spec, make_attention, **yaml)``), so a new YAML
is tested here without editing this file. For each task kind the backbone declares (per sequence
and per position for ``classify``): the output shapes, the diagnostic weights, PAD appended
changing nothing, greedy decoding, and the facts the resource pre-flight reads — the declared
attention calls are the calls a training forward pass makes. Causality, on the fast path and the
weights path: a decoder's output at a target position never depends on a later target token,
and a backbone that declares ``causal`` never lets a later input change an earlier output.

Notation: B batch, T input length, U target length, K classes, V target vocabulary.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import Tensor, nn

from attnbench.attention import ATTENTION
from attnbench.backbones import BACKBONES
from attnbench.backbones.base import Backbone
from attnbench.tasks.base import EOS, PAD, TaskSpec
from tests.backbones.helpers import VARIANTS, Factory
from tests.conftest import CONF

B, T, U, VOCAB, K, V = 3, 7, 6, 12, 3, 11
BACKBONE_YAMLS = sorted((CONF / "backbone").glob("*.yaml"))
SPECS = {
    "classify": TaskSpec(kind="classify", vocab_size=VOCAB, max_len=T, num_classes=K),
    "per_position": TaskSpec(kind="classify", vocab_size=VOCAB, max_len=T, num_classes=K,
                             target_per_position=True, lm_format="per_position"),
    "transduce": TaskSpec(kind="transduce", vocab_size=VOCAB, max_len=T, target_vocab_size=V,
                          max_target_len=U),
}


def refused(path: Path, name: str) -> str | None:
    """The backbone's one-line refusal of the variant at its YAML's settings (None: accepted)."""
    node = yaml.safe_load(path.read_text())
    return BACKBONES.get(node.pop("name")).incompatible(ATTENTION.get(name), node)


def cases() -> list:
    """(backbone YAML, spec name, variant name, variant params) for every kind it declares and
    every variant it accepts."""
    out = []
    for path in BACKBONE_YAMLS:
        kinds = BACKBONES.get(yaml.safe_load(path.read_text())["name"]).kinds
        for spec in SPECS:
            if SPECS[spec].kind not in kinds:
                continue
            for v in VARIANTS:
                if refused(path, v.values[0]) is None:
                    out.append(pytest.param(path, spec, *v.values,
                                            id=f"{path.stem}-{spec}-{v.id}"))
    return out


REFUSED = [pytest.param(path, *v.values, id=f"{path.stem}-{v.id}")
           for path in BACKBONE_YAMLS for v in VARIANTS if refused(path, v.values[0])]


def build(path: Path, spec: TaskSpec, name: str, params: dict) -> tuple[Backbone, Factory]:
    node = yaml.safe_load(path.read_text())
    factory = Factory(name, params)
    torch.manual_seed(0)
    return BACKBONES.get(node.pop("name"))(spec, factory, **node).eval(), factory


def data(spec: TaskSpec, lengths: tuple[int, ...] = (T, 4, 1)) -> tuple[Tensor, Tensor]:
    """Right-padded inputs (B, T) and targets: labels, labels per position or (B, U) tokens."""
    g = torch.Generator().manual_seed(1)
    x = torch.full((B, T), PAD)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(4, VOCAB, (n,), generator=g)
    if spec.kind == "transduce":
        y = torch.randint(4, V, (B, U), generator=g)
        y[:, -1] = EOS
    elif spec.target_per_position:
        y = torch.randint(K, (B, T), generator=g)
    else:
        y = torch.randint(K, (B,), generator=g)
    return x, y


def logits_shape(spec: TaskSpec) -> tuple[int, ...]:
    if spec.kind == "transduce":
        return (B, U, V)
    return (B, T, K) if spec.target_per_position else (B, K)


@pytest.mark.parametrize("path", BACKBONE_YAMLS, ids=lambda p: p.stem)
def test_backbone_facts_are_declared(path: Path) -> None:
    cls = BACKBONES.get(yaml.safe_load(path.read_text())["name"])
    assert issubclass(cls, Backbone)
    assert cls.kinds and cls.kinds <= {"classify", "transduce"}
    params = yaml.safe_load(path.read_text())
    limit = cls.length_limit(params)
    assert limit is None or (isinstance(limit[0], str) and limit[0] in params and limit[1] >= 1)


@pytest.mark.parametrize(("path", "spec_name", "name", "params"), cases())
def test_forward_follows_the_contract(path: Path, spec_name: str, name: str,
                                      params: dict) -> None:
    spec = SPECS[spec_name]
    model, factory = build(path, spec, name, params)
    x, y = data(spec)
    out = model(x, y if spec.kind == "transduce" else None, need_weights=True)
    assert out.logits is not None and out.logits.shape == logits_shape(spec)
    assert torch.isfinite(out.logits).all()
    if factory.built and factory.built[0].baseline:
        assert out.weights is None
    else:
        assert out.weights is not None and out.weights.dim() == 3
        assert out.weights.shape[0] == B and out.weights.shape[2] == T  # Tk indexes the inputs
    quiet = model(x, y if spec.kind == "transduce" else None)
    torch.testing.assert_close(quiet.logits, out.logits, atol=1e-5, rtol=0)
    assert isinstance(model.width, int) and model.width > 0
    assert model.activations_per_example() >= 0


@pytest.mark.parametrize(("path", "spec_name", "name", "params"), cases())
def test_appended_padding_changes_nothing(path: Path, spec_name: str, name: str,
                                          params: dict) -> None:
    spec = SPECS[spec_name]
    longer = TaskSpec(**{**spec.__dict__, "max_len": T + 3})
    model, _ = build(path, longer, name, params)
    x, y = data(spec, lengths=(T - 1, 4, 2))
    padded = torch.cat([x, torch.full((B, 3), PAD)], dim=1)  # (B, T + 3)
    target = y if spec.kind == "transduce" else None
    short, long = model(x, target).logits, model(padded, target).logits
    if spec.target_per_position:
        long = long[:, :T]
    torch.testing.assert_close(long, short, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("path", "spec_name", "name", "params"), cases())
def test_declared_attention_calls_are_the_calls_made(path: Path, spec_name: str, name: str,
                                                     params: dict) -> None:
    """``attention_calls()`` (what the pre-flight sizes) lists exactly the (module, Tq, Tk) of
    every attention call a training forward pass over full-length examples makes."""
    spec = SPECS[spec_name]
    model, factory = build(path, spec, name, params)
    if type(model).attention_calls is Backbone.attention_calls:
        pytest.skip(f"{path.stem} declares no attention calls (the pre-flight counts none)")
    made: Counter = Counter()

    def record(module: nn.Module, args: tuple, kwargs: dict[str, Any], _out: Any) -> None:
        query, key = (list(args) + [kwargs.get("query"), kwargs.get("key")])[:2]
        made[(id(module), query.shape[1], key.shape[1])] += 1

    for module in factory.built:
        module.register_forward_hook(record, with_kwargs=True)
    x, y = data(spec, lengths=(T, T, T))
    model.train()(x, y if spec.kind == "transduce" else None)
    declared = Counter((id(c.module), c.tq, c.tk) for c in model.attention_calls())
    assert declared == made
    assert all(c.module in factory.built for c in model.attention_calls())


@pytest.mark.parametrize(("path", "spec_name", "name", "params"),
                         [c for c in cases() if c.values[1] == "transduce"])
def test_generate_stops_at_max_len(path: Path, spec_name: str, name: str, params: dict) -> None:
    spec = SPECS[spec_name]
    model, factory = build(path, spec, name, params)
    x, _ = data(spec)
    out = model.generate(x, U, need_weights=True)
    assert out.tokens is not None and out.tokens.shape[0] == B and out.tokens.shape[1] <= U
    assert int(out.tokens.min()) >= 0 and int(out.tokens.max()) < V
    if not factory.built[0].baseline:
        assert out.weights is not None and out.weights.shape[2] == T


@pytest.mark.parametrize(("path", "name", "params"), REFUSED)
def test_a_refused_variant_is_one_line_naming_the_compatible_ones(path: Path, name: str,
                                                                  params: dict) -> None:
    message = refused(path, name)
    assert message is not None and "\n" not in message
    listed = message.split("Compatible variants: ")[1].split(", ")
    assert name not in listed and listed
    assert all(refused(path, other) is None for other in listed)
    spec = SPECS["transduce" if "transduce" in BACKBONES.get(path.stem).kinds else "classify"]
    with pytest.raises(ValueError) as err:
        build(path, spec, name, params)
    assert str(err.value) == message


def changed_at(x: Tensor, p: int, vocab: int) -> Tensor:
    """x with column p replaced by a different real token (4 <= id < vocab)."""
    out = x.clone()
    out[:, p] = 4 + (x[:, p] - 4 + 1) % (vocab - 4)
    return out


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "weights"])
@pytest.mark.parametrize(("path", "spec_name", "name", "params"),
                         [c for c in cases() if c.values[1] == "transduce"])
def test_a_decoder_never_reads_a_later_target(path: Path, spec_name: str, name: str,
                                              params: dict, need_weights: bool) -> None:
    """Teacher forcing: the logits predicting target u see targets < u only."""
    spec = SPECS[spec_name]
    model, _ = build(path, spec, name, params)
    x, y = data(spec, lengths=(T, T, T))
    p = U - 3
    before = model(x, y, need_weights=need_weights).logits
    after = model(x, changed_at(y, p, V), need_weights=need_weights).logits
    torch.testing.assert_close(after[:, : p + 1], before[:, : p + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, p + 1 :], before[:, p + 1 :], atol=1e-6)


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "weights"])
@pytest.mark.parametrize(("path", "spec_name", "name", "params"),
                         [c for c in cases() if c.values[1] == "per_position"
                          and BACKBONES.get(c.values[0].stem).causal])
def test_a_causal_backbone_never_reads_a_later_token(path: Path, spec_name: str, name: str,
                                                     params: dict, need_weights: bool) -> None:
    """``causal`` backbones: an output per position sees the inputs up to it only."""
    spec = SPECS[spec_name]
    model, factory = build(path, spec, name, params)
    x, _ = data(spec, lengths=(T, T, T))
    p = T - 3
    before = model(x, need_weights=need_weights).logits  # (B, T, K)
    after = model(changed_at(x, p, VOCAB), need_weights=need_weights).logits
    torch.testing.assert_close(after[:, :p], before[:, :p], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, p:], before[:, p:], atol=1e-6)  # the token is read
