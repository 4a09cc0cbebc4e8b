"""`attnbench list`: what exists, read from the conf/ folders (the folders are the list)."""

from __future__ import annotations

import importlib.util


def launchers() -> list[tuple[str, str]]:
    """Hydra launchers usable here: the built-in one plus installed launcher plugins."""
    plugins = [
        ("joblib", "hydra_plugins.hydra_joblib_launcher", "local parallel jobs"),
        ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher",
         "SLURM cluster (submitit_local to test)"),
        ("ray", "hydra_plugins.hydra_ray_launcher", "Ray cluster"),
    ]
    out = [("basic", "sequential jobs in this process (default)")]
    for name, module, what in plugins:
        installed = importlib.util.find_spec(module.split(".")[0]) is not None and _has(module)
        out.append((name, what if installed else f"{what} — not installed"))
    return out + _presets("launcher")


def sweepers() -> list[tuple[str, str]]:
    """Hydra sweepers: the grid (default) and Optuna when its plugin is installed."""
    what = "Optuna search (see experiment=optuna_lr_width)"
    installed = _has("hydra_plugins.hydra_optuna_sweeper")
    return [("basic", "the grid of every override combination (default)"),
            ("optuna", what if installed else f"{what} — not installed (attnbench[optuna])"),
            *_presets("sweeper")]


def _presets(kind: str) -> list[tuple[str, str]]:
    """attnbench's own presets under conf/hydra/<kind>/ (e.g. a SLURM launcher with GPUs)."""
    from attnbench.config.groups import conf_dir, describe

    return [(p.stem, describe(p)) for p in sorted((conf_dir() / "hydra" / kind).glob("*.yaml"))]


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def list_components() -> None:
    """List attention variants, backbones, tasks, trainers, tracking presets, experiments,
    launchers and sweepers (plugins' options too, with the package they come from)."""
    from rich.table import Table

    from attnbench.config.groups import GROUPS, conf_dir, describe
    from attnbench.console import console
    from attnbench.plugins import plugin_yamls

    table = Table(title="attnbench components (pick with group=option)", title_justify="left")
    table.add_column("group", style="bold")
    table.add_column("option", style="cyan")
    table.add_column("what it is")
    table.add_column("from")
    root = conf_dir()
    for group in GROUPS:
        for path in sorted((root / group).glob("*.yaml")):
            table.add_row(group, path.stem, describe(path), "attnbench")
        for option, (path, plugin) in plugin_yamls(group).items():  # installed plugin packages
            shadowed = (root / group / f"{option}.yaml").is_file()
            note = " (hidden by the built-in option of the same name)" if shadowed else ""
            table.add_row(group, option, describe(path) + note, f"plugin {plugin.distribution}")
    for kind, options in (("launcher", launchers()), ("sweeper", sweepers())):
        for name, what in options:
            preset = (root / "hydra" / kind / f"{name}.yaml").is_file()
            table.add_row(f"hydra/{kind}", name, what, "attnbench" if preset else "hydra")
    console.print(table)
