"""The decoder-only ``lm`` backbone (attnbench/backbones/lm.py): each task read as one sequence in
the format it declares, and greedy decoding with each variant's decoding state.

Notation: B batch, T input length, U target length, K classes, V target vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import Tensor

from attnbench.attention import ATTENTION
from attnbench.backbones import BACKBONES
from attnbench.backbones.positions import SCHEMES
from attnbench.tasks import TASKS
from attnbench.tasks.base import EOS, PAD, TaskSpec, kind_format
from tests.conftest import CONF

B, T, U, VOCAB, K, V = 4, 7, 6, 12, 3, 11
LM = BACKBONES.get("lm")
TRANSDUCE = TaskSpec(kind="transduce", vocab_size=VOCAB, max_len=T, target_vocab_size=V,
                     max_target_len=U)
CLASSIFY = TaskSpec(kind="classify", vocab_size=VOCAB, max_len=T, num_classes=K)


def variant_params(name: str) -> dict:
    params = yaml.safe_load((CONF / "attention" / f"{name}.yaml").read_text())
    params.pop("name")
    return params


def build(spec: TaskSpec, name: str, positions: str = "learned", seed: int = 0) -> torch.nn.Module:
    params = variant_params(name)
    torch.manual_seed(seed)
    return LM(spec, lambda dq, dk, dv: ATTENTION.get(name)(dq, dk, dv, **params), d_model=16,
              positions=positions).eval()


def ragged(seed: int = 1) -> Tensor:
    """(B, T) inputs of lengths T, 4, 1, 6 (PAD on the right)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, VOCAB, (B, T), generator=g)
    for row, n in enumerate((T, 4, 1, 6)):
        x[row, n:] = PAD
    return x


def targets(seed: int = 2) -> Tensor:
    y = torch.randint(4, V, (B, U), generator=torch.Generator().manual_seed(seed))
    y[:, -1] = EOS
    return y


def decoding_cases() -> list:
    """Every variant the lm accepts, with every positional scheme it takes."""
    out = []
    for name in ATTENTION.names():
        for scheme in SCHEMES:
            if LM.incompatible(ATTENTION.get(name), {"positions": scheme}) is None:
                out.append(pytest.param(name, scheme, id=f"{name}-{scheme}"))
    return out


@pytest.mark.parametrize(("name", "scheme"), decoding_cases())
def test_cached_greedy_decoding_equals_rerunning_the_prefix(name: str, scheme: str) -> None:
    """The decoding state (KV cache, linear's running sums, local's window) gives exactly the
    tokens of re-running the whole sequence every step, and they are the argmax of the
    teacher-forced logits on that same output (decoding and training read one model)."""
    model = build(TRANSDUCE, name, scheme)
    x = ragged()
    cached = model.generate(x, U).tokens
    rerun = model.generate(x, U, cache=False).tokens
    assert torch.equal(cached, rerun), (cached, rerun)
    forced = model(x, cached).logits.argmax(-1)  # (B, U')
    live = torch.cumsum((cached == EOS).long(), 1) - (cached == EOS).long() == 0  # up to EOS
    assert torch.equal(forced[live], cached[live])


def test_local_decodes_past_its_window() -> None:
    """Outputs longer than the window (w = 2): the trimmed state still equals re-running."""
    params = {**variant_params("local"), "window": 2}
    torch.manual_seed(0)
    model = LM(TRANSDUCE, lambda dq, dk, dv: ATTENTION.get("local")(dq, dk, dv, **params),
               d_model=16, positions="alibi").eval()
    x = ragged()
    assert torch.equal(model.generate(x, U).tokens, model.generate(x, U, cache=False).tokens)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_each_row_is_read_as_if_it_were_alone(scheme: str) -> None:
    """Packing: a row's logits do not depend on the other rows' lengths (its answer starts right
    after its own inputs, at its own positions)."""
    model = build(TRANSDUCE, "scaled", scheme)
    x, y = ragged(), targets()
    together = model(x, y).logits  # (B, U, V)
    for row, n in enumerate((T, 4, 1, 6)):
        alone = model(x[row : row + 1, :n], y[row : row + 1]).logits
        torch.testing.assert_close(together[row : row + 1], alone, atol=1e-5, rtol=0)


def test_the_label_is_the_token_after_the_inputs() -> None:
    """last_token: the label is predicted at BOS after the real inputs; later PAD changes
    nothing, a different last token does."""
    model = build(CLASSIFY, "multihead")
    x = ragged()
    out = model(x, need_weights=True)
    assert out.logits.shape == (B, K) and out.weights.shape == (B, 1, T)
    changed = x.clone()
    changed[0, T - 1] = 4 + (x[0, T - 1] - 3) % (VOCAB - 4)
    assert not torch.allclose(model(changed).logits[0], out.logits[0])
    torch.testing.assert_close(model(changed).logits[1:], out.logits[1:], atol=1e-6, rtol=0)


def test_a_per_position_task_must_declare_its_labels_causal() -> None:
    spec = TaskSpec(kind="classify", vocab_size=VOCAB, max_len=T, num_classes=K,
                    target_per_position=True)
    assert spec.sequence_format is None
    with pytest.raises(ValueError, match="not declared causal .*lm_format"):
        build(spec, "scaled")


@pytest.mark.parametrize("path", sorted((CONF / "task").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_task_carries_the_format_it_declares(path: Path) -> None:
    """The task's fact ``lm_format`` (or its kind's default) reaches the spec the backbone reads;
    file tasks are sized only once read, so their class fact and kind are checked."""
    node = yaml.safe_load(path.read_text())
    cls = TASKS.get(node.pop("name"))
    if cls.kind == "classify" and cls.lm_format is None:
        assert kind_format(cls.kind, False) == "last_token"
    try:
        task = cls(**node)
    except ValueError:  # a file task without its path
        assert cls.lm_format is None
        return
    size = task.planned_size()
    if size is None:
        return
    want = cls.lm_format or kind_format(size.spec.kind, size.spec.target_per_position)
    assert want is not None and size.spec.sequence_format == want
    assert LM.sequence_length(size.spec) >= size.spec.max_len


def test_mqar_reads_in_place_and_lm_format_is_declared() -> None:
    task = TASKS.get("assoc_recall")(layout="interleaved", n_train=4, n_val=2, n_test=2)
    data = task.load(0)
    assert type(task).lm_format == data.spec.sequence_format == "per_position"
    model = build(data.spec, "scaled")
    out = model(data.train.inputs)
    assert out.logits.shape == (*data.train.targets.shape, data.spec.num_classes)
    assert LM.sequence_length(data.spec) == data.spec.max_len


def test_lowrank_is_refused_naming_the_causal_variants() -> None:
    message = LM.incompatible(ATTENTION.get("lowrank"), {})
    assert message is not None and "\n" not in message
    assert "'lowrank' has no causal form" in message
    ok = message.split("Compatible variants: ")[1].split(", ")
    assert set(ok) == {n for n in ATTENTION.names() if n != "lowrank"}


def test_the_length_generalization_preset_tests_at_1x_2x_and_4x() -> None:
    """Press et al. 2022's question on the lm: one training length, tests at 1x, 2x and 4x, the
    schemes it compares, 3 seeds, and a learned table that covers the 4x test (so learned is
    reported there, reading rows training never reached, rather than refused)."""
    preset = yaml.safe_load((CONF / "experiment" / "length_generalization.yaml").read_text())
    grid = {k: str(v).split(",") for k, v in preset["hydra"]["sweeper"]["params"].items()}
    task = preset["task"]
    pairs = [int(p) for p in grid["task.test_num_pairs"]]
    assert pairs == [task["num_pairs"] * m for m in (1, 2, 4)]
    assert {"learned", "sinusoidal", "rope", "alibi"} <= set(grid["backbone.positions"])
    assert len(grid["seed"]) >= 3 and len(grid["attention"]) >= 2
    assert {"override /backbone": "lm"} in preset["defaults"]
    spec = TASKS.get("assoc_recall")(**{k: v for k, v in task.items()},
                                     test_num_pairs=max(pairs)).planned_size().spec
    assert LM.length_limit({"positions": "learned", **preset["backbone"]})[1] >= \
        LM.sequence_length(spec)


@pytest.mark.parametrize("attention", ["scaled", "multihead", "linear", "none"])
@pytest.mark.parametrize("task", ["copy", "assoc_recall"])
def test_the_preflight_estimate_is_a_lower_bound_of_an_lm_step(task: str, attention: str) -> None:
    """The lm's facts (``attention_calls``, ``activations_per_example``) keep the pre-flight's
    step estimate under what a real training step holds, as for the other backbones."""
    from tests.config.test_resource_preflight import (
        test_the_step_estimate_is_a_lower_bound_of_a_real_step as lower_bound,
    )

    lower_bound("lm", task, attention)
