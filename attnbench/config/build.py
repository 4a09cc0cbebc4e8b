"""Wiring in one place: a typed config -> task data + model.

Components take plain typed arguments; this module is the only one that calls their
constructors from config (STYLE: torchtune's component builders).

Parameter matching (``match_params=VARIANT``, LRA's rule that a model stays within 10 % of the
baseline's parameters): the backbone's width (its ``width_key``: ``d_model``, ``hidden``) is
chosen so that the run's variant has about as many parameters as VARIANT (with its YAML defaults)
has at the configured width. The configured width is kept when the count is already within
``MATCH_TOLERANCE``; otherwise the width whose count is nearest the reference's is used (found by
bisection over widths the constructors accept, counted on the meta device: nothing allocated),
and the result says whether it landed within the tolerance. The config keeps the configured
width (it defines the reference); the width used is reported (``Match``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
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
from attnbench.tasks.base import Task, TaskData, TaskSpec
from attnbench.training.config import TrainerConfig

MATCH_TOLERANCE = 0.10  # LRA: a model may have at most 10 % more parameters than the baseline
MAX_WIDTH_FACTOR = 16  # the widest width tried: 16 x the configured width


@dataclass(frozen=True)
class Match:
    """What ``match_params`` chose: the width used for the run's variant, and both counts."""

    key: str  # e.g. "backbone.d_model"
    configured: int  # the width in the config (the reference's width)
    width: int  # the width used
    params: int  # the run's parameter count at `width`
    reference: str  # the reference variant
    reference_params: int  # its count at the configured width

    @property
    def gap(self) -> float:
        """Relative difference of the run's count from the reference's."""
        return self.params / self.reference_params - 1 if self.reference_params else 0.0

    @property
    def within(self) -> bool:
        return abs(self.gap) <= MATCH_TOLERANCE

    def note(self) -> str:
        where = "within" if self.within else "the nearest width: not within"
        changed = (f"{self.key} {self.configured} -> {self.width}" if self.width != self.configured
                   else f"{self.key} {self.width} kept")
        return (f"match_params={self.reference}: {changed}, {self.params:,} parameters vs "
                f"{self.reference_params:,} for {self.reference} ({self.gap:+.1%}; {where} "
                f"{MATCH_TOLERANCE:.0%})")

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "configured": self.configured, "width": self.width,
                "params": self.params, "reference": self.reference,
                "reference_params": self.reference_params, "within": self.within}


@dataclass
class Built:
    data: TaskData
    model: Backbone
    trainer: TrainerConfig
    match: Match | None = None  # what match_params chose, when set


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
                seed: int, match_params: str | None = None) -> Backbone:
    """The backbone with its attention variant, initialised from `seed` (ValueError if a
    constructor refuses a value); with `match_params`, at the width `match_width` picks."""
    if match_params is not None:
        backbone, _ = match_width(attention, backbone, data.spec, match_params)
    torch.manual_seed(seed)
    return BACKBONES.get(backbone.name)(data.spec, attention_factory(attention), **backbone.params)


def param_count(attention: ComponentConfig, backbone: ComponentConfig, spec: TaskSpec) -> int:
    """The model's parameter count, built on the meta device (no memory, no random draws)."""
    with torch.device("meta"):
        model = BACKBONES.get(backbone.name)(spec, attention_factory(attention), **backbone.params)
    return sum(p.numel() for p in model.parameters())


def match_width(attention: ComponentConfig, backbone: ComponentConfig, spec: TaskSpec,
                reference: str) -> tuple[ComponentConfig, Match]:
    """The backbone config at the width that brings `attention`'s parameter count nearest the
    `reference` variant's (module docstring), and what was chosen. ValueError (one line) for a
    backbone without a width or an unknown reference."""
    cls = BACKBONES.get(backbone.name)
    key = getattr(cls, "width_key", None)
    if key is None:
        raise ValueError(f"match_params={reference}: backbone '{backbone.name}' declares no "
                         "width to adjust (width_key); leave match_params unset")
    params = backbone.params
    configured = int(params.get(key, inspect.signature(cls.__init__).parameters[key].default))
    try:
        target = param_count(ComponentConfig(reference), backbone, spec)
    except ConfigError as err:  # an unknown variant name
        raise ValueError(f"'match_params' = {reference!r}: {err.problems[0]}") from None
    except ValueError as err:
        raise ValueError(f"match_params={reference}: the reference does not build at "
                         f"backbone.{key}={configured}: {_value_error(err)}") from None

    def at(width: int) -> ComponentConfig:
        return ComponentConfig(backbone.name, tuple({**params, key: width}.items()))

    def count(width: int) -> int | None:
        try:
            return param_count(attention, at(width), spec)
        except ValueError:  # e.g. heads must divide the width
            return None

    # the configured width is the run's own: a value it refuses is reported as it is
    own = param_count(attention, backbone, spec) if attention.name != reference else target
    width, found = configured, own
    if abs(own / target - 1) > MATCH_TOLERANCE:
        width, found = _nearest_width(count, target, configured)
    match = Match(f"backbone.{key}", configured, width, found, reference, target)
    return at(width), match


def _nearest_width(count: Callable[[int], int | None], target: int, start: int
                   ) -> tuple[int, int]:
    """(width, count) of the accepted width whose count is nearest `target`, counts growing with
    the width: bisection for the narrowest accepted width reaching `target`, then its accepted
    neighbour below."""

    def accepted(low: int, high: int, step: int) -> tuple[int, int] | None:
        for width in range(low, high + step, step):
            found = count(width)
            if found is not None:
                return width, found
        return None

    top = accepted(start * MAX_WIDTH_FACTOR, 1, -1)
    if top is None:
        raise ValueError("match_params: the backbone accepts no width up to "
                         f"{start * MAX_WIDTH_FACTOR}")
    if top[1] < target:  # even the widest tried stays below the reference
        return top
    best, low, high = top, 1, top[0] - 1
    while low <= high:
        mid = (low + high) // 2
        found = accepted(mid, high, 1)
        if found is None:
            high = mid - 1
        elif found[1] >= target:
            best, high = found, mid - 1
        else:
            low = found[0] + 1
    below = accepted(best[0] - 1, 1, -1) if best[0] > 1 else None
    if below is not None and target - below[1] < best[1] - target:
        return below
    return best


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
    model = match = None
    if data is not None and not problems:
        try:
            backbone = cfg.backbone
            if cfg.match_params is not None:
                backbone, match = match_width(cfg.attention, backbone, data.spec,
                                              cfg.match_params)
            model = build_model(cfg.attention, backbone, data, cfg.seed)
        except ValueError as err:
            problems.append(_value_error(err))
    if problems or model is None or data is None:
        raise ConfigError(problems[0], problems)
    return Built(data=data, model=model, trainer=cfg.trainer, match=match)


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
            match = cfg.get("match_params")  # an unknown name is a static problem already
            build_model(attention, backbone, data, seed,
                        match if match in ATTENTION.names() else None)
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
