"""Resource pre-flight: refuse a job whose sizes cannot fit before its data is drawn, its model is
built or anything is written, in one line naming the setting.

Every size comes from the components' own facts (attention/base.py, backbones/base.py,
tasks/base.py), read on the job's model built on PyTorch's meta device (shapes without storage:
milliseconds, no memory; for synthetic tasks from the settings alone, no tensor allocated):

- **lengths**: the backbone's ``length_limit`` (the Transformer embeds at most
  ``backbone.max_len`` positions) against the task's longest sequence, and each attention
  module's ``length_limit`` (lowrank: ``attention.max_len`` columns) against the keys its calls
  get;
- **memory**: an estimate of the job's peak against the memory available to new allocations
  (psutil's available memory, lowered to the cgroup's limit when the process runs under one). The
  estimate is deliberately a lower bound, so that only what surely cannot fit is refused:

  * the data: ``DataSize.tensor_bytes`` (int64 inputs, targets, alignments, plus what drawing
    the largest split needs on top); data already loaded (file tasks) is not counted again;
  * one training step: ``batch_size`` × the backbone's ``activations_per_example``, plus the
    ``memory_bytes`` of the largest of its ``attention_calls`` (scores, weights and what is saved
    for backward, at their peak; the other calls' are not counted), in 16-bit elements under
    ``trainer.precision=bf16|16``;
  * or one evaluation batch with the diagnostic weights every variant but ``none`` returns:
    ``min(eval_batch_size, N) × Tq × Tk × 12`` bytes for the largest call (float32, and the
    float64 copy the entropy is summed in);
  * the model: its parameters with their gradients and Adam's two moments: 4 float32 copies.

When it does not fit, the line names the setting that pushed it over: of the settings that
differ from their component's defaults, the one whose default saves the most.

It reads a `Sizing` of the job (its `RunConfig`, or a composed dict while validating);
``config.build.load_checked`` hands `size_problems` its one meta-device model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnbench.config.run_config import ComponentConfig, RunConfig

if TYPE_CHECKING:
    from attnbench.backbones.base import Backbone
    from attnbench.tasks.base import DataSize, Task, TaskData

FLOAT32 = 4
WEIGHT_COPIES = 4  # weights, gradients, Adam's two moments
EVAL_WEIGHT_BYTES = 4 + 8  # float32 weights and the float64 copy the entropy is summed in
COMPONENTS = ("task", "backbone", "attention")


@dataclass(frozen=True)
class Sizing:
    """What the size check reads of a job: its components, the trainer's batch sizes and its
    precision (`of`)."""

    attention: ComponentConfig
    backbone: ComponentConfig
    task: ComponentConfig
    batch_size: int = 1
    eval_batch_size: int = 1
    precision: str = "32"

    @classmethod
    def of(cls, cfg: Sizing | RunConfig | Mapping[str, Any]) -> Sizing:
        """From a typed `RunConfig`, or from a composed job's dict (validation, before its
        RunConfig exists: a value validation refuses reads as 1, an invalid component as one
        that builds nothing, so the estimate does not stop the other checks)."""
        if isinstance(cfg, Sizing):
            return cfg
        if isinstance(cfg, RunConfig):
            trainer = cfg.trainer
            return cls(cfg.attention, cfg.backbone, cfg.task, trainer.batch_size,
                       trainer.eval_batch_size, str(trainer.precision))
        node = cfg.get("trainer")
        node = node if isinstance(node, Mapping) else {}
        attention, backbone, task = (
            ComponentConfig.from_node(n) if isinstance(n, Mapping) and "name" in n
            else ComponentConfig("?") for n in (cfg.get(g) for g in COMPONENTS[::-1]))
        return cls(attention, backbone, task, _int(node.get("batch_size")),
                   _int(node.get("eval_batch_size")), str(node.get("precision", "32")))

    def changed(self, group: str, key: str, value: Any) -> Sizing:
        """The same job with `group.key` (a component's or the trainer's) set to `value`."""
        if group == "trainer":
            return replace(self, **{key: value})
        node = getattr(self, group)
        return replace(self, **{group: ComponentConfig(node.name,
                                                       tuple({**node.params, key: value}.items()))})


@dataclass(frozen=True)
class Footprint:
    """A job's memory, by part (bytes), and what the step part is made of (for messages)."""

    data: int
    step: int
    step_what: str
    model: int
    params: int

    @property
    def total(self) -> int:
        return self.data + self.step + self.model


Job = Sizing | RunConfig | Mapping[str, Any]  # what the entry points take (`Sizing.of`)


def resource_problems(cfg: Job, available: int | None = None) -> list[str]:
    """One line per size the job cannot afford, from its settings alone (empty when it fits, or
    when its task's size is only known once its files are read: see `loaded_problems`).
    `available`: bytes free for new allocations (default: measured, see `available_memory`)."""
    job = Sizing.of(cfg)
    size = planned_size(job)
    if size is None:
        return []
    return size_problems(job, size, False, meta_model(job, size), available)


def loaded_problems(cfg: Job, data: TaskData, available: int | None = None) -> list[str]:
    """The same check once a task without a planned size is loaded (file tasks: vocabulary and
    lengths are known now), before its model is built."""
    from attnbench.tasks.base import DataSize

    job = Sizing.of(cfg)
    if _task(job) is None or planned_size(job) is not None:  # checked before it was drawn
        return []
    size = DataSize.of(data)
    return size_problems(job, size, True, meta_model(job, size), available)


def planned_size(cfg: Job) -> DataSize | None:
    """The task's size from its settings alone (None: known once its files are read)."""
    task = _task(Sizing.of(cfg))
    return task.planned_size() if task is not None else None


def size_problems(job: Sizing, size: DataSize, loaded: bool, model: Backbone | None,
                  available: int | None = None) -> list[str]:
    """Lengths, then memory, on the job's model built on the meta device (None: the data alone
    is estimated); `loaded`: the data exists already (it is not counted again)."""
    found = length_problems(job, size)
    if found:
        return found
    if model is not None:
        found = key_limit_problems(job, model)
        if found:
            return found
    source = "given"
    if available is None:
        available, source = available_memory()
        if available is None:
            return []
    foot = footprint(job, size, model, loaded)
    if foot.total <= available:
        return []
    return [_message(job, size, foot, loaded, f"more than the {gib(available)} of memory "
                                              f"available ({source})")]


# -- the facts, read ---------------------------------------------------------------------------
def _task(job: Sizing) -> Task | None:
    """The job's task, built from its settings (it draws nothing); None if they are invalid
    (validation reports them)."""
    from attnbench.tasks import TASKS

    try:
        return TASKS.get(job.task.name)(**job.task.params)
    except Exception:  # noqa: BLE001 - invalid settings are reported by validation
        return None


def _defaults(group: str, name: str) -> dict[str, Any]:
    """The constructor defaults of a component (its YAML's values)."""
    import inspect

    from attnbench.attention import ATTENTION
    from attnbench.attention.base import CONTEXT_ARGS as ATTENTION_ARGS
    from attnbench.backbones import BACKBONES
    from attnbench.backbones.base import CONTEXT_ARGS as BACKBONE_ARGS
    from attnbench.registry import params_of
    from attnbench.tasks import TASKS

    registry, context = {"attention": (ATTENTION, ATTENTION_ARGS),
                         "backbone": (BACKBONES, BACKBONE_ARGS), "task": (TASKS, ())}[group]
    params = params_of(registry.get(name), context)
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def meta_model(cfg: Job, size: DataSize) -> Backbone | None:
    """The job's model on the meta device (shapes, no storage); None when a constructor refuses
    the settings (validation reports it) or cannot be built there."""
    import torch

    from attnbench.attention import ATTENTION
    from attnbench.backbones import BACKBONES

    job = Sizing.of(cfg)
    try:
        variant = ATTENTION.get(job.attention.name)
        params = job.attention.params
        with torch.device("meta"):
            return BACKBONES.get(job.backbone.name)(
                size.spec, lambda dq, dk, dv: variant(dq, dk, dv, **params),
                **job.backbone.params)
    except Exception:  # noqa: BLE001 - a refused or meta-incapable constructor: no estimate
        return None


def length_problems(job: Sizing, size: DataSize) -> list[str]:
    """The backbone's `length_limit` against the task's longest sequence."""
    from attnbench.backbones import BACKBONES

    try:
        name = job.backbone.name
        params = {**_defaults("backbone", name), **job.backbone.params}
        limit = BACKBONES.get(name).length_limit(params)
        longest = BACKBONES.get(name).sequence_length(size.spec)  # lm: input and answer
    except Exception:  # noqa: BLE001 - invalid settings are reported by validation
        return []
    if limit is None or longest <= limit[1]:
        return []
    key, value = limit
    fixes = (f"raise backbone.{key}, shorten the task, or use backbone.positions=sinusoidal|"
             "rope|alibi" if "positions" in params else f"raise backbone.{key} or shorten the task")
    return [f"{_length_setting(job)}sequences of {longest} tokens are longer than the "
            f"model's maximum 'backbone.{key}' = {value}: {fixes}"]


def key_limit_problems(job: Sizing, model: Backbone) -> list[str]:
    """Each attention module's `length_limit` against the keys its calls get."""
    needed: dict[tuple[str, int], int] = {}
    for call in model.attention_calls():
        limit = call.module.length_limit()
        if limit is not None and call.tk > limit[1]:
            needed[limit] = max(needed.get(limit, 0), call.tk)
    name = job.attention.name
    return [f"'attention.{key}' = {value}: {name} attention takes at most {value} keys, and "
            f"this task's sequences give it {tk}; set attention.{key}>={tk} (or shorten the task)"
            for (key, value), tk in needed.items()]


def footprint(cfg: Job, size: DataSize, model: Backbone | None, loaded: bool) -> Footprint:
    """The job's memory by part (see the module docstring); without a model only the data."""
    from attnbench.attention.base import Call

    job = Sizing.of(cfg)
    data = 0 if loaded else size.tensor_bytes()
    if model is None:
        return Footprint(data, 0, "", 0, 0)
    batch, evals = job.batch_size, min(job.eval_batch_size, max(size.sizes.get("val", 1),
                                                                size.sizes.get("test", 1)))
    element = 2 if job.precision in ("bf16", "16") else FLOAT32
    calls = model.attention_calls()
    activations = batch * model.activations_per_example() * element
    scores = max((c.module.memory_bytes(Call(batch, c.tq, c.tk, element)) for c in calls),
                 default=0)
    shown = [c for c in calls if not c.module.baseline]
    big = max(shown, key=lambda c: c.tq * c.tk, default=None)
    weights = evals * big.tq * big.tk * EVAL_WEIGHT_BYTES if big is not None else 0
    params = sum(p.numel() for p in model.parameters())
    if activations + scores >= weights:
        what = (f"a batch of {batch}: {gib(activations)} of activations and {gib(scores)} for "
                "one call's attention scores")
        step = activations + scores
    else:
        what = f"{evals} x {big.tq} x {big.tk} diagnostic attention weights in evaluation"
        step = weights
    return Footprint(data, step, what, params * FLOAT32 * WEIGHT_COPIES, params)


# -- the message -------------------------------------------------------------------------------
def _message(job: Sizing, size: DataSize, foot: Footprint, loaded: bool, have: str) -> str:
    """One line: the part that dominates, the setting that pushed the job over, the way out."""
    culprit = _culprit(job, size, foot.total, loaded)
    part = max(("data", foot.data), ("step", foot.step), ("model", foot.model),
               key=lambda p: p[1])[0]
    if part == "data":
        biggest = max(size.sizes, key=lambda s: size.sizes[s])
        key, value = culprit or (f"task.n_{biggest}", size.sizes[biggest])
        spec = size.spec
        return (f"'{key}' = {value}: the task's data needs ~{gib(foot.data)} "
                f"({sum(size.sizes.values())} examples of {spec.max_len} x {spec.channels} input "
                f"and {max(size.target_len, 1)} target int64 values each, plus drawing them), "
                f"{have}; lower {key}")
    names = f"backbone={job.backbone.name} attention={job.attention.name}"
    if part == "model":
        lead = f"'{culprit[0]}' = {culprit[1]}: " if culprit else ""
        lower = culprit[0] if culprit else "the backbone's or the task's sizes"
        return (f"{lead}the model ({names}) has {foot.params:,} parameters: with their gradients "
                f"and optimiser state they need ~{gib(foot.model)}, {have}; lower {lower}")
    length = _task_length_key(job)
    key, value = culprit or (length, job.task.params.get(length.removeprefix("task.")))
    also = "" if key.startswith("trainer.") else f"{key}, "
    return (f"'{key}' = {value}: a training step or evaluation batch of {names} needs "
            f"~{gib(foot.step)} ({foot.step_what}), {have}; lower {also}trainer.batch_size or "
            "trainer.eval_batch_size")


def _culprit(job: Sizing, size: DataSize, total: int, loaded: bool) -> tuple[str, Any] | None:
    """(dotted setting, value): of the settings that differ from their defaults, the one whose
    default shrinks the estimate most; None if none does. Loaded data keeps its size."""
    best: tuple[int, str, Any] | None = None
    for group, key, value, default in _changed(job, loaded):
        trial = job.changed(group, key, default)
        if not loaded:
            task = _task(trial)
            planned = task.planned_size() if task is not None else None
            if planned is None:
                continue
            size = planned
        model = meta_model(trial, size)
        if model is None:
            continue
        saved = total - footprint(trial, size, model, loaded).total
        if saved > 0 and (best is None or saved > best[0]):
            best = (saved, f"{group}.{key}", value)
    return None if best is None else (best[1], best[2])


def _changed(job: Sizing, loaded: bool) -> Iterator[tuple[str, str, Any, Any]]:
    """(group, key, value, default) of every integer size setting away from its default."""
    from attnbench.training.config import TrainerConfig

    groups: dict[str, dict[str, Any]] = {
        "trainer": {"batch_size": TrainerConfig.batch_size,
                    "eval_batch_size": TrainerConfig.eval_batch_size}}
    values = {"trainer": {"batch_size": job.batch_size, "eval_batch_size": job.eval_batch_size}}
    for group in COMPONENTS if not loaded else COMPONENTS[1:]:
        values[group] = getattr(job, group).params
        try:
            groups[group] = _defaults(group, getattr(job, group).name)
        except Exception:  # noqa: BLE001 - an unknown component is reported by validation
            continue
    for group, defaults in groups.items():
        for key, value in values[group].items():
            default = defaults.get(key)
            if (key in defaults and _is_int(value) and value != default
                    and (default is None or _is_int(default))):
                yield group, key, value, default


def _task_length_key(job: Sizing) -> str:
    """'task.<length_key>' of the job's task ('task.max_len' for a task without one)."""
    task = _task(job)
    return f"task.{task.length_key or 'max_len'}" if task is not None else "task.max_len"


def _length_setting(job: Sizing) -> str:
    """"'task.length' = 20: " for the task's length setting (its ``test_`` twin when that one,
    the length-extrapolation test length, is the longer), when it has one."""
    node = job.task.params
    key = _task_length_key(job).removeprefix("task.")
    test = f"test_{key}"
    if _is_int(node.get(test)) and node[test] > _int(node.get(key), 0):
        key = test
    value = node.get(key)
    return f"'task.{key}' = {value}: " if value is not None else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, default: int = 1) -> int:
    """A size setting as validation will accept it; `default` for what it will refuse (the
    estimate then does not stop the other checks)."""
    return value if _is_int(value) and value >= 1 else default


def available_memory() -> tuple[int | None, str]:
    """(bytes available to new allocations, where the figure comes from): psutil's available
    memory, lowered to what the cgroup (v2 or v1) still allows; (None, "") if unknown."""
    import psutil

    found: list[tuple[int, str]] = [(int(psutil.virtual_memory().available), "psutil")]
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
         "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit.isdigit() and int(limit) < 2**60:
                used = int(Path(usage_file).read_text().strip())
                found.append((max(int(limit) - used, 0), "the cgroup's memory limit"))
                break
        except (OSError, ValueError):
            continue
    return min(found)


def gib(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 2**10:.0f} KiB"

