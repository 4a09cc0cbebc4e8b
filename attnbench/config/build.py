"""Wiring in one place: a typed config -> task data + model.

Components take plain typed arguments; this module is the only one that calls their
constructors from config (STYLE: torchtune's component builders).
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
from attnbench.config.schema import ComponentConfig, RunConfig
from attnbench.errors import ConfigError
from attnbench.tasks import TASKS
from attnbench.tasks.base import Task, TaskData
from attnbench.training.config import TrainerConfig


@dataclass
class Built:
    data: TaskData
    model: Backbone
    trainer: TrainerConfig


def attention_factory(spec: ComponentConfig) -> AttentionFactory:
    cls = ATTENTION.get(spec.name)
    params = spec.params

    def make(d_query: int, d_key: int, d_value: int) -> Attention:
        try:
            return cls(d_query, d_key, d_value, **params)
        except ValueError as err:  # name the group: "dropout" alone could be the backbone's
            raise ValueError(_in_group("attention", spec.name, params, err)) from err

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


def build_task(spec: ComponentConfig) -> Task:
    try:
        return TASKS.get(spec.name)(**spec.params)
    except (ValueError, TypeError) as err:
        raise ConfigError(_value_error(err)) from err


def build_model(attention: ComponentConfig, backbone: ComponentConfig, data: TaskData,
                seed: int) -> Backbone:
    """The backbone with its attention variant, initialised from `seed` (ValueError if a
    constructor refuses a value)."""
    torch.manual_seed(seed)
    return BACKBONES.get(backbone.name)(data.spec, attention_factory(attention), **backbone.params)


def build(cfg: RunConfig, data: TaskData | None = None) -> Built:
    """Load the task's data (unless given) and build the model; ConfigError for data-file and
    constructor problems."""
    from attnbench.config.resources import loaded_problems, resource_problems

    problems: list[str] = []
    if data is None:
        problems = resource_problems(cfg.to_dict())  # refuse what cannot fit before drawing it
        if problems:
            raise ConfigError(problems[0], problems)
        data = _load(cfg.task, cfg.seed, problems)
    if data is not None:  # a file task's sizes are known now: refuse a model that cannot fit
        problems.extend(loaded_problems(cfg.to_dict(), data))
    model = None
    if data is not None and not problems:
        try:
            model = build_model(cfg.attention, cfg.backbone, data, cfg.seed)
        except ValueError as err:
            problems.append(_value_error(err))
    if problems or model is None or data is None:
        raise ConfigError(problems[0], problems)
    return Built(data=data, model=model, trainer=cfg.trainer)


def check_components(cfg: Mapping[str, Any], data_cache: dict | None = None) -> list[str]:
    """Data-file and constructor problems of a composed job whose component groups passed the
    static checks (`config.validate`), all of them; loads each task node's data once per cache."""
    seed = cfg.get("seed")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0
    attention, backbone, task = (ComponentConfig.from_node(cfg[g])
                                 for g in ("attention", "backbone", "task"))
    problems: list[str] = []
    key = repr(cfg["task"])  # data problems do not depend on the seed: load once
    data = (data_cache or {}).get(key) or _load(task, seed, problems)
    if data is not None and data_cache is not None:
        data_cache[key] = data
    if data is not None:  # a file task's sizes are known now: before its model is built
        from attnbench.config.resources import loaded_problems

        sizes = loaded_problems(cfg, data)
        if sizes:
            return problems + sizes
    try:
        if data is None:  # still check the attention's own values on a stand-in width
            attention_factory(attention)(64, 64, 64)
        else:
            build_model(attention, backbone, data, seed)
    except ValueError as err:
        problems.append(_value_error(err))
    return problems


def _load(task: ComponentConfig, seed: int, problems: list[str]) -> TaskData | None:
    try:
        return build_task(task).load(seed)
    except ConfigError as err:  # DataError included
        problems.extend(err.problems)
    except ValueError as err:
        problems.append(_value_error(err))
    return None
