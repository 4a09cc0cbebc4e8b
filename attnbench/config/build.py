"""Wiring in one place: a typed config -> task data + model.

Components take plain typed arguments; this module is the only one that calls their
constructors from config (STYLE: torchtune's component builders).

One pass per job: the data is loaded once and the model built once. Validation with loading
(`config.validate.validate_and_load`, the pre-flight's) runs `load_checked`: the size check
(`config.resources`) before anything is drawn, the data loaded, the model built once on the meta
device for the size check and its constructors' problems; what it proved (`Loaded`) goes to
`build`, which builds the real model. A job given only its validated `RunConfig` loads the data
itself (`load`), checking what validation could not (a file task's sizes, known once it is read).

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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from attnbench.attention import ATTENTION
from attnbench.attention.base import Attention
from attnbench.backbones import BACKBONES
from attnbench.backbones.base import AttentionFactory, Backbone
from attnbench.config.run_config import ComponentConfig, RunConfig
from attnbench.errors import ConfigError
from attnbench.tasks import TASKS
from attnbench.tasks.base import DataSize, Task, TaskData, TaskSpec
from attnbench.training.config import TrainerConfig

if TYPE_CHECKING:
    from attnbench.config.resources import Sizing

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


@dataclass(frozen=True)
class Loaded:
    """A job's data (loaded with `seed`) and the backbone its model is built with, at the width
    `match_params` chose: what `load_checked` or `load` proved, for `build`."""

    data: TaskData
    seed: int
    backbone: ComponentConfig
    match: Match | None = None


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


def meta_model(attention: ComponentConfig, backbone: ComponentConfig, spec: TaskSpec
               ) -> Backbone:
    """The model on the meta device: shapes without storage, no random draws (ValueError, as
    `build_model`, for a value a constructor refuses)."""
    with torch.device("meta"):
        return BACKBONES.get(backbone.name)(spec, attention_factory(attention), **backbone.params)


def param_count(attention: ComponentConfig, backbone: ComponentConfig, spec: TaskSpec) -> int:
    """The model's parameter count, built on the meta device (no memory, no random draws)."""
    return sum(p.numel() for p in meta_model(attention, backbone, spec).parameters())


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


def build(cfg: RunConfig, loaded: Loaded | None = None) -> Built:
    """The job's model, built once on its data: `loaded` (what validation proved and loaded with
    the job's seed), else the data `load` reads now. ConfigError for data-file and constructor
    problems."""
    if loaded is None or loaded.seed != cfg.seed:
        loaded = load(cfg)
    try:
        model = build_model(cfg.attention, loaded.backbone, loaded.data, cfg.seed)
    except ValueError as err:
        raise ConfigError(_value_error(err)) from err
    return Built(data=loaded.data, model=model, trainer=cfg.trainer, match=loaded.match)


def load(cfg: RunConfig) -> Loaded:
    """A validated job's data, and the backbone it is built with; ConfigError for a data file
    that cannot be read or a model it cannot hold. Validation checked the sizes of a task with a
    planned size; a file task's are checked now that it is read."""
    from attnbench.config.resources import Sizing, planned_size

    job = Sizing.of(cfg)
    problems: list[str] = []
    data = _load(cfg.task, cfg.seed, problems)
    if data is None:
        raise ConfigError(problems[0], problems)
    sized = planned_size(job) is None  # a file task: sized now
    backbone, match, problems = _fitted(job, DataSize.of(data), cfg.match_params, check=sized,
                                        loaded=True)
    if problems:
        raise ConfigError(problems[0], problems)
    return Loaded(data, cfg.seed, backbone, match)


def load_checked(job: Sizing, seed: int, match_params: str | None = None,
                 cache: dict[str, tuple[int, TaskData]] | None = None
                 ) -> tuple[Loaded | None, list[str]]:
    """Validation's pass over a job's data and model (every problem, or what it proved): what
    cannot fit refused before anything is drawn (tasks with a planned size) or once the files
    are read (file tasks), the data loaded (once per task node in `cache`: data problems do not
    depend on the seed, and the data keeps the seed it was loaded with), the width
    `match_params` picks, and the model built once on the meta device for the size check and
    its constructors' refusals."""
    from attnbench.config.resources import planned_size

    planned = planned_size(job)
    if planned is not None:  # refuse what cannot fit before drawing it
        backbone, match, problems = _fitted(job, planned, match_params, check=True, loaded=False)
        if problems:
            return None, problems
    problems = []
    key = repr(job.task)
    cached = (cache or {}).get(key)
    data_seed, data = cached if cached else (seed, _load(job.task, seed, problems))
    if data is None:
        if planned is None:  # still check the attention's own values on a stand-in width
            try:
                attention_factory(job.attention)(64, 64, 64)
            except ValueError as err:
                problems.append(_value_error(err))
        return None, problems
    if cache is not None:
        cache[key] = (data_seed, data)
    if planned is None:  # a file task's sizes are known now: before its model is built
        backbone, match, problems = _fitted(job, DataSize.of(data), match_params, check=True,
                                            loaded=True)
        if problems:
            return None, problems
    return Loaded(data, data_seed, backbone, match), []


def _fitted(job: Sizing, size: DataSize, match_params: str | None, *, check: bool,
            loaded: bool) -> tuple[ComponentConfig, Match | None, list[str]]:
    """(backbone at the width `match_params` picks, the match, problems); with `check`, the
    model built on the meta device once: its constructors' refusals and the size check
    (`resources.size_problems`; `loaded`: the data exists already)."""
    from attnbench.config.resources import length_problems, size_problems

    backbone, match, model = job.backbone, None, None
    refused: list[str] = []
    try:
        if match_params is not None:
            backbone, match = match_width(job.attention, job.backbone, size.spec, match_params)
        if check:
            too_long = length_problems(replace(job, backbone=backbone), size)
            if too_long:  # the constructor would refuse the same length again
                return backbone, match, too_long
            model = meta_model(job.attention, backbone, size.spec)
    except ValueError as err:
        refused.append(_value_error(err))
    except Exception:  # noqa: BLE001 - a constructor the meta device cannot run: no estimate,
        refused += _refused(job.attention, backbone, size.spec)  # its refusals found for real
    if not check:
        return backbone, match, refused
    return backbone, match, size_problems(replace(job, backbone=backbone), size, loaded,
                                          model) + refused


def _refused(attention: ComponentConfig, backbone: ComponentConfig, spec: TaskSpec
             ) -> list[str]:
    """What a constructor refuses, built for real (for a component the meta device cannot
    build: a second, full build, only then)."""
    try:
        BACKBONES.get(backbone.name)(spec, attention_factory(attention), **backbone.params)
    except ValueError as err:
        return [_value_error(err)]
    return []


def _load(task: ComponentConfig, seed: int, problems: list[str]) -> TaskData | None:
    try:
        return build_task(task).load(seed)
    except ConfigError as err:  # DataError included
        problems.extend(err.problems)
    except ValueError as err:
        problems.append(_value_error(err))
    return None
