"""The loop's schedule of validations and stops: eval_every, max_time, max_steps, the tie-break
on validation loss, val/loss itself, and the callbacks the run pipeline passes."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

from attnbench.tasks.base import PAD
from attnbench.training.loop import better, fit
from attnbench.training.measurement import Measurement
from attnbench.training.steps import evaluate
from tests.training.conftest import COPY, RECALL, Recorder, case

# 512 training examples / batch 64 = 8 steps per epoch.


def test_validation_every_epoch_by_default() -> None:
    c = case(epochs=3, batch_size=64, log_every=4)
    sink = Recorder()
    epochs: list[int] = []
    result = fit(c.model, c.data, c.trainer, c.seed, sink,
                 on_epoch_end=lambda e, _: epochs.append(e),
                 measure=Measurement(before_eval=lambda: epochs.append(0)))
    assert sink.steps_of("val/acc") == [8, 16, 24] == sink.steps_of("val/loss")
    assert epochs == [0, 1, 0, 2, 0, 3]  # before_eval before each validation, then on_epoch_end
    assert result.steps == 24 and result.stopped_by is None
    assert result.best_step in (8, 16, 24) and result.best_epoch == result.best_step // 8


def test_eval_every_validates_every_n_steps_and_at_the_end() -> None:
    c = case(epochs=2, batch_size=64, log_every=4, eval_every=5)
    sink = Recorder()
    epochs: list[int] = []
    result = fit(c.model, c.data, c.trainer, c.seed, sink,
                 on_epoch_end=lambda e, _: epochs.append(e))
    assert sink.steps_of("val/acc") == [5, 10, 15, 16]
    epoch_of = {step: m["epoch"] for step, m in sink.logged if "val/acc" in m}
    assert epoch_of == {5: 1, 10: 2, 15: 2, 16: 2}
    assert epochs == [1, 2]
    assert result.best_step in (5, 10, 15, 16)


def test_max_steps_stops_mid_epoch_validates_and_says_so() -> None:
    c = case(epochs=3, batch_size=64, max_steps=11)
    sink = Recorder()
    result = fit(c.model, c.data, c.trainer, c.seed, sink)
    assert (result.steps, result.stopped_by) == (11, "max_steps")
    assert sink.steps_of("val/acc") == [8, 11]
    assert result.cost["steps"] == 11.0  # logged as cost/steps: compare shows each group's budget
    assert result.test and result.best_state


class SlowSink(Recorder):
    """Each train/loss point takes 0.4 s: wall-clock time passes by steps, not by machine speed."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        super().log_metrics(metrics, step)
        if "train/loss" in metrics:
            time.sleep(0.4)


def test_max_time_stops_then_validates_tests_on_the_best_weights_and_finishes() -> None:
    c = case(epochs=5, batch_size=64, log_every=1, max_time=1.0)
    sink = SlowSink()
    result = fit(c.model, c.data, c.trainer, c.seed, sink)
    assert result.stopped_by == "max_time"
    assert 2 <= result.steps <= 4, result.steps  # 0.4 s a step: the budget ends in step 3
    assert result.cost["steps"] == result.steps
    assert sink.steps_of("val/acc") == [result.steps]
    assert set(result.test) == {"acc", "f1", "loss"}
    # the model holds the best weights, which are the result's
    assert all(torch.equal(v, result.best_state[k]) for k, v in c.model.state_dict().items())


def test_max_time_is_checked_before_the_first_step_of_a_resumed_run(tmp_path) -> None:  # noqa: ANN001
    c = case(epochs=2, batch_size=64, log_every=1, max_time=0.5)
    last = tmp_path / "last.pt"
    first = fit(c.model, c.data, c.trainer, c.seed, SlowSink(), last_path=last)
    assert first.stopped_by == "max_time"
    c = case(epochs=2, batch_size=64, log_every=1, max_time=0.5)
    sink = Recorder()
    again = fit(c.model, c.data, c.trainer, c.seed, sink, last_path=last, resume_from=last)
    assert (again.stopped_by, again.steps) == ("max_time", first.steps)
    assert sink.logged == []


def test_ties_in_the_primary_metric_go_to_the_lower_validation_loss() -> None:
    assert better({"acc": 0.5, "loss": 1.0}, {}, "acc")
    assert better({"acc": 0.6, "loss": 9.0}, {"acc": 0.5, "loss": 1.0}, "acc")
    assert not better({"acc": 0.4, "loss": 0.1}, {"acc": 0.5, "loss": 1.0}, "acc")
    assert better({"acc": 0.5, "loss": 0.9}, {"acc": 0.5, "loss": 1.0}, "acc")
    assert not better({"acc": 0.5, "loss": 1.0}, {"acc": 0.5, "loss": 1.0}, "acc")  # first stays
    assert not better({"acc": 0.5, "loss": 1.1}, {"acc": 0.5, "loss": 1.0}, "acc")


def test_a_tie_in_a_run_keeps_the_lower_loss_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accuracy frozen at 0.5: every validation ties, so the best is the lowest-loss one."""
    import attnbench.training.steps as steps

    real = steps.compute_metrics
    monkeypatch.setattr(steps, "compute_metrics",
                        lambda *a, **k: {m: 0.5 for m in real(*a, **k)})
    c = case(epochs=4, batch_size=64, lr=0.01)
    sink = Recorder()
    result = fit(c.model, c.data, c.trainer, c.seed, sink)
    losses = {step: m["val/loss"] for step, m in sink.logged if "val/loss" in m}
    assert len(set(losses.values())) == 4
    assert result.best_step == min(losses, key=losses.get)
    assert result.val["loss"] == min(losses.values())


def test_validation_loss_is_the_mean_cross_entropy_over_scored_targets() -> None:
    for overrides in (RECALL, COPY):
        c = case(overrides, eval_batch_size=7)  # several batches, the last one short
        metrics = evaluate(c.model, c.data, c.data.val, c.trainer)
        c.model.eval()
        with torch.no_grad():
            kind = c.data.spec.kind
            targets = c.data.val.targets
            logits = c.model(c.data.val.inputs, targets if kind == "transduce" else None).logits
            ignore = PAD if kind == "transduce" else -100
            expected = F.cross_entropy(logits.flatten(0, -2), targets.flatten(),
                                       ignore_index=ignore)
        assert math.isclose(metrics["loss"], float(expected), rel_tol=1e-5), overrides
        assert set(metrics) == {*c.data.metrics, "loss"}
