"""Object hooks in a composed config: the keys through which a config makes Python import and
call a name. attnbench builds only its registered components, so every such key is refused,
wherever it came from (conf/, a `--config-dir` folder, `hydra.searchpath`, a plugin's config
package, an override), except the few Hydra itself needs:

- ``hydra.callbacks.attnbench_sweep._target_`` = attnbench's own sweep callback;
- ``hydra.launcher._target_`` / ``hydra.sweeper._target_`` naming a launcher / sweeper class
  Hydra's plugin discovery knows (Hydra refuses other classes there too);
- ``hydra.sweeper.sampler._target_`` naming an Optuna sampler class (``optuna.samplers.*``) and
  its ``_partial_`` flag (the Optuna sweeper's grid sampler sets it).

Hooks are: Hydra's ``_target_``, ``_partial_``, ``_args_``, ``_recursive_``, ``_convert_`` (any
node: Hydra instantiates callbacks, launchers and sweepers recursively); the Optuna sweeper's
``custom_search_space`` (a function path); in ``hydra.job_logging`` / ``hydra.hydra_logging``
(handed to `logging.config.dictConfig`) a ``()`` factory key, a handler, formatter or filter
``class`` that is not a `logging` class, and ``ext://`` values other than the standard
streams; a ``pkg://`` entry of ``hydra.searchpath`` (importing a package runs its code) that is
not an installed attnbench plugin's config package; and environment variables in
``hydra.job.env_set`` that make processes load code (``LD_PRELOAD``, ``PYTHONPATH``, ...).

The walk reads keys and values without resolving interpolations, except the allowed targets,
which are compared resolved.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

HOOK_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
SWEEP_CALLBACK = "attnbench.run.sweep.SweepCallback"
LOGGING_NODES = ("job_logging", "hydra_logging")
STANDARD_STREAMS = ("ext://sys.stdout", "ext://sys.stderr")
SAMPLER = re.compile(r"optuna\.samplers\.[A-Za-z_][A-Za-z0-9_]*")
# Environment variables that make a process (or its children) load code or config from a path.
CODE_ENV = re.compile(r"(LD_|DYLD_|PYTHON|PERL5|RUBY|NODE_OPTIONS$|BASH_ENV$|ENV$|PATH$|GIT_)")

Path = tuple[str, ...]


def object_hooks(cfg: Any) -> list[str]:
    """Key paths (``hydra.callbacks.x._target_``) of every object hook in `cfg` (a composed
    DictConfig, hydra node included, or plain containers) that attnbench does not allow."""
    plain = _plain(cfg)
    found: list[str] = []
    for path, key, value in _walk(plain, ()):
        full = (*path, key)
        if key in HOOK_KEYS:
            if not _allowed_hook(cfg, full):
                found.append(".".join(full))
        elif path[:1] == ("hydra",) and len(path) >= 2 and path[1] in LOGGING_NODES:
            if _logging_hook(path[2:], key, value):
                found.append(".".join(full))
        elif full == ("hydra", "sweeper", "custom_search_space") and value is not None:
            found.append(".".join(full))
    return found


def searchpath_problems(entries: Sequence[Any], where: str = "hydra.searchpath") -> list[str]:
    """`hydra.searchpath` entries that would import a package (``pkg://name``) other than
    Hydra's own configs and installed attnbench plugins' config packages."""
    from attnbench.plugins import conf_packages

    allowed = {"hydra.conf", "attnbench", "attnbench.conf",
               *(p.package for p in conf_packages())}
    out = []
    for entry in entries:
        text = str(entry).strip()
        if text.startswith("pkg://"):
            package = text.removeprefix("pkg://").split("/")[0].strip()
            if package not in allowed and not package.startswith("attnbench."):
                out.append(
                    f"'{where}' entry {text!r} would import the package {package!r} to read "
                    "configs from it: give config folders as paths (file:///path or /path); "
                    "attnbench imports no code named by a config"
                )
    return out


def env_problems(env_set: Any) -> list[str]:
    if not isinstance(env_set, Mapping):
        return []
    return [
        f"'hydra.job.env_set.{k}': a config cannot set {k} (it makes processes load code from a "
        "path); set it in your shell if you mean it"
        for k in env_set if CODE_ENV.match(str(k))
    ]


def hook_message(path: str) -> str:
    return (
        f"'{path}': a config cannot name code to import (_target_, _partial_, _args_, logging "
        "factories, custom_search_space); attnbench builds only its registered components "
        "(choose them by name, e.g. attention=additive)"
    )


def config_problems(cfg: Any) -> list[str]:
    """Every object-hook problem of a composed config (hydra node included), one line each."""
    problems = [hook_message(p) for p in object_hooks(cfg)]
    hydra = _plain(cfg).get("hydra")
    if isinstance(hydra, Mapping):
        searchpath = hydra.get("searchpath")
        if isinstance(searchpath, (list, tuple)):
            problems += searchpath_problems(searchpath)
        job = hydra.get("job")
        if isinstance(job, Mapping):
            problems += env_problems(job.get("env_set"))
    return problems


# -- the walk ---------------------------------------------------------------------------------
def _walk(node: Any, path: Path) -> Iterator[tuple[Path, str, Any]]:
    """(parent path, key, value) of every key of every mapping; list items get `[i]` keys."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield path, str(key), value
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, f"[{i}]"))


def _plain(cfg: Any) -> Any:
    """Plain containers, interpolations left as written (`${...}` strings)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    return cfg


def _resolved(cfg: Any, path: Path) -> Any:
    """The value at `path`, interpolations resolved (None if it cannot be resolved)."""
    node = cfg
    try:
        for part in path:
            node = node[part]
    except Exception:  # noqa: BLE001 - an unresolvable target is not an allowed one
        return None
    return node


def _allowed_hook(cfg: Any, full: Path) -> bool:
    key = full[-1]
    parent = full[:-1]
    if key == "_target_":
        value = _resolved(cfg, full)
        if not isinstance(value, str):
            return False
        if parent == ("hydra", "callbacks", "attnbench_sweep"):
            return value == SWEEP_CALLBACK
        if parent == ("hydra", "launcher"):
            return value in _plugin_classes("launcher")
        if parent == ("hydra", "sweeper"):
            return value in _plugin_classes("sweeper")
        if parent == ("hydra", "sweeper", "sampler"):
            return _optuna_sampler(value)
        return False
    if key == "_partial_" and parent == ("hydra", "sweeper", "sampler"):
        return isinstance(_resolved(cfg, full), bool)
    return False


def _plugin_classes(kind: str) -> set[str]:
    """Launcher or sweeper classes Hydra's plugin discovery finds (`module.Class`)."""
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher
    from hydra.plugins.sweeper import Sweeper

    base = Launcher if kind == "launcher" else Sweeper
    return {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(base)}


def _optuna_sampler(value: str) -> bool:
    """`optuna.samplers.X` where X is one of Optuna's sampler classes."""
    if not SAMPLER.fullmatch(value):
        return False
    try:
        import optuna.samplers as samplers
    except ImportError:  # no Optuna: the sweeper cannot run either; Hydra reports that
        return True
    cls = getattr(samplers, value.rsplit(".", 1)[1], None)
    return isinstance(cls, type) and issubclass(cls, samplers.BaseSampler)


def _logging_hook(path: Path, key: str, value: Any) -> bool:
    """A `logging.config.dictConfig` key that imports or calls a name (path is below
    hydra.job_logging / hydra.hydra_logging)."""
    if key == "()":
        return True
    if isinstance(value, str) and value.strip().startswith("ext://"):
        return value.strip() not in STANDARD_STREAMS
    if key == "class" and len(path) == 2 and path[0] in ("handlers", "formatters", "filters"):
        return not _logging_class(str(value), path[0])
    return False


def _logging_class(name: str, section: str) -> bool:
    """`logging.X` / `logging.handlers.X` naming a handler, formatter or filter class."""
    import logging
    import logging.handlers

    module, _, attr = name.rpartition(".")
    owner = {"logging": logging, "logging.handlers": logging.handlers}.get(module)
    cls = getattr(owner, attr, None) if owner is not None else None
    base = {"handlers": logging.Handler, "formatters": logging.Formatter,
            "filters": logging.Filter}[section]
    return isinstance(cls, type) and issubclass(cls, base)
