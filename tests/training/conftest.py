"""Training-loop tests: tiny composed configs, one torch thread, a sink that records."""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Sequence

import pytest
import torch

from attnbench.backbones.base import Backbone
from attnbench.config.run_config import RunConfig
from attnbench.tasks.base import TaskData
from attnbench.training.config import TrainerConfig

# A small classification run with dropout (so resuming must restore the RNG): 512 examples.
RECALL = ("task=assoc_recall", "task.n_train=512", "task.n_val=96", "task.n_test=96",
          "task.num_pairs=8", "task.num_queries=4", "backbone=transformer",
          "backbone.d_model=16", "backbone.layers=1", "backbone.dropout=0.1", "attention=scaled")
# A small transduction run (teacher-forced validation loss, greedy decoding).
COPY = ("task=copy", "task.length=6", "task.n_train=128", "task.n_val=32", "task.n_test=32",
        "backbone=seq2seq", "backbone.embed_dim=16", "backbone.hidden=16", "attention=dot")


@pytest.fixture(autouse=True)
def one_thread() -> typing.Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def _composed(overrides: tuple[str, ...]) -> tuple[RunConfig, TaskData]:
    from omegaconf import OmegaConf

    from attnbench.config.build import build_task
    from attnbench.config.compose import hydra_compose
    from attnbench.config.validate import validate

    with hydra_compose() as compose:
        node = compose("config", overrides=["trainer.progress=false", *overrides])
    cfg = validate(OmegaConf.to_container(node, resolve=True))
    return cfg, build_task(cfg.task).load(cfg.seed)


class Case(typing.NamedTuple):
    model: Backbone
    data: TaskData
    trainer: TrainerConfig
    seed: int


def case(overrides: Sequence[str] = RECALL, **trainer: object) -> Case:
    """A freshly initialised model (same seed, same weights every call), the task's data (built
    once per override list) and the trainer settings with `trainer` replaced."""
    from attnbench.config.build import build_model
    from attnbench.training.seeding import seed_everything

    cfg, data = _composed(tuple(overrides))
    seed_everything(cfg.seed)
    model = build_model(cfg.attention, cfg.backbone, data, cfg.seed)
    return Case(model, data, dataclasses.replace(cfg.trainer, **trainer), cfg.seed)


class Recorder:
    """A metric sink that keeps everything; `fail_at` raises once that train/loss step arrives."""

    def __init__(self, fail_at: int = 0) -> None:
        self.logged: list[tuple[int, dict[str, float]]] = []
        self.fail_at = fail_at

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.fail_at and step == self.fail_at and "train/loss" in metrics:
            raise KeyboardInterrupt  # what Ctrl-C or a killed job looks like to the loop
        self.logged.append((step, dict(metrics)))

    def steps_of(self, name: str) -> list[int]:
        return [step for step, m in self.logged if name in m]
