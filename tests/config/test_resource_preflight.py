"""The resource pre-flight (attnbench.config.resources): sizes a backbone or the machine cannot
hold are refused from the settings alone, before any data is drawn, naming the key; what the
presets and defaults ask for is never refused. `available` is given, so the figures do not depend
on this machine's free memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnbench.config.resources import (
    available_memory,
    data_bytes,
    resource_problems,
    step_bytes,
    task_shape,
)

GIB = 2**30
CONF = Path(__file__).resolve().parents[2] / "conf"


def composed(*overrides: str) -> dict:
    from omegaconf import OmegaConf

    from attnbench.config.compose import hydra_compose

    with hydra_compose() as compose:
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


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
    ],
)
def test_sizes_that_cannot_fit_are_named(overrides: list[str], says: list[str]) -> None:
    (line,) = resource_problems(composed(*overrides), available=16 * GIB)
    for fragment in says:
        assert fragment in line, line


def test_the_estimate_is_a_lower_bound_of_the_tensors_it_names() -> None:
    """The copy task's data estimate covers at least its tensors' bytes (measured by drawing a
    small split)."""
    from attnbench.tasks import TASKS

    cfg = composed("task=copy", "task.n_train=300", "task.n_val=20", "task.n_test=20")
    task = TASKS.get("copy")(**{k: v for k, v in cfg["task"].items() if k != "name"})
    data = task.load(0)
    held = sum(t.numel() * t.element_size() for s in (data.train, data.val, data.test)
               for t in (s.inputs, s.targets, s.align))
    shape = task_shape(cfg["task"])
    assert shape is not None and data_bytes(shape) >= held


def test_file_tasks_are_not_estimated() -> None:
    assert task_shape({"name": "text", "path": "x.csv"}) is None
    assert resource_problems({"task": {"name": "text", "path": "x.csv"}}, available=1) == []


def test_step_grows_with_length_and_batch() -> None:
    small = composed("task=copy", "backbone=seq2seq", "attention=additive")
    longer = composed("task=copy", "backbone=seq2seq", "attention=additive", "task.length=200")
    shape_s, shape_l = task_shape(small["task"]), task_shape(longer["task"])
    assert step_bytes(longer, shape_l)[0] > step_bytes(small, shape_s)[0]


def test_available_memory_reads_this_machine() -> None:
    found, source = available_memory()
    assert found is None or (found > 0 and source)
