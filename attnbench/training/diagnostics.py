"""Attention diagnostics logged with every run (all variants except `none`).

Notation: N examples, B batch, Tq query positions, Tk key (input) positions.

- ``attn/entropy``: mean over counted query rows of ``-Σ_k w log w`` (nats; 0 = one-hot,
  ``log Tk`` = uniform over Tk keys).
- ``attn/alignment``: mean attention mass on the correct source position, for tasks whose
  ``Split.align`` says where that is (copy, reverse, sort, assoc_recall).
- ``attn/alignment_pm1``: the same, counting the mass within one position of it (j - 1 .. j + 1).
  A bidirectional encoder's state at j ± 1 legitimately carries token j, so a model that attends
  one position off (e.g. seq2seq on reverse: an anti-diagonal shifted by one, token accuracy 0.91
  with ``attn/alignment`` 0.10) scores high here and low on the exact one. For assoc_recall the
  neighbours are other pairs: read the exact figure there.

Heatmap examples (``heatmap_indices``): the ``n`` longest inputs (most real positions; earlier
examples first among equals) of a fixed sample, the first HEATMAP_POOL test examples, shown
longest first. The choice depends on the data only, so every variant of a sweep shows the same
examples, and a short, uninformative example is not shown when a longer one exists.

Weights are the backbone's diagnostic weights (``forward(..., need_weights=True)``, see
``attnbench.backbones.base``); transduction uses teacher forcing so output position j lines up
with ``align[:, j]``. Counted rows: those with a known source (``align >= 0``) when the task has
an alignment, otherwise every real query position (real tokens; real targets incl. EOS; the single
pooling query); rows with no key to attend to (all-zero weights) never count. Evaluated on the
test split with the best-validation weights, honouring ``trainer.limit_eval_batches``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from attnbench.backbones.base import Backbone, padding_mask
from attnbench.tasks.base import PAD, Split, TaskData

HEATMAP_EXAMPLES = 3
HEATMAP_POOL = 64  # heatmap examples are chosen among the first HEATMAP_POOL of the split


@dataclass
class Sums:
    """Running sums over batches (weighted by counted rows)."""

    entropy: float = 0.0
    alignment: float = 0.0
    alignment_pm1: float = 0.0  # mass within one position of the source
    rows: int = 0
    aligned_rows: int = 0

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.rows:
            out["attn/entropy"] = self.entropy / self.rows
        if self.aligned_rows:
            out["attn/alignment"] = self.alignment / self.aligned_rows
            out["attn/alignment_pm1"] = self.alignment_pm1 / self.aligned_rows
        return out


def mass_near(weights: Tensor, align: Tensor, radius: int) -> Tensor:
    """(B, Tq) attention mass on key positions ``align - radius .. align + radius`` (those that
    exist) of weights (B, Tq, Tk); align (B, Tq) >= 0."""
    tk = weights.shape[-1]
    keys = torch.arange(tk, device=weights.device)  # (Tk,)
    near = (keys - align.unsqueeze(-1)).abs() <= radius  # (B, Tq, Tk)
    return (weights * near).sum(-1)


def accumulate(sums: Sums, weights: Tensor, rows: Tensor, align: Tensor | None) -> None:
    """Add a batch: weights (B, Tq, Tk), rows (B, Tq) bool = rows to count, align (B, Tq) | None."""
    weights = weights.double()
    rows = rows & (weights.sum(-1) > 0)  # fully masked rows have no distribution
    if align is not None:
        rows = rows & (align >= 0)
    entropy = -torch.special.xlogy(weights, weights).sum(-1)  # (B, Tq)
    sums.entropy += float(entropy[rows].sum())
    sums.rows += int(rows.sum())
    if align is not None:
        source = align.clamp(min=0)  # (B, Tq); rows with no source are not counted
        on_target = weights.gather(-1, source.unsqueeze(-1)).squeeze(-1)  # (B, Tq)
        sums.alignment += float(on_target[rows].sum())
        sums.alignment_pm1 += float(mass_near(weights, source, 1)[rows].sum())
        sums.aligned_rows += int(rows.sum())


def query_rows(data: TaskData, inputs: Tensor, targets: Tensor, tq: int) -> Tensor:
    """(B, Tq) bool: the real query positions of a batch."""
    b = inputs.shape[0]
    if data.spec.kind == "transduce":
        return targets != PAD  # (B, U): output tokens and EOS
    if tq == inputs.shape[1]:
        return padding_mask(inputs)  # (B, T): one query per input position
    return torch.ones(b, tq, dtype=torch.bool)  # (B, 1): a pooling query


def batch_weights(
    model: Backbone, data: TaskData, inputs: Tensor, targets: Tensor
) -> Tensor | None:
    """(B, Tq, Tk) diagnostic weights (teacher forcing for transduction), None without attention;
    computed on the model's device, returned on the CPU."""
    device = next(model.parameters(), inputs).device  # a parameter-free model: where inputs are
    target_arg = targets.to(device) if data.spec.kind == "transduce" else None
    weights = model(inputs.to(device), target_arg, need_weights=True).weights
    return None if weights is None else weights.cpu()


def usable_align(split: Split, weights: Tensor, idx: slice) -> Tensor | None:
    if split.align is None or split.align.shape[1] != weights.shape[1]:
        return None
    return split.align[idx]


@torch.no_grad()
def attention_diagnostics(
    model: Backbone, data: TaskData, split: Split, batch_size: int = 512, limit_batches: int = 0
) -> dict[str, float] | None:
    """{'attn/entropy', 'attn/alignment', 'attn/alignment_pm1'} on `split` (alignment only when
    the task knows the source positions); None when there are no weights."""
    model.eval()
    sums = Sums()
    for i, start in enumerate(range(0, len(split), batch_size)):
        if limit_batches and i >= limit_batches:
            break
        idx = slice(start, start + batch_size)
        x, y = split.inputs[idx], split.targets[idx]
        weights = batch_weights(model, data, x, y)
        if weights is None:
            return None
        rows = query_rows(data, x, y, weights.shape[1])
        accumulate(sums, weights, rows, usable_align(split, weights, idx))
    return sums.metrics()


@dataclass
class HeatmapExample:
    weights: Tensor  # (Tq', Tk') real query rows x real input positions
    align: Tensor | None  # (Tq',) source column per row, -1 unknown
    row_labels: list[str]
    col_labels: list[str]
    index: int = -1  # the example's row in its split (-1: not given)


def heatmap_indices(split: Split, n: int = HEATMAP_EXAMPLES, pool: int = HEATMAP_POOL) -> list[int]:
    """Rows of the `n` longest inputs among the first `pool` of `split` (most real positions
    first, then the earlier row): the heatmap examples (see the module docstring)."""
    lengths = padding_mask(split.inputs[:pool]).sum(-1).tolist()  # (pool,)
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))[:n]


def _labels(ids: Tensor, itos: Any) -> list[str]:
    """Token labels for (T,) or (T, C) ids ("k3 v5" for multi-channel positions)."""
    out = []
    for tok in ids.tolist():
        parts = tok if isinstance(tok, list) else [tok]
        names = [itos[p] if itos is not None and 0 <= p < len(itos) else str(p) for p in parts]
        out.append(" ".join(names))
    return out


@torch.no_grad()
def heatmap_examples(
    model: Backbone, data: TaskData, split: Split, n: int = HEATMAP_EXAMPLES
) -> list[HeatmapExample]:
    """The attention of `n` examples of `split` chosen by ``heatmap_indices``, cropped to real
    positions."""
    model.eval()
    chosen = heatmap_indices(split, n)
    index = torch.tensor(chosen, dtype=torch.long)
    x, y = split.inputs[index], split.targets[index]
    weights = batch_weights(model, data, x, y)
    if weights is None:
        return []
    rows = query_rows(data, x, y, weights.shape[1])  # (n, Tq)
    cols = padding_mask(x)  # (n, Tk)
    align = None  # (n, Tq) when the task's source positions match the weights' query rows
    if split.align is not None and split.align.shape[1] == weights.shape[1]:
        align = split.align[index]
    in_itos = data.extra.get("input_itos")
    out_itos = data.target_itos if data.spec.kind == "transduce" else in_itos
    examples = []
    for i in range(len(x)):
        r, c = rows[i].nonzero().squeeze(-1), cols[i].nonzero().squeeze(-1)
        w = weights[i][r][:, c].float()
        a = None
        if align is not None:  # source positions are indices into the kept columns
            col_of = {int(pos): j for j, pos in enumerate(c)}
            a = torch.tensor([col_of.get(int(p), -1) for p in align[i][r]])
        if data.spec.kind == "transduce":
            row_labels = _labels(y[i][r], out_itos)
        elif weights.shape[1] == 1:
            row_labels = ["pool"]
        else:
            row_labels = _labels(x[i][r], in_itos)
        examples.append(HeatmapExample(w, a, row_labels, _labels(x[i][c], in_itos), chosen[i]))
    return examples
