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
    """Validate `cfg` completely, load the task's data and build the model (seeded).

    Goes as far as it can so that one ConfigError reports every problem: a bad trainer value
    does not hide a bad backbone value.
    """
    found = static_problems(cfg)
    problems = [p for group in found.values() for p in group]
    components_ok = not (found["attention"] or found["backbone"] or found["task"] or found[""])
    if not components_ok:
        raise ConfigError(problems[0], problems)
    if data is None:
        try:
            data = build_task(cfg).load(int(cfg["seed"]))
        except ConfigError as err:  # DataError included
            problems.extend(err.problems)
        except ValueError as err:
            problems.append(_value_error(err))
    make_attention = attention_factory(cfg["attention"])
    model = None
    try:
        if data is None:  # still check the attention's own values on a stand-in width
            make_attention(64, 64, 64)
        else:
            torch.manual_seed(int(cfg["seed"]) if isinstance(cfg["seed"], int) else 0)
            model = BACKBONES.get(str(cfg["backbone"]["name"]))(
                data.spec, make_attention, **component_params(cfg["backbone"])
            )
    except ValueError as err:
        problems.append(_value_error(err))
    if problems or model is None or data is None:
        raise ConfigError(problems[0], problems)
    return Built(data=data, model=model, trainer=trainer_config(cfg["trainer"]))
