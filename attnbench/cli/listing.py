"""`attnbench list`: what exists, read from the conf/ folders (the folders are the list)."""

from __future__ import annotations


def launchers() -> list[tuple[str, str]]:
    """Hydra launchers: the built-in one plus the launcher plugins (installed or not)."""
    return [("basic", "sequential jobs in this process (default)"), *_plugins("launcher"),
            *_presets("launcher")]


def sweepers() -> list[tuple[str, str]]:
    """Hydra sweepers: the grid (default) and the sweeper plugins (Optuna)."""
    return [("basic", "the grid of every override combination (default)"), *_plugins("sweeper"),
            *_presets("sweeper")]


def _plugins(kind: str) -> list[tuple[str, str]]:
    """The known plugins of `kind` (`config.launchers.PLUGINS`), each said to be missing with
    what installs it when it is."""
    from rich.markup import escape  # the extra's [brackets] are not markup

    from attnbench.config.launchers import PLUGINS, installed

    return [(p.name, p.what if installed(p) else escape(f"{p.what} — not installed (pip install "
                                                        f"{p.install})"))
            for p in PLUGINS if p.kind == kind]


def _presets(kind: str) -> list[tuple[str, str]]:
    """attnbench's own presets under conf/hydra/<kind>/ (e.g. a SLURM launcher with GPUs)."""
    from attnbench.config.groups import conf_dir, describe

    return [(p.stem, describe(p)) for p in sorted((conf_dir() / "hydra" / kind).glob("*.yaml"))]


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
