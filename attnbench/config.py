"""Config schema, the conf/ folder, and validation that reports every problem at once.

Run settings (trainer, top level) have a typed schema here; component settings (attention,
backbone, task) are checked against their constructors' typed keyword arguments (one source of
truth: the component's signature). Hydra composes; this module only reads and checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnbench.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """conf/ ships inside the wheel as attnbench/conf; in a source checkout it sits beside it."""
    for candidate in (PACKAGE_DIR / "conf", PACKAGE_DIR.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise ConfigError(f"attnbench's conf/ folder is missing (looked in {PACKAGE_DIR})")


# Config groups a user picks from, in the order `attnbench list` shows them.
GROUPS: tuple[str, ...] = ("attention", "backbone", "task", "trainer", "tracking", "experiment")


def group_options(group: str) -> list[str]:
    """Options of a config group: the YAML files in its folder (the folder is the list), plus
    the YAMLs installed plugin packages add to it (attnbench.plugins)."""
    from attnbench.plugins import plugin_yamls

    folder = conf_dir() / group
    options = {p.stem for p in folder.glob("*.yaml")} if folder.is_dir() else set()
    return sorted(options | set(plugin_yamls(group)))


def describe(path: Path) -> str:
    """The one-line comment every YAML opens with."""
    with path.open(encoding="utf-8") as fh:
        first = fh.readline().strip()
        if first.startswith("# @package"):
            first = fh.readline().strip()
    return first.lstrip("#").strip()


@dataclass
class TrainerConfig:
    """Training-loop settings (conf/trainer/*.yaml)."""

    epochs: int = 4
    max_steps: int = 0  # 0 = no cap
    batch_size: int = 64
    eval_batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # 0 = off
    warmup_steps: int = 0
    limit_eval_batches: int = 0  # 0 = all
    log_every: int = 25
    threads: int = 0  # 0 = cores / parallel jobs
    deterministic: bool = True
    progress: bool = True

    def problems(self) -> list[str]:
        out: list[str] = []

        def need(ok: bool, key: str, rule: str) -> None:
            if not ok:
                out.append(f"'trainer.{key}' = {getattr(self, key)!r} is out of range: {rule}")

        need(self.epochs >= 1, "epochs", "must be >= 1")
        need(self.max_steps >= 0, "max_steps", "must be >= 0 (0 = no cap)")
        need(self.batch_size >= 1, "batch_size", "must be >= 1")
        need(self.eval_batch_size >= 1, "eval_batch_size", "must be >= 1")
        need(0 < self.lr <= 10, "lr", "must be in (0, 10]")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 = off)")
        need(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        need(self.limit_eval_batches >= 0, "limit_eval_batches", "must be >= 0 (0 = all)")
        need(self.log_every >= 1, "log_every", "must be >= 1")
        need(self.threads >= 0, "threads", "must be >= 0 (0 = cores / parallel jobs)")
        return out


TOP_LEVEL_KEYS = {
    "seed",
    "experiment_name",
    "runs_dir",
    "resume",
    *GROUPS,
    "hydra",
}


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


def component_params(node: Mapping[str, Any]) -> dict[str, Any]:
    """A component group's YAML minus its `name`: exactly the constructor's keyword arguments."""
    return {k: v for k, v in node.items() if k != "name"}


def trainer_config(node: Mapping[str, Any]) -> TrainerConfig:
    from attnbench.registry import check_params

    problems = check_params(TrainerConfig, node, "trainer")
    if problems:
        raise ConfigError(problems[0], problems)
    cfg = TrainerConfig(**dict(node))
    if cfg.problems():
        raise ConfigError(cfg.problems()[0], cfg.problems())
    return cfg


def static_problems(cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    """Everything that can be checked without loading data or building a model, by group
    ("attention", "backbone", "task", "trainer", "" for the top level, "compat" for a backbone
    that cannot run the task's kind, "tracking" for where results go: tracking.uri, runs_dir,
    experiment_name)."""
    from attnbench.attention import ATTENTION
    from attnbench.attention.base import CONTEXT_ARGS as ATTN_CONTEXT
    from attnbench.backbones import BACKBONES
    from attnbench.backbones.base import CONTEXT_ARGS as BACKBONE_CONTEXT
    from attnbench.registry import check_params
    from attnbench.tasks import TASKS

    found: dict[str, list[str]] = {
        g: [] for g in ("", "attention", "backbone", "task", "trainer", "compat", "tracking")
    }
    problems = found[""]
    for key in cfg:
        if key not in TOP_LEVEL_KEYS:
            valid = ", ".join(sorted(TOP_LEVEL_KEYS))
            problems.append(f"Unknown key '{key}'. Valid top-level keys: {valid}")
    registries = {"attention": (ATTENTION, ATTN_CONTEXT), "backbone": (BACKBONES, BACKBONE_CONTEXT),
                  "task": (TASKS, ())}
    classes: dict[str, type] = {}
    for group, (registry, context) in registries.items():
        node = cfg.get(group)
        if not isinstance(node, Mapping) or "name" not in node:
            choices = ", ".join(registry.names())
            found[group].append(f"'{group}' must name a {group}: choose one of {choices}")
            continue
        try:
            classes[group] = registry.get(str(node["name"]))
        except ConfigError as err:
            found[group].extend(err.problems)
            continue
        found[group].extend(check_params(classes[group], component_params(node), group, context))
    trainer = cfg.get("trainer")
    if isinstance(trainer, Mapping):
        try:
            trainer_config(trainer)
        except ConfigError as err:
            found["trainer"].extend(err.problems)
    else:
        options = ", ".join(group_options("trainer"))
        found["trainer"].append(f"'trainer' must be set: choose one of {options}")
    found["tracking"].extend(output_problems(cfg))
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(f"'seed' = {seed!r} should be an integer >= 0")
    if "backbone" in classes and "task" in classes:
        kinds = classes["backbone"].kinds
        kind = classes["task"].kind
        if kind not in kinds:
            ok = [n for n in BACKBONES.names() if kind in BACKBONES.get(n).kinds]
            found["compat"].append(
                f"backbone '{cfg['backbone']['name']}' cannot run task '{cfg['task']['name']}' "
                f"({kind}). Compatible backbones: {', '.join(ok)}"
            )
    return found


def output_problems(cfg: Mapping[str, Any]) -> list[str]:
    """Where results go: tracking.uri, runs_dir and experiment_name (checked, not contacted)."""
    out: list[str] = []
    tracking = cfg.get("tracking")
    if not isinstance(tracking, Mapping):
        out.append(f"'tracking' must be set: choose one of {', '.join(group_options('tracking'))}")
    else:
        uri = tracking.get("uri")
        if uri is not None and not (isinstance(uri, str) and uri.strip()):
            out.append(f"'tracking.uri' = {uri!r} should be null (the local store) or a URI string")
        elif isinstance(uri, str):
            out.extend(check_uri(uri))
    runs_dir = cfg.get("runs_dir")
    if not isinstance(runs_dir, str) or not runs_dir.strip():
        out.append(f"'runs_dir' = {runs_dir!r} should be a folder path (default: runs)")
    name = cfg.get("experiment_name")
    if name is not None and not (isinstance(name, str) and name.strip()):
        out.append(f"'experiment_name' = {name!r} should be null (one per task) or a name")
    if not isinstance(cfg.get("resume", False), bool):
        out.append(f"'resume' = {cfg.get('resume')!r} should be true or false")
    return out


def check_uri(uri: str) -> list[str]:
    """A tracking URI we can use: sqlite:///path, file:/path, postgresql://..., http(s)://host:port."""
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    schemes = ("sqlite", "http", "https", "postgresql", "mysql", "file", "databricks")
    if parsed.scheme.split("+")[0] not in schemes:
        expected = ", ".join(s + "://" for s in schemes)
        return [f"Malformed tracking.uri {uri!r}: expected one of {expected}"]
    if parsed.scheme in ("http", "https") and not parsed.hostname:
        return [f"Malformed tracking.uri {uri!r}: no host (expected http://HOST:PORT)"]
    if parsed.scheme == "sqlite" and parsed.path in ("", "/"):
        return [f"Malformed tracking.uri {uri!r}: no database file (expected sqlite:///PATH/mlflow.db)"]
    try:
        parsed.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        return [f"Malformed tracking.uri {uri!r}: the port must be a number"]
    return []
