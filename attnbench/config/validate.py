"""Validation that reports every problem at once, and produces the typed `RunConfig`.

Run settings (trainer, top level) have a typed schema; component settings (attention, backbone,
task) are checked against their constructors' typed keyword arguments (one source of truth: the
component's signature). Hydra composes (`config.compose`); this module only reads and checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from attnbench.config.groups import group_options
from attnbench.config.run_config import (
    TOP_LEVEL_KEYS,
    RunConfig,
    TrackingConfig,
    component_params,
)
from attnbench.errors import ConfigError, IncompatibleError
from attnbench.training.config import TrainerConfig

if TYPE_CHECKING:
    from attnbench.config.build import Loaded

COMPONENT_GROUPS = ("attention", "backbone", "task")
MAX_SEED = 2**64 - 1  # torch.manual_seed's range (numpy's 2**32 - 1 is reached by reduction)
MAX_EXPERIMENT_NAME = 500  # MLflow's MAX_EXPERIMENT_NAME_LENGTH
# The least free space a run's folders need: the store, a small model's checkpoints, Hydra's files.
MIN_FREE_MB = 64
# Path bytes attnbench and Hydra add under runs_dir (multirun/<time>/<job>/.hydra/...,
# artifacts/<experiment, <= 120>/<run id>/artifacts/checkpoints/best.pt).
PATH_RESERVE = 256


def validate(cfg: Mapping[str, Any]) -> RunConfig:
    """The typed config of one composed job (a plain dict; a `hydra` node is ignored).

    Raises one ConfigError listing every problem (IncompatibleError when the only problem is a
    backbone that cannot run the task). Sizes the job cannot afford are refused from its settings
    (tasks with a planned size); data-file and constructor problems are found when the job loads
    its data and builds its model (`config.build`), or all at once by `validate_and_load`.
    """
    return _validated(cfg, load=False, data_cache=None)[0]


@dataclass(frozen=True)
class Checked:
    """A job validated with its data loaded (`validate_and_load`): its typed config and what its
    model is built from (`config.build.build(checked.cfg, checked.loaded)`; None: the job loads
    its data itself)."""

    cfg: RunConfig
    loaded: Loaded | None


def validate_and_load(cfg: Mapping[str, Any], data_cache: dict | None = None) -> Checked:
    """`validate`, with the task's data loaded and the model built on the meta device
    (`config.build.load_checked`), so data-file and constructor problems join the same message;
    `data_cache` (keyed by the task node) lets a sweep load each data set once."""
    run, loaded = _validated(cfg, load=True, data_cache=data_cache)
    assert loaded is not None  # (load_checked returns None with its problems)
    return Checked(run, loaded)


def _validated(cfg: Mapping[str, Any], load: bool, data_cache: dict | None
               ) -> tuple[RunConfig, Loaded | None]:
    found = static_problems(cfg)
    problems = [p for group in found.values() for p in group]
    if found["compat"] and problems == found["compat"]:
        raise IncompatibleError(problems[0])
    components_ok = not any(found[g] for g in (*COMPONENT_GROUPS, "compat"))
    if not components_ok:
        raise ConfigError(problems[0], problems)
    from attnbench.config.resources import Sizing

    job = Sizing.of(cfg)
    loaded = None
    if load:  # top-level, trainer and tracking problems do not stop the data and model checks
        from attnbench.attention import ATTENTION
        from attnbench.config.build import load_checked

        match = cfg.get("match_params")  # an unknown name is a static problem already
        loaded, more = load_checked(job, _seed(cfg.get("seed")),
                                    match if match in ATTENTION.names() else None, data_cache)
        problems.extend(more)
    else:
        from attnbench.config.resources import resource_problems

        problems.extend(resource_problems(job))  # before any data is generated
    if problems:
        raise ConfigError(problems[0], problems)
    run = RunConfig(
        attention=job.attention,
        backbone=job.backbone,
        task=job.task,
        trainer=trainer_config(cfg["trainer"]),
        tracking=TrackingConfig(uri=cfg["tracking"].get("uri")),
        seed=int(cfg["seed"]),
        runs_dir=str(cfg["runs_dir"]),
        experiment_name=cfg.get("experiment_name"),
        resume=bool(cfg.get("resume", False)),
        match_params=cfg.get("match_params"),
    )
    return run, loaded


def _seed(seed: Any) -> int:
    """The seed data is loaded with while validating (0 for one validation refuses)."""
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0


def trainer_config(node: Mapping[str, Any]) -> TrainerConfig:
    from attnbench.registry import check_params

    problems = check_params(TrainerConfig, node, "trainer")
    if problems:
        raise ConfigError(problems[0], problems)
    cfg = TrainerConfig(**dict(node))
    problems = cfg.problems() + trainer_bounds(cfg)
    if problems:
        raise ConfigError(problems[0], problems)
    return cfg


def trainer_bounds(cfg: TrainerConfig) -> list[str]:
    """Ranges that involve two trainer settings (the single-setting ranges are
    `TrainerConfig.problems`): decoupled weight decay scales the weights by 1 - lr·weight_decay
    each step, so lr·weight_decay >= 1 zeroes or flips them (and as an L2 term it swamps the
    loss)."""
    lr, decay = cfg.lr, cfg.weight_decay
    if 0 < lr <= 10 and decay >= 0 and not lr * decay < 1:
        return [f"'trainer.weight_decay' = {decay!r} is out of range: must be < 1/trainer.lr = "
                f"{1 / lr:.4g} (each step scales the weights by 1 - lr * weight_decay)"]
    return []


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
        g: [] for g in ("", *COMPONENT_GROUPS, "trainer", "compat", "tracking")
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
    elif seed > MAX_SEED:
        problems.append(f"'seed' = {seed} is out of range: should be an integer >= 0 and <= "
                        f"{MAX_SEED} (2**64 - 1, the largest seed torch takes)")
    match = cfg.get("match_params")
    if match is not None and match not in ATTENTION.names():
        problems.append(f"'match_params' = {match!r} is not an attention variant. Valid options: "
                        f"{', '.join(ATTENTION.names())} (or null: no matching)")
    elif match is not None and getattr(classes.get("backbone"), "width_key", "") is None:
        found["backbone"].append(f"match_params={match}: backbone '{cfg['backbone']['name']}' "
                                 "declares no width to adjust (width_key); leave match_params "
                                 "unset")
    if "backbone" in classes and "task" in classes:
        kinds = classes["backbone"].kinds
        kind = classes["task"].kind
        if kind not in kinds:
            ok = [n for n in BACKBONES.names() if kind in BACKBONES.get(n).kinds]
            found["compat"].append(
                f"backbone '{cfg['backbone']['name']}' cannot run task '{cfg['task']['name']}' "
                f"({kind}). Compatible backbones: {', '.join(ok)}"
            )
    if "backbone" in classes and "attention" in classes and not found["backbone"]:
        refused = classes["backbone"].incompatible(classes["attention"],
                                                   component_params(cfg["backbone"]))
        if refused:  # its settings rule the variant out (a causal LM, a positional scheme)
            found["compat"].append(refused)
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
    else:
        out.extend(folder_problems("runs_dir", runs_dir, space=True))
    name = cfg.get("experiment_name")
    if name is not None and not (isinstance(name, str) and name.strip()):
        out.append(f"'experiment_name' = {name!r} should be null (one per task) or a name")
    elif isinstance(name, str) and len(name) > MAX_EXPERIMENT_NAME:
        out.append(f"'experiment_name' is {len(name)} characters long: MLflow takes at most "
                   f"{MAX_EXPERIMENT_NAME} ({shown(name)})")
    if not isinstance(cfg.get("resume", False), bool):
        out.append(f"'resume' = {cfg.get('resume')!r} should be true or false")
    return out


def shown(text: str, limit: int = 60) -> str:
    """`text` quoted, shortened to `limit` characters for a one-line message."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


def folder_problems(key: str, path: str, space: bool = False) -> list[str]:
    """`runs_dir`-like settings: a folder attnbench (and Hydra, before any job runs) will create
    and write under (see `folder_problem`; `space`: and `space_problem`)."""
    reason = folder_problem(path) or (space_problem(path) if space else None)
    return [f"'{key}' = {shown(path)} {reason}"] if reason else []


def space_problem(path: str) -> str | None:
    """Why the disk holding `path` (or its nearest existing parent) is too full for a run's
    folders: less than `MIN_FREE_MB` free (a full disk would fail mid-way, with a traceback)."""
    import shutil

    folder = os.path.abspath(os.path.expanduser(path))
    while not os.path.isdir(folder) and folder != os.path.dirname(folder):
        folder = os.path.dirname(folder)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free >= MIN_FREE_MB * 2**20:
        return None
    return (f"is on a disk with {free / 2**20:.1f} MB free ({folder}); a run needs at least "
            f"{MIN_FREE_MB} MB there (the store, checkpoints, Hydra's files)")


def folder_problem(path: str) -> str | None:
    """Why `path` cannot be a folder attnbench creates and writes under (None: it can): its names
    and length must fit the file system, and it must exist as a folder or be creatable.
    Creatability is tried with a throw-away folder in the nearest existing parent (permission
    bits alone mislead: root ignores them, a read-only mount does not)."""
    import tempfile
    from pathlib import Path

    folder = Path(os.path.abspath(os.path.expanduser(path)))
    parent = folder
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    name_max = _pathconf(parent, "PC_NAME_MAX", 255)
    path_max = _pathconf(parent, "PC_PATH_MAX", 4096)
    long = max(folder.parts, key=len)
    if len(long.encode()) > name_max:
        return (f"has a name of {len(long.encode())} bytes ({shown(long, 20)}); this file system "
                f"allows {name_max}")
    if len(str(folder).encode()) + PATH_RESERVE > path_max:
        return (f"is {len(str(folder).encode())} bytes long: with the files written under it (up "
                f"to {PATH_RESERVE} more) it exceeds the file system's path limit of {path_max}")
    if parent == folder:
        if not folder.is_dir():
            return "is not a folder"
    elif not parent.is_dir():
        return f"cannot be created: {parent} is not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".attnbench-probe-", dir=parent))
    except OSError as err:
        where = "write in" if parent == folder else "create folders in"
        return f"cannot be used: no way to {where} {parent} ({err.strerror})"
    return None


def _pathconf(path: Any, name: str, default: int) -> int:
    try:
        return int(os.pathconf(path, name))
    except (OSError, ValueError):
        return default


def check_uri(uri: str) -> list[str]:
    """A tracking URI MLflow 3 can use: sqlite:///path, postgresql://..., mysql://...,
    http(s)://host:port, databricks (and, for a database, its driver installed)."""
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    schemes = ("sqlite", "http", "https", "postgresql", "mysql", "databricks")
    scheme = parsed.scheme.split("+")[0]
    if scheme == "file":
        return [f"tracking.uri {uri!r}: MLflow 3 no longer writes file stores (./mlruns); leave "
                "tracking.uri unset for the local store (an SQLite store under runs_dir) or give "
                "sqlite:///PATH/mlflow.db"]
    if scheme not in schemes:
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
    return driver_problems(uri) if scheme in ("postgresql", "mysql") else []


# The extra that installs each database's driver (pyproject's optional dependencies).
DRIVER_EXTRAS = {"postgresql": "pip install 'attnbench[server]'"}  # psycopg (3)


def driver_problems(uri: str) -> list[str]:
    """A database URI whose SQLAlchemy driver is not installed (MLflow would fail with
    "No module named ..." once the run starts)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(uri)
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        return [f"tracking.uri {uri!r}: SQLAlchemy has no driver "
                f"{url.drivername.partition('+')[2]!r} for {url.get_backend_name()}"]
    except (ArgumentError, ValueError) as err:
        return [f"Malformed tracking.uri {uri!r}: {str(err).splitlines()[0]}"]
    except ImportError as err:
        backend, module = url.get_backend_name(), err.name or "?"
        extra = DRIVER_EXTRAS.get(backend)
        fix = f"install the Python package that provides {module!r}"
        if extra and module == "psycopg":
            fix = extra
        elif extra:
            fix += f", or {extra} and use {backend}+psycopg://"
        return [f"tracking.uri {uri!r} needs the {backend} driver {module!r}, which is not "
                f"installed: {fix}"]
    return []
