"""Plugins: attention variants (or backbones, tasks) from a user's own installed package.

A plugin package declares two entry points in its pyproject.toml:

    [project.entry-points."attnbench.attention"]   # the class; registry.py loads it by name
    rbf = "my_pkg.rbf:RBFAttention"

    [project.entry-points."attnbench.conf"]        # a package holding config group folders
    my_pkg = "my_pkg.conf"                          # e.g. my_pkg/conf/attention/rbf.yaml

The config packages are appended to Hydra's config search path (as ``pkg://my_pkg.conf``) by
the search-path plugin in `attnbench.plugin_path`, so ``attention=rbf`` composes, sweeps
and validates like a built-in option, and `attnbench list` shows it with the package it came
from. YAML still only names a registered component (``name: rbf``): no import paths are
opened from config files.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import entry_points
from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.abc import Traversable

CONF_GROUP = "attnbench.conf"
PROVIDER = "attnbench-plugin"


@dataclass(frozen=True)
class PluginConf:
    package: str  # importable package holding group folders (attention/, backbone/, ...)
    distribution: str  # the installed distribution that declared it


@functools.cache
def conf_packages() -> tuple[PluginConf, ...]:
    """Every `attnbench.conf` entry point of the installed distributions, by package name."""
    found: dict[str, PluginConf] = {}
    for ep in entry_points(group=CONF_GROUP):
        dist = ep.dist.name if ep.dist is not None else ep.name
        found.setdefault(ep.module, PluginConf(ep.module, dist))
    return tuple(sorted(found.values(), key=lambda p: p.package))


def plugin_yamls(group: str) -> dict[str, tuple[Traversable, PluginConf]]:
    """{option: (yaml file, plugin)} for the YAMLs plugins add to config group `group`.

    A plugin whose package cannot be imported is skipped here; Hydra reports it (as an
    unavailable search path) when it composes.
    """
    out: dict[str, tuple[Traversable, PluginConf]] = {}
    for plugin in conf_packages():
        try:
            folder = files(plugin.package) / group
        except (ModuleNotFoundError, TypeError):
            continue
        if not folder.is_dir():
            continue
        for item in sorted(folder.iterdir(), key=lambda t: t.name):
            if item.name.endswith(".yaml"):
                out.setdefault(item.name[: -len(".yaml")], (item, plugin))
    return out
