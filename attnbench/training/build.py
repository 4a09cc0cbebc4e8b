"""Wiring in one place: config -> task data + model, every problem reported before training.

Components take plain typed arguments; this module is the only one that reads their config
groups and calls their constructors (STYLE: torchtune's component builders).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from attnbench.attention import ATTENTION
from attnbench.attention.base import Attention
from attnbench.backbones import BACKBONES
from attnbench.backbones.base import AttentionFactory, Backbone
from attnbench.config import TrainerConfig, component_params, static_problems, trainer_config
from attnbench.errors import ConfigError
from attnbench.tasks import TASKS
from attnbench.tasks.base import Task, TaskData


@dataclass
class Built:
    data: TaskData
    model: Backbone
    trainer: TrainerConfig


def attention_factory(node: Mapping[str, Any]) -> AttentionFactory:
    cls = ATTENTION.get(str(node["name"]))
    params = component_params(node)

    def make(d_query: int, d_key: int, d_value: int) -> Attention:
        return cls(d_query, d_key, d_value, **params)

    return make


def _value_error(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def build_task(cfg: Mapping[str, Any]) -> Task:
    try:
        return TASKS.get(str(cfg["task"]["name"]))(**component_params(cfg["task"]))
    except (ValueError, TypeError) as err:
        raise ConfigError(_value_error(err)) from err


def build(cfg: Mapping[str, Any], data: TaskData | None = None) -> Built:
    """Validate `cfg` completely, load the task's data and build the model (seeded)."""
    problems = static_problems(cfg)
    if problems:
        raise ConfigError(problems[0], problems)
    trainer = trainer_config(cfg["trainer"])
    seed = int(cfg["seed"])
    if data is None:
        try:
            data = build_task(cfg).load(seed)
        except ConfigError as err:  # DataError included
            problems.extend(err.problems)
        except ValueError as err:
            problems.append(_value_error(err))
    make_attention = attention_factory(cfg["attention"])
    if data is None:  # still check the model's own values on a stand-in width
        try:
            make_attention(64, 64, 64)
        except ValueError as err:
            problems.append(_value_error(err))
        raise ConfigError(problems[0], problems)
    torch.manual_seed(seed)
    try:
        model = BACKBONES.get(str(cfg["backbone"]["name"]))(
            data.spec, make_attention, **component_params(cfg["backbone"])
        )
    except ValueError as err:
        problems.append(_value_error(err))
        raise ConfigError(problems[0], problems) from err
    return Built(data=data, model=model, trainer=trainer)
