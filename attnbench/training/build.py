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
from attnbench.errors import ConfigError, IncompatibleError
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
        try:
            return cls(d_query, d_key, d_value, **params)
        except ValueError as err:  # name the group: "dropout" alone could be the backbone's
            raise ValueError(_in_group("attention", str(node["name"]), params, err)) from err

    return make


def _in_group(group: str, name: str, params: Mapping[str, Any], err: Exception) -> str:
    """A component's ValueError, saying which config key (or at least which group) it is about."""
    msg = _value_error(err)
    first, _, rest = msg.partition(" ")
    if first in params:
        return f"'{group}.{first}' {rest}"
    return msg if msg.startswith(f"{name}:") else f"{group} {name}: {msg}"


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
    if found["compat"] and problems == found["compat"]:
        raise IncompatibleError(problems[0])
    # Top-level, trainer and tracking problems do not stop the data and model checks below.
    components_ok = not any(found[g] for g in ("attention", "backbone", "task", "compat"))
    if not components_ok:
        raise ConfigError(problems[0], problems)
    seed = cfg.get("seed")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0
    if data is None:
        try:
            data = build_task(cfg).load(seed)
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
            torch.manual_seed(seed)
            model = BACKBONES.get(str(cfg["backbone"]["name"]))(
                data.spec, make_attention, **component_params(cfg["backbone"])
            )
    except ValueError as err:
        problems.append(_value_error(err))
    if problems or model is None or data is None:
        raise ConfigError(problems[0], problems)
    return Built(data=data, model=model, trainer=trainer_config(cfg["trainer"]))
