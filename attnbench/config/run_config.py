"""The typed run config: what composition + validation produce, once, for every job.

`RunConfig` is a frozen tree of dataclasses. The component groups (attention, backbone, task)
stay "YAML keys = constructor arguments": a `ComponentConfig` is the registered name plus the
keyword arguments, checked against the constructor's signature (`config.validate`). Code below
the run pipeline takes these objects, never the raw dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from attnbench.training.config import TrainerConfig


@dataclass(frozen=True)
class ComponentConfig:
    """A component group's node: the registered `name` and its constructor's keyword arguments."""

    name: str
    items: tuple[tuple[str, Any], ...] = ()  # (key, value) pairs in YAML order: frozen, picklable

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> ComponentConfig:
        return cls(str(node["name"]), tuple(component_params(node).items()))

    @property
    def params(self) -> dict[str, Any]:
        """The constructor's keyword arguments (a fresh dict)."""
        return dict(self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


@dataclass(frozen=True)
class TrackingConfig:
    """Where runs are logged: None = the local SQLite store under `runs_dir`."""

    uri: str | None = None


@dataclass(frozen=True)
class RunConfig:
    """One job, validated (see `config.validate.validate`)."""

    attention: ComponentConfig
    backbone: ComponentConfig
    task: ComponentConfig
    trainer: TrainerConfig
    tracking: TrackingConfig
    seed: int
    runs_dir: str
    experiment_name: str | None = None
    resume: bool = False
    # An attention variant whose parameter count the backbone width is matched to (config.build)
    match_params: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data: saved with every run (config/config.yaml), logged as
        params, hashed for `--resume`; `validate` turns it back into the same RunConfig."""
        return {
            "seed": self.seed,
            "experiment_name": self.experiment_name,
            "runs_dir": self.runs_dir,
            "resume": self.resume,
            "attention": self.attention.to_dict(),
            "backbone": self.backbone.to_dict(),
            "task": self.task.to_dict(),
            "trainer": asdict(self.trainer),
            "tracking": asdict(self.tracking),
            # only when set: the configs (and hashes) of runs without it stay as they were
            **({"match_params": self.match_params} if self.match_params is not None else {}),
        }

    @property
    def default_experiment(self) -> str:
        """The MLflow experiment a single run logs into: `experiment_name`, else the task."""
        return self.experiment_name or self.task.name


TOP_LEVEL_KEYS = {
    "seed", "experiment_name", "runs_dir", "resume", "match_params",
    "attention", "backbone", "task", "trainer", "tracking", "experiment", "hydra",
    "tune",  # a sweep's protocol (run.tune), read by `launch`: no job trains with it
}


def component_params(node: Mapping[str, Any]) -> dict[str, Any]:
    """A component group's YAML minus its `name`: exactly the constructor's keyword arguments."""
    return {k: v for k, v in node.items() if k != "name"}


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: the resolved config as MLflow params."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
