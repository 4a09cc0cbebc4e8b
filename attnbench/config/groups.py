"""The conf/ folder and its config groups: the folders are the list of what exists.

Imports neither Hydra nor torch: `attnbench list` reads the groups from here.
"""

from __future__ import annotations

from pathlib import Path

from attnbench.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent.parent

# Config groups a user picks from, in the order `attnbench list` shows them.
GROUPS: tuple[str, ...] = ("attention", "backbone", "task", "trainer", "tracking", "experiment")


def conf_dir() -> Path:
    """conf/ ships inside the wheel as attnbench/conf; in a source checkout it sits beside it."""
    for candidate in (PACKAGE_DIR / "conf", PACKAGE_DIR.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise ConfigError(f"attnbench's conf/ folder is missing (looked in {PACKAGE_DIR})")


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
