"""Cost that compares across devices (training/throughput.py), against hand computations on a
model small enough to count by hand: mean-pooled embeddings -> one Linear(D, K) classifier.

Its model FLOPs per example, as torch's FLOP counter counts them: the Linear's forward 2·D·K,
backward 2·D·K for the input's gradient and 2·D·K for the weight's (embedding look-ups, the mean
and the loss are not matmuls) = 6·D·K.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn

from attnbench.backbones.base import Backbone, BackboneOutput
from attnbench.store.names import COST_COLUMNS, COST_MFU, COST_TOKENS_PER_S, metric_direction
from attnbench.tasks.base import PAD, Split, TaskData, TaskSpec
from attnbench.training import throughput
from attnbench.training.config import TrainerConfig
from attnbench.training.loop import fit
from tests.training.conftest import Recorder

V, D, K, T = 12, 8, 3, 6
# real tokens per example: 1..6, then PAD (0)
INPUTS = torch.tensor([[4 + (i + j) % 8 if j <= i % T else PAD for j in range(T)]
                       for i in range(10)])
COUNTS = [i % T + 1 for i in range(10)]  # what the rows above hold, written out


class MeanPool(Backbone):
    kinds = frozenset({"classify"})

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, D)
        self.out = nn.Linear(D, K)

    def forward(self, inputs: Tensor, targets: Tensor | None = None,
                need_weights: bool = False) -> BackboneOutput:
        return BackboneOutput(logits=self.out(self.embed(inputs).mean(dim=1)))  # (B, K)


def data(inputs: Tensor = INPUTS) -> TaskData:
    targets = torch.arange(len(inputs)) % K
    split = Split(inputs, targets)
    return TaskData(TaskSpec("classify", V, T, num_classes=K), split, split, split, "acc")


def test_real_tokens_leave_out_padding_and_count_a_decoders_targets() -> None:
    assert throughput.real_tokens(Split(INPUTS, torch.zeros(10)), "classify").tolist() == COUNTS
    channels = torch.stack([INPUTS, torch.full_like(INPUTS, 5)], dim=-1)  # (N, T, 2): channel 0
    assert throughput.real_tokens(Split(channels, torch.zeros(10)), "classify").tolist() == COUNTS
    targets = torch.tensor([[5, 6, 2, PAD], [7, 2, PAD, PAD]])  # tokens, EOS, PAD
    split = Split(INPUTS[:2], targets)
    assert throughput.real_tokens(split, "transduce").tolist() == [1 + 3, 2 + 2]


def test_trained_tokens_count_whole_epochs_and_the_batches_of_an_unfinished_one() -> None:
    split, total = Split(INPUTS, torch.zeros(10)), sum(COUNTS)
    start = torch.Generator().manual_seed(7).get_state()
    assert throughput.trained_tokens(split, "classify", 4, 3, 0, start) == 2 * total
    # epoch 3 after 2 batches of 4: the first 8 examples of that epoch's permutation
    order = torch.randperm(10, generator=torch.Generator().manual_seed(7))[:8].tolist()
    by_hand = 2 * total + sum(COUNTS[i] for i in order)
    assert throughput.trained_tokens(split, "classify", 4, 3, 2, start) == by_hand


def test_flops_per_sample_is_six_d_k_and_leaves_the_model_as_it_was() -> None:
    torch.manual_seed(0)
    model = MeanPool().eval()
    model.out.weight.grad = torch.ones(K, D)
    rng = torch.get_rng_state()
    cfg = TrainerConfig(batch_size=4)
    assert throughput.flops_per_sample(model, data(), cfg, torch.device("cpu")) == 6 * D * K
    whole = TrainerConfig(batch_size=10)  # counted on FLOP_ROWS of them: the same per example
    assert throughput.flops_per_sample(model, data(), whole, torch.device("cpu")) == 6 * D * K
    assert not model.training and torch.equal(model.out.weight.grad, torch.ones(K, D))
    assert model.embed.weight.grad is None and torch.equal(torch.get_rng_state(), rng)


def test_fit_logs_tokens_per_second_and_mfu_as_counted_by_hand(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 examples, batches of 4 (3 steps an epoch), 5 steps: epoch 1 whole, then the first 2
    batches (8 examples) of epoch 2's order; the loop's order generator is seeded with the seed
    and draws one permutation per epoch."""
    monkeypatch.setattr(throughput, "matmul_peak_gflops", lambda *args: 50.0)
    torch.manual_seed(0)
    cfg = TrainerConfig(batch_size=4, epochs=2, max_steps=5, warmup_steps=0, progress=False,
                        log_every=1)
    result = fit(MeanPool(), data(), cfg, seed=3, sink=Recorder(), device=torch.device("cpu"))
    gen = torch.Generator().manual_seed(3)
    torch.randperm(10, generator=gen)  # epoch 1: every example
    epoch2 = torch.randperm(10, generator=gen)[:8].tolist()
    tokens = sum(COUNTS) + sum(COUNTS[i] for i in epoch2)
    cost = result.cost
    assert cost["tokens_per_s"] * cost["train_s"] == pytest.approx(tokens, rel=1e-9)
    samples = 10 + 8
    assert cost["samples_per_s"] * cost["train_s"] == pytest.approx(samples, rel=1e-9)
    assert cost["flops_per_sample"] == 6 * D * K
    assert cost["peak_gflops"] == 50.0
    mfu = 100 * 6 * D * K * samples / cost["train_s"] / 50e9
    assert cost["mfu"] == pytest.approx(mfu, rel=1e-9)


def test_no_peak_no_mfu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throughput, "matmul_peak_gflops", lambda *args: None)
    loop = SimpleNamespace(epoch=2, position=0, order_start=torch.Generator().get_state(),
                           samples=10)
    out = throughput.figures(MeanPool(), data(), TrainerConfig(batch_size=4),
                             torch.device("cpu"), loop, train_s=2.0)
    assert out == {"tokens_per_s": sum(COUNTS) / 2.0, "flops_per_sample": 6 * D * K}


def test_the_cpu_peak_is_a_cached_matmul_rate() -> None:
    threads = torch.get_num_threads()
    peak = throughput.matmul_peak_gflops("cpu", torch.float32, threads)
    assert peak is not None and 0.1 < peak < 1e5  # GFLOP/s of one CPU's threads
    assert throughput.matmul_peak_gflops("cpu", torch.float32, threads) == peak  # measured once


def lstm_flops_by_hand() -> int:
    """LSTM(8 -> 16), 2 layers, both directions, on B=2 x T=5: per direction W_ih (4·16 x in)
    and W_hh (4·16 x 16), in = 8 then 2·16; forward + backward = 6 per multiply-add."""
    per_position = 2 * (64 * 8 + 64 * 16) + 2 * (64 * 32 + 64 * 16)
    return 6 * 2 * 5 * per_position


def lstm_step(device: str) -> object:
    torch.manual_seed(0)
    rnn = nn.LSTM(8, 16, num_layers=2, batch_first=True, bidirectional=True).to(device)
    x = torch.randn(2, 5, 8, device=device, requires_grad=True)
    return lambda: rnn(x)[0].sum().backward()


def test_compare_shows_tokens_and_mfu() -> None:
    assert dict(COST_COLUMNS)[COST_TOKENS_PER_S] == "tokens/s"
    assert dict(COST_COLUMNS)[COST_MFU] == "MFU %"


def test_tokens_and_mfu_are_higher_better_costs_flops_lower() -> None:
    assert metric_direction(COST_TOKENS_PER_S) == metric_direction(COST_MFU) == "higher"
    assert metric_direction("cost/flops_per_sample") == "lower"


def test_a_fused_lstm_counts_its_gates_products() -> None:
    """The CPU runs nn.LSTM as oneDNN layers, which torch's counter does not list (0 without
    the formula); the count is the one its matmuls would give."""
    assert throughput.count_flops(lstm_step("cpu")) == lstm_flops_by_hand()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cudnns_lstm_counts_the_same() -> None:
    assert throughput.count_flops(lstm_step("cuda")) == lstm_flops_by_hand()
