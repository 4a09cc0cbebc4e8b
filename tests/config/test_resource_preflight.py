"""The resource pre-flight (attnbench.config.resources): sizes a backbone, an attention module or
the machine cannot hold are refused before any data is drawn or model built, naming the setting;
what the presets and defaults ask for is never refused. `available` is given, so the figures do
not depend on this machine's free memory. The estimate is a lower bound: checked against the
tensors a small job really holds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from attnbench.config.resources import (
    available_memory,
    footprint,
    loaded_problems,
    meta_model,
    resource_problems,
)

GIB = 2**30
CONF = Path(__file__).resolve().parents[2] / "conf"


def composed(*overrides: str) -> dict:
    from omegaconf import OmegaConf

    from attnbench.config.compose import hydra_compose

    with hydra_compose() as compose:
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def task_of(cfg: dict):  # noqa: ANN201 - the task instance its settings build
    from attnbench.tasks import TASKS

    return TASKS.get(cfg["task"]["name"])(**{k: v for k, v in cfg["task"].items() if k != "name"})


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")
                                          if p.stem != "text_pooling"))
def test_presets_and_defaults_fit_in_4_gib(preset: str) -> None:
    assert resource_problems(composed(), available=4 * GIB) == []
    assert resource_problems(composed(f"experiment={preset}"), available=4 * GIB) == []


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["task=copy", "task.length=100000"], ["'task.length' = 100000", "'backbone.max_len'"]),
        (["task.num_pairs=100000", "task.num_keys=200000"], ["'task.num_pairs' = 100000"]),
        (["task=listops", "task.max_len=1024"], ["1024", "'backbone.max_len' = 512"]),
        (["task=copy", "backbone=seq2seq", "task.length=100000"],
         ["'task.length' = 100000", "diagnostic attention weights", "16.0 GiB"]),
        (["task.n_train=10000000000"], ["'task.n_train' = 10000000000", "TiB"]),
        (["task.num_keys=1000000000"], ["'task.num_keys' = 1000000000"]),
        (["backbone.d_model=100000"], ["'backbone.d_model' = 100000", "parameters"]),
        (["task=copy", "backbone=seq2seq", "task.vocab=10000000000"], ["'task.vocab'"]),
        (["task=listops", "task.max_len=2000", "backbone.max_len=2000", "attention=additive"],
         ["'task.max_len' = 2000", "lower task.max_len, trainer.batch_size"]),
        # issue 23: sizes the pre-flight did not model
        (["backbone.ffn_mult=100000"], ["'backbone.ffn_mult' = 100000", "activations"]),
        (["attention=additive", "attention.hidden=100000000"],
         ["'attention.hidden' = 100000000", "attention scores"]),
        (["attention=lowrank", "attention.max_len=8"],
         ["'attention.max_len' = 8", "give it 24", "attention.max_len>=24"]),
        (["task=copy", "backbone=seq2seq", "attention=lowrank", "attention.max_len=10"],
         ["'attention.max_len' = 10", "attention.max_len>=20"]),
        (["backbone=rnn", "backbone.embed_dim=10000000"], ["'backbone.embed_dim' = 10000000"]),
        (["backbone=rnn", "backbone.hidden=1000000"], ["'backbone.hidden' = 1000000"]),
        (["trainer.batch_size=100000000"], ["'trainer.batch_size' = 100000000"]),
    ],
)
def test_sizes_that_cannot_fit_are_named(overrides: list[str], says: list[str]) -> None:
    (line,) = resource_problems(composed(*overrides), available=16 * GIB)
    for fragment in says:
        assert fragment in line, line


def test_the_estimate_is_quick_and_allocates_nothing() -> None:
    """From the settings alone: a model of ~10¹¹ parameters is estimated on the meta device in
    milliseconds, without the process growing."""
    import psutil

    cfg = composed("backbone.d_model=100000")
    resource_problems(cfg, available=16 * GIB)  # imports and caches out of the timing
    before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    resource_problems(cfg, available=16 * GIB)
    assert time.perf_counter() - start < 1.0
    assert psutil.Process().memory_info().rss - before < 50 * 2**20


TASK_YAMLS = sorted((CONF / "task").glob("*.yaml"))


@pytest.mark.parametrize("path", TASK_YAMLS, ids=lambda p: p.stem)
def test_a_planned_size_is_the_loaded_size(path: Path) -> None:
    """A task's ``planned_size()`` (from its settings, nothing drawn) has the spec and split sizes
    of the data ``load`` returns, and its bytes cover at least the tensors held; its
    ``length_key`` is one of its settings."""
    import yaml

    from attnbench.registry import params_of
    from attnbench.tasks import TASKS

    node = yaml.safe_load(path.read_text())
    cls = TASKS.get(node.pop("name"))
    assert cls.length_key == "" or cls.length_key in params_of(cls)
    small = {k: v for k, v in (("n_train", 40), ("n_val", 8), ("n_test", 8)) if k in node}
    if node.get("path", "") is None:
        assert cls(**{**node, "path": "unread.csv"}).planned_size() is None  # known once read
        return
    task = cls(**{**node, **small})
    planned, data = task.planned_size(), task.load(0)
    assert planned is not None and planned.spec == data.spec
    assert dict(planned.sizes) == {s: len(getattr(data, s)) for s in ("train", "val", "test")}
    held = sum(t.numel() * t.element_size() for s in (data.train, data.val, data.test)
               for t in (s.inputs, s.targets, s.align) if t is not None)
    assert planned.tensor_bytes() >= held


@pytest.mark.parametrize("attention", ["scaled", "additive"])
@pytest.mark.parametrize(("backbone", "task"), [("rnn", "assoc_recall"), ("seq2seq", "copy"),
                                                ("transformer", "copy")])
def test_the_step_estimate_is_a_lower_bound_of_a_real_step(backbone: str, task: str,
                                                           attention: str) -> None:
    """The backbone's activations and its attention calls' memory, from their facts, stay under
    what one real training step's tensors hold at once (torch.profiler's allocation events)."""
    from attnbench.config.build import attention_factory
    from attnbench.config.run_config import ComponentConfig
    from attnbench.training.device import autocast
    from attnbench.training.run_memory import MB, tensor_peak_mb
    from attnbench.training.steps import train_step

    cfg = composed(f"backbone={backbone}", f"task={task}", f"attention={attention}",
                   "trainer.batch_size=32", "trainer.eval_batch_size=1")
    size = task_of(cfg).planned_size()
    estimate = footprint(cfg, size, meta_model(cfg, size), loaded=False)
    data = task_of(cfg).load(0)
    torch.manual_seed(0)
    from attnbench.backbones import BACKBONES

    node = {k: v for k, v in cfg["backbone"].items() if k != "name"}
    model = BACKBONES.get(backbone)(data.spec, attention_factory(
        ComponentConfig.from_node(cfg["attention"])), **node).train()
    x, y = data.train.inputs[:32], data.train.targets[:32]
    amp = autocast(torch.device("cpu"), "32")
    measured = tensor_peak_mb(lambda: train_step(model, x, y, data.spec.kind, amp, 0.0))
    assert measured is not None
    assert "activations" in estimate.step_what  # the training step, not the evaluation batch
    assert 0 < estimate.step <= measured * MB, (estimate.step / MB, measured)


# -- file tasks: estimated once the file is read, before the model is built -------------------
def _text_job(tmp_path: Path, *overrides: str) -> tuple[dict, object]:
    rows = ["text,label"] + [f"word{i} other{i % 13} words here,{'pos' if i % 2 else 'neg'}"
                             for i in range(200)]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = composed("task=text", f"task.path={path}", *overrides)
    return cfg, task_of(cfg).load(0)


def test_a_file_task_is_not_estimated_before_it_is_read() -> None:
    assert resource_problems({"task": {"name": "text", "path": "x.csv"}}, available=1) == []


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["backbone.d_model=100000"], ["'backbone.d_model' = 100000", "parameters"]),
        (["backbone=rnn", "backbone.embed_dim=100000000"], ["'backbone.embed_dim' = 100000000"]),
        (["backbone.max_len=3"], ["'task.max_len' = 256", "sequences of 4 tokens",
                                  "'backbone.max_len' = 3"]),
        (["attention=lowrank", "attention.max_len=2"], ["'attention.max_len' = 2",
                                                        "attention.max_len>=4"]),
    ],
)
def test_a_file_task_model_is_refused_once_the_file_is_read(
    tmp_path: Path, overrides: list[str], says: list[str]
) -> None:
    cfg, data = _text_job(tmp_path, *overrides)
    (line,) = loaded_problems(cfg, data, available=16 * GIB)
    for fragment in says:
        assert fragment in line, line


def test_a_file_task_that_fits_passes_and_synthetic_tasks_are_not_checked_twice(
    tmp_path: Path,
) -> None:
    cfg, data = _text_job(tmp_path)
    assert loaded_problems(cfg, data, available=4 * GIB) == []
    synthetic = composed("task=copy", "task.n_train=8", "task.n_val=4", "task.n_test=4",
                         "backbone=seq2seq", "backbone.hidden=100000")
    assert resource_problems(synthetic, available=GIB)  # refused before it was drawn...
    assert loaded_problems(synthetic, task_of(synthetic).load(0), available=1) == []  # ...once


def test_available_memory_reads_this_machine() -> None:
    found, source = available_memory()
    assert found is None or (found > 0 and source)
