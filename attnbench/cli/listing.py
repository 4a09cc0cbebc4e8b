"""`attnbench list`: what exists, read from the conf/ folders (the folders are the list)."""

from __future__ import annotations

import importlib.util


def launchers() -> list[tuple[str, str]]:
    """Hydra launchers usable here: the built-in one plus installed launcher plugins."""
    plugins = [
        ("joblib", "hydra_plugins.hydra_joblib_launcher", "local parallel jobs"),
        ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher", "SLURM cluster (submitit_local to test)"),
        ("ray", "hydra_plugins.hydra_ray_launcher", "Ray cluster"),
    ]
    out = [("basic", "sequential jobs in this process (default)")]
    for name, module, what in plugins:
        installed = importlib.util.find_spec(module.split(".")[0]) is not None and _has(module)
        out.append((name, what if installed else f"{what} — not installed"))
    return out


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def list_components() -> None:
    """List attention variants, backbones, tasks, trainers, tracking presets, experiments, launchers."""
    from rich.table import Table

    from attnbench.config import GROUPS, conf_dir, describe
    from attnbench.console import console

    table = Table(title="attnbench components (pick with group=option)", title_justify="left")
    table.add_column("group", style="bold")
    table.add_column("option", style="cyan")
    table.add_column("what it is")
    root = conf_dir()
    for group in GROUPS:
        for path in sorted((root / group).glob("*.yaml")):
            table.add_row(group, path.stem, describe(path))
    for name, what in launchers():
        table.add_row("hydra/launcher", name, what)
    console.print(table)
