"""Hydra composition for every command that composes conf/ (run, sweep, bench, the benchmarks):
one helper that opens Hydra on the same config sources Hydra's app will read, the parsing of
Hydra's command line they share, and the one translator of Hydra's composition errors into a
line naming the valid choices.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from omegaconf import DictConfig

from attnbench.config.grid import MAX_CHECKED_JOBS, expand_overrides  # noqa: F401 - bench's API
from attnbench.config.groups import conf_dir, group_options
from attnbench.errors import ConfigError

# The module whose task function `attnbench run`/`sweep` hands to `hydra.main`: Hydra resolves a
# relative `--config-path` against its package, so the pre-flight must too.
APP_MODULE = "attnbench.run.app"


@dataclass(frozen=True)
class HydraArgs:
    """A `run`/`sweep` command line as Hydra's app reads it (with Hydra's own argparse parser):
    the overrides and the flags that choose which config files are composed."""

    overrides: tuple[str, ...] = ()
    config_name: str = "config"
    config_path: str | None = None  # -cp: replaces the primary config folder
    config_dir: str | None = None  # -cd: an extra config folder, searched before conf/
    rerun: str | None = None  # --experimental-rerun: a pickled config
    shows: bool = False  # --cfg, --info, --help, ...: prints instead of running jobs


def parse_hydra_args(args: Sequence[str]) -> HydraArgs:
    """Parse `args` exactly as `hydra.main` will (its `get_args_parser`); ConfigError in one line
    for what Hydra's parser would refuse with a usage block."""
    from hydra._internal.utils import get_args_parser

    args = list(args)
    if "--version" in args:  # argparse prints and exits: leave that to Hydra
        return HydraArgs(tuple(override_args(args)), shows=True)
    parser = get_args_parser()

    def refuse(message: str) -> None:
        if message.startswith("unrecognized arguments"):  # overrides on both sides of a flag
            raise ConfigError(
                f"{message}: Hydra reads the overrides as one group, so put its flags after "
                "them (e.g. attention=dot seed=1 --cfg job)"
            )
        raise ConfigError(f"{message} (Hydra's flags: attnbench run --hydra-help)")

    parser.error = refuse  # type: ignore[method-assign]
    ns = parser.parse_args(args)
    shows = bool(ns.cfg or ns.info or ns.help or ns.hydra_help or ns.shell_completion)
    return HydraArgs(
        overrides=tuple(ns.overrides or ()),
        config_name=ns.config_name or "config",
        config_path=ns.config_path,
        config_dir=ns.config_dir,
        rerun=ns.experimental_rerun,
        shows=shows,
    )


@contextmanager
def hydra_compose(
    *, config_dir: str | None = None, config_path: str | None = None,
    calling_module: str | None = APP_MODULE,
) -> Iterator[Callable[..., DictConfig]]:
    """Hydra's Compose API on the config sources Hydra's app reads: attnbench's conf/ (or the
    `config_path` given with -cp, resolved as Hydra resolves it against `calling_module`),
    installed plugins' config packages, and an extra `config_dir` (-cd), added to the search path
    the way Hydra's `_run_hydra` adds it. Yields `compose(config_name, overrides=...,
    return_hydra_config=...)`; `hydra.searchpath` in the primary config or the overrides is
    honoured by Hydra's own loader. Hydra's global state is cleared before and after, so it
    never leaks into the Hydra app or another composition."""
    from hydra import compose, version
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra

    from attnbench.plugin_path import register_search_path

    register_search_path()
    GlobalHydra.instance().clear()
    version.setbase("1.3")
    primary = config_path if config_path is not None else str(conf_dir())
    search_path = create_automatic_config_search_path(None, calling_module, primary)
    if config_dir is not None:
        folder = os.path.abspath(config_dir)
        if not os.path.isdir(folder):
            raise ConfigError(f"--config-dir {config_dir!r}: no such folder ({folder})")
        search_path.prepend(provider="command-line", path=f"file://{folder}",
                            anchor=SearchPathQuery(provider="schema"))
    try:
        Hydra.create_main_hydra2(task_name="app", config_search_path=search_path)
        yield compose
    finally:
        GlobalHydra.instance().clear()


@contextmanager
def bare_compose() -> Iterator[Callable[..., DictConfig]]:
    """Hydra's Compose API on Hydra's own configs and attnbench's conf/ alone: no plugin config
    package, no -cd/-cp folder, no search path (the reference `config.guard` compares with).
    May be opened inside `hydra_compose`: Hydra's global state is put back afterwards."""
    from hydra import compose, version
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    state = GlobalHydra.instance()
    outer = state.hydra if state.is_initialized() else None
    state.clear()
    version.setbase("1.3")
    search_path = ConfigSearchPathImpl()
    search_path.append("hydra", "pkg://hydra.conf")
    search_path.append("main", f"file://{conf_dir()}")
    search_path.append("schema", "structured://")
    try:
        Hydra.create_main_hydra2(task_name="app", config_search_path=search_path)
        yield compose
    finally:
        state.clear()
        if outer is not None:
            state.initialize(outer)


def primary_search_path(config_name: str) -> list[str]:
    """`hydra.searchpath` as the primary config file `config_name` sets it (read, not composed:
    Hydra opens these sources before composing). Call inside `hydra_compose`."""
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    hydra = GlobalHydra.instance().hydra
    assert hydra is not None
    try:
        loaded = hydra.config_loader.repository.load_config(config_path=config_name)
    except Exception:  # noqa: BLE001 - a broken primary config is reported by composition
        return []
    if loaded is None or not OmegaConf.is_dict(loaded.config):
        return []
    found = OmegaConf.select(loaded.config, "hydra.searchpath", default=None)
    return [str(x) for x in found] if OmegaConf.is_list(found) else []


def compose_multirun(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The sweep's master config as Hydra's multirun composes it (sweep overrides included, the
    hydra node kept): what the sweep's callbacks and logging are built from. Call inside
    `hydra_compose`."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    hydra = GlobalHydra.instance().hydra
    assert hydra is not None
    return hydra.compose_config(config_name=config_name, overrides=list(overrides),
                                run_mode=RunMode.MULTIRUN, with_log_configuration=False)


# Hydra flags followed by a value (`--cfg job`, `-cn name`); `--info` takes an optional topic.
VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
               "--config-dir", "-cd", "--experimental-rerun")
INFO_TOPICS = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


def override_args(args: Sequence[str]) -> list[str]:
    """`args` without Hydra's flags and their values: the overrides."""
    out: list[str] = []
    it = iter(enumerate(args))
    for i, a in it:
        if not a.startswith("-"):
            out.append(a)
        elif "=" not in a and (
            a in VALUE_FLAGS
            or (a in ("--info", "-i") and i + 1 < len(args) and args[i + 1] in INFO_TOPICS)
        ):
            next(it, None)  # skip the flag's value
    return out


def sweep_args(args: Sequence[str]) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    found = []
    for a in args:
        if a.startswith("-"):
            continue
        try:
            if parser.parse_override(a).is_sweep_override():
                found.append(a)
        except HydraException:
            pass  # reported by expand_overrides
    return found


def compose_reporting(
    compose: Callable[..., DictConfig], job: list[str], config_name: str = "config",
    return_hydra_config: bool = False,
) -> tuple[DictConfig | None, list[str]]:
    """Compose `job`; on an unknown key, report it and compose again without that override, so
    the rest of the job is still validated (every problem in one message)."""
    problems: list[str] = []
    remaining = list(job)
    while True:
        try:
            cfg = compose(config_name, overrides=remaining,
                          return_hydra_config=return_hydra_config)
            return cfg, problems
        except Exception as err:  # noqa: BLE001 - Hydra/OmegaConf composition errors
            problems.append(compose_message(err, compose, config_name))
            culprit = _culprit(err, remaining)
            if culprit is None:
                return None, problems
            remaining.remove(culprit)


def _culprit(err: Exception, overrides: list[str]) -> str | None:
    """The override a composition error is about (named by its key in Hydra's message)."""

    text = " ".join(str(err).split())
    verbs = "Could not override|An item is already at|Could not load|Could not find"
    m = re.search(rf"(?:{verbs}) '([^']+)'", text)
    if not m:
        return None
    key = m.group(1)
    for ov in overrides:
        ov_key = ov.lstrip("+~").partition("=")[0]
        if ov_key == key or key.startswith(ov_key.replace(".", "/") + "/"):
            return ov
    return None


def compose_message(
    err: Exception, compose: Callable[..., DictConfig], config_name: str = "config"
) -> str:
    """Hydra's multi-line composition errors as one line naming the valid choices (`compose`
    opens `config_name` again to list the valid keys)."""

    text = " ".join(str(err).split())
    if not text and err.__cause__ is not None:  # Hydra wraps OmegaConf's error without text
        cause = " ".join(str(err.__cause__).split())
        key = re.search(r" full_key: (\S+)", cause)
        text = (f"'{key.group(1)}': " if key else "") + cause.split(" full_key:")[0]
        if "Grammar" in type(err.__cause__).__name__:
            text += " (an interpolation that does not parse)"
        return text
    m = (re.search(r"Could not override '([^']+)'", text)
         or re.search(r"Could not append to config\. An item is already at '([^']+)'", text)
         or re.search(r"Key '([^']+)' is not in struct", text))
    if m and ("not in struct" in text or "Could not override" in text):
        parent = m.group(1).rpartition(".")[0]
        where = f" in {parent}" if parent else ""
        valid = _valid_keys(compose, config_name, parent)
        return f"Unknown key '{m.group(1)}'. Valid keys{where}: {valid}"
    m = re.search(r"Could not load '(hydra/(?:launcher|sweeper))/([^'/]+)'", text)
    if m:  # a preset building on a plugin that is not installed (hydra/launcher=ray_cluster)
        inside = re.search(r"In '([^']+)/([^'/]+)'", text)
        needed_by = f"{inside.group(1)}={inside.group(2)}" if inside else None
        return plugin_message(m.group(1), m.group(2), _listed(m.group(1)), needed_by)
    m = re.search(r"Could not load '([^']+)'", text)
    if m:
        group = m.group(1).split("/")[0]
        options = ", ".join(group_options(group))
        return f"Unknown {group} '{m.group(1).split('/')[-1]}'. Valid options: {options}"
    not_found = r"Could not find '([^']+)/([^'/]*)' Available options in '[^']+': (.*?) Conf"
    m = re.search(not_found, text)
    if m and m.group(1) in ("hydra/launcher", "hydra/sweeper"):  # hydra/launcher=ray
        return plugin_message(m.group(1), m.group(2), m.group(3).split())
    if m:
        options = ", ".join(m.group(3).split())
        return f"Unknown {m.group(1)} '{m.group(2)}'. Valid options: {options}"
    return text.split(" Config search path")[0][:300]


def plugin_message(group: str, name: str, listed: Sequence[str], needed_by: str | None = None
                   ) -> str:
    """A launcher or sweeper (`group` hydra/launcher or hydra/sweeper) that cannot be loaded:
    the plugin and what installs it when a known plugin adds `name` (`config.launchers`), else
    the valid options; both name the options usable here (`listed`, less attnbench's presets
    whose plugin is missing) and the known plugins not installed."""
    from attnbench.config.launchers import missing_plugin, not_installed

    kind = group.split("/")[1]
    usable = [o for o in listed if _preset_base(group, o) in (None, *listed)]
    line = missing_plugin(kind, name, usable, needed_by)
    if line is not None:
        return line
    blocked = "".join(f", {o} (builds on {_preset_base(group, o)})"
                      for o in listed if o not in usable)
    return (f"Unknown {group} '{name}'. Valid options: {', '.join(usable)}"
            f"{not_installed(kind)}{blocked}")


def _listed(group: str) -> list[str]:
    """The options of `group` Hydra lists now (call inside `hydra_compose`)."""
    from hydra.core.global_hydra import GlobalHydra

    try:
        loader = GlobalHydra.instance().hydra.config_loader  # type: ignore[union-attr]
        return sorted(set(loader.get_group_options(group)))
    except Exception:  # noqa: BLE001 - no Hydra open: name no options rather than fail
        return []


def _preset_base(group: str, option: str) -> str | None:
    """The option of `group` an attnbench preset (conf/<group>/<option>.yaml) builds on, from
    its defaults list; None for an option that is not such a preset."""
    import yaml

    path = conf_dir() / group / f"{option}.yaml"
    if not path.is_file():
        return None
    node = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    bases = [d for d in node.get("defaults") or () if isinstance(d, str) and d != "_self_"]
    return bases[0] if bases else None


def _valid_keys(compose: Callable[..., DictConfig], config_name: str, parent: str) -> str:
    try:
        node = compose(config_name, return_hydra_config=parent.startswith("hydra"))
        for part in filter(None, parent.split(".")):
            node = node[part]
        keys = sorted(k for k in node if k != "hydra" and not k.startswith("_"))
        return ", ".join(keys) or "(none)"
    except Exception:  # noqa: BLE001
        return "see attnbench run --cfg job"

