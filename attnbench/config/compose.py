"""Hydra composition for every command that composes conf/ (run, sweep, bench, the benchmarks):
one helper that opens Hydra's Compose API, the override parsing they share, and the one
translator of Hydra's composition errors into a line naming the valid choices.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from omegaconf import DictConfig

from attnbench.config.groups import conf_dir, group_options
from attnbench.errors import ConfigError

MAX_CHECKED_JOBS = 256


@contextmanager
def hydra_compose() -> Iterator[Callable[..., DictConfig]]:
    """Hydra's Compose API on attnbench's conf/ (plus installed plugins' config packages);
    yields `compose(config_name, overrides=..., return_hydra_config=...)`. Hydra's global state
    is cleared before and after, so it never leaks into the Hydra app or another composition."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from attnbench.plugin_path import register_search_path

    register_search_path()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            yield compose
    finally:
        GlobalHydra.instance().clear()


def expand_overrides(args: Sequence[str]) -> list[list[str]]:
    """The jobs a sweep will run, as override lists (for validation only; Hydra runs them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob
    from hydra.errors import HydraException

    try:
        overrides = OverridesParser.create().parse_overrides(
            [a for a in args if not a.startswith("-")]
        )
    except HydraException as err:
        raise ConfigError(f"Cannot parse override: {str(err).strip().splitlines()[0]}") from err
    per_key: list[list[str]] = []
    for o in overrides:
        key = o.get_key_element()
        if o.is_delete():
            per_key.append([key])
        elif not o.is_sweep_override():
            per_key.append([f"{key}={o.get_value_element_as_str()}"])
        elif isinstance(o.value(), Glob):
            group = o.key_or_group.split("/")[-1]
            per_key.append([f"{key}={v}" for v in o.value().filter(group_options(group))])
        elif o.is_discrete_sweep():
            per_key.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        # interval sweeps (Optuna) cannot be enumerated: the sweeper samples them.
    return [list(job) for job in itertools.islice(itertools.product(*per_key), MAX_CHECKED_JOBS)]


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
    compose: Callable[..., DictConfig], job: list[str]
) -> tuple[DictConfig | None, list[str]]:
    """Compose `job`; on an unknown key, report it and compose again without that override, so
    the rest of the job is still validated (every problem in one message)."""
    problems: list[str] = []
    remaining = list(job)
    while True:
        try:
            return compose("config", overrides=remaining), problems
        except Exception as err:  # noqa: BLE001 - Hydra/OmegaConf composition errors
            problems.append(compose_message(err, compose))
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

    m = (re.search(r"Could not override '([^']+)'", text)
         or re.search(r"Could not append to config\. An item is already at '([^']+)'", text)
         or re.search(r"Key '([^']+)' is not in struct", text))
    if m and ("not in struct" in text or "Could not override" in text):
        parent = m.group(1).rpartition(".")[0]
        where = f" in {parent}" if parent else ""
        valid = _valid_keys(compose, config_name, parent)
        return f"Unknown key '{m.group(1)}'. Valid keys{where}: {valid}"
    m = re.search(r"Could not load '([^']+)'", text)
    if m:
        group = m.group(1).split("/")[0]
        options = ", ".join(group_options(group))
        return f"Unknown {group} '{m.group(1).split('/')[-1]}'. Valid options: {options}"
    not_found = r"Could not find '([^']+)/([^'/]*)' Available options in '[^']+': (.*?) Conf"
    m = re.search(not_found, text)
    if m:  # e.g. hydra/launcher=nope
        options = ", ".join(m.group(3).split())
        return f"Unknown {m.group(1)} '{m.group(2)}'. Valid options: {options}"
    return text.split(" Config search path")[0][:300]


def _valid_keys(compose: Callable[..., DictConfig], config_name: str, parent: str) -> str:
    try:
        node = compose(config_name, return_hydra_config=parent.startswith("hydra"))
        for part in filter(None, parent.split(".")):
            node = node[part]
        keys = sorted(k for k in node if k != "hydra" and not k.startswith("_"))
        return ", ".join(keys) or "(none)"
    except Exception:  # noqa: BLE001
        return "see attnbench run --cfg job"

