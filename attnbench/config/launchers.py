"""Hydra's launchers and sweepers as a config may set them (`hydra.launcher.*`,
`hydra.sweeper.*`): the class must be one Hydra's plugin discovery finds, the keys the fields of
that class's structured config (as its plugin registers it in Hydra's ConfigStore), and the
values in the range the plugin can run (a one-line error now, not a traceback once the sweep's
parent run exists).

Fields that run commands on the machines that run the jobs are taken from the command line only
(`COMMAND_LINE_ONLY`): a config file (-cd folder, search path, plugin, preset) that sets them to
anything but the plugin's default is refused, so a shared config cannot run a shell line on a
cluster the user reaches; the user who types ``hydra.launcher.setup='[module load cuda]'`` means
it. They are submitit's ``setup`` (shell lines before each job), ``srun_args`` and
``additional_parameters`` (free ``#SBATCH``/srun flags, e.g. ``--prolog``); Ray's
``ray.init``/``ray.remote`` keys other than addresses and resources (``runtime_env`` installs
packages and runs setup hooks); and everything of Ray's AWS launcher (its cluster YAML holds
setup commands).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Per launcher class (its name's last part): fields (dotted, under hydra.launcher) that only the
# command line may set; "*" = every field; "ray.init.*" = every key of ray.init but RAY_PLAIN.
COMMAND_LINE_ONLY: dict[str, tuple[str, ...]] = {
    "SlurmLauncher": ("setup", "srun_args", "additional_parameters"),
    "LocalLauncher": ("setup", "srun_args", "additional_parameters"),
    "RayLauncher": ("ray.init.*", "ray.remote.*"),
    "RayAWSLauncher": ("*",),
}
RAY_PLAIN = ("address", "num_cpus", "num_gpus", "memory", "object_store_memory", "resources",
             "namespace", "max_calls", "max_retries")
SAMPLER_GROUP = "hydra/sweeper/sampler"


@dataclass(frozen=True)
class Plugin:
    """A launcher or sweeper a Hydra plugin adds, as a command line picks it (`hydra/<kind>=name`):
    the package it lives in and what installs it."""

    kind: str  # launcher | sweeper
    name: str
    module: str  # importable when installed
    install: str  # what to pip install
    what: str


PLUGINS = (
    Plugin("launcher", "joblib", "hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher",
           "local parallel jobs"),
    Plugin("launcher", "submitit_slurm", "hydra_plugins.hydra_submitit_launcher",
           "'attnbench[slurm]'", "SLURM cluster (submitit_local to test)"),
    Plugin("launcher", "submitit_local", "hydra_plugins.hydra_submitit_launcher",
           "'attnbench[slurm]'", "submitit's local launcher (tests SLURM settings here)"),
    Plugin("launcher", "ray", "hydra_plugins.hydra_ray_launcher", "'attnbench[ray]'",
           "Ray cluster"),
    Plugin("launcher", "ray_aws", "hydra_plugins.hydra_ray_launcher", "'attnbench[ray]'",
           "Ray cluster on AWS"),
    Plugin("sweeper", "optuna", "hydra_plugins.hydra_optuna_sweeper", "'attnbench[optuna]'",
           "Optuna search (see experiment=optuna_lr_width)"),
)


def installed(plugin: Plugin) -> bool:
    """Whether the plugin's package can be imported (found, not imported: cheap)."""
    import importlib.util

    try:
        return importlib.util.find_spec(plugin.module) is not None
    except ModuleNotFoundError:  # hydra_plugins itself is missing
        return False


def missing_plugin(kind: str, name: str, options: Sequence[str], needed_by: str | None = None
                   ) -> str | None:
    """One line for a launcher/sweeper `name` that a plugin adds but is not installed (or that
    the config `needed_by` builds on, e.g. hydra/launcher=ray_cluster), naming what installs it
    and the `options` that work here; None when no known plugin adds `name`."""
    plugin = next((p for p in PLUGINS if p.kind == kind and p.name == name), None)
    if plugin is None:
        return None
    chose = f"{needed_by} builds on" if needed_by else f"hydra/{kind}={name} is"
    return (f"{chose} Hydra's {plugin.what} {kind} ({name}), which is not installed: pip install "
            f"{plugin.install}. Installed {kind}s: {', '.join(options) or 'none'}")


def not_installed(kind: str) -> str:
    """'; not installed: ray, ray_aws (pip install 'attnbench[ray]')' for the known plugins of
    `kind` missing here ('' when every one is installed)."""
    missing = [p for p in PLUGINS if p.kind == kind and not installed(p)]
    if not missing:
        return ""
    names = ", ".join(p.name for p in missing)
    extras = " / ".join(dict.fromkeys(f"pip install {p.install}" for p in missing))
    return f"; not installed: {names} ({extras})"


@functools.cache
def plugin_classes(kind: str) -> frozenset[str]:
    """`module.Class` of every launcher or sweeper (`kind`) Hydra's plugin discovery finds."""
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher
    from hydra.plugins.sweeper import Sweeper

    base = Launcher if kind == "launcher" else Sweeper
    return frozenset(f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(base))


@functools.cache
def plugin_fields(group: str) -> dict[str, tuple[frozenset[str], dict[str, Any]]]:
    """{class: (fields, defaults)} of the structured configs registered in Hydra's ConfigStore
    under `group` (hydra/launcher, hydra/sweeper, hydra/sweeper/sampler)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    plugin_classes("launcher"), plugin_classes("sweeper")  # discovery registers their configs
    store = ConfigStore.instance()
    found: dict[str, tuple[frozenset[str], dict[str, Any]]] = {}
    for name in store.list(group):
        if not name.endswith(".yaml"):
            continue
        node = store.load(f"{group}/{name}").node
        if not OmegaConf.is_dict(node):
            continue
        plain = OmegaConf.to_container(node, resolve=False)
        target = plain.get("_target_")  # type: ignore[union-attr]
        if isinstance(target, str):
            found[target] = (frozenset(plain), plain)  # type: ignore[arg-type]
    return found


def plugin_problems(kind: str, node: Any, typed: Sequence[str]) -> list[tuple[str, str]]:
    """(key, reason) for what `hydra.<kind>` (resolved) sets that is not allowed: its class, its
    fields, command-line-only fields set by a config file, values the plugin cannot run."""
    where = f"hydra.{kind}"
    if not isinstance(node, Mapping):
        return [(where, "must be a launcher/sweeper config (choose one: hydra/"
                        f"{kind}=NAME)")]
    target = node.get("_target_")
    classes = sorted(plugin_classes(kind))
    if target not in classes:
        return [(f"{where}._target_", f"= {target!r} is not an installed {kind}; a config may "
                 f"choose one of {', '.join(classes)} (by name: hydra/{kind}=NAME)")]
    fields, defaults = plugin_fields(f"hydra/{kind}").get(target, (frozenset({"_target_"}), {}))
    names = ", ".join(sorted(f for f in fields if not f.startswith("_"))) or "none"
    out = [(f"{where}.{k}", f"not a field of {target.rsplit('.', 1)[-1]} (its fields: {names})")
           for k in node if k not in fields and k != "defaults"]
    if kind == "launcher":
        out += _command_line_only(target, node, defaults, typed)
    else:
        out += _sweeper_problems(node)
    out += _value_problems(target.rsplit(".", 1)[-1], node, where)
    return out


def _command_line_only(target: str, node: Mapping[str, Any], defaults: Mapping[str, Any],
                       typed: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for path in _shell_paths(target.rsplit(".", 1)[-1], node):
        value = _get(node, path)
        if value in (None, {}, []) or value == _get(defaults, path):
            continue
        key = "hydra.launcher." + ".".join(path)
        if not _typed(key, value, typed):
            out.append((key, "runs commands on the machines that run the jobs, so only the "
                             "command line you type may set it (not a config file)"))
    return out


def _shell_paths(cls: str, node: Mapping[str, Any]) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for spec in COMMAND_LINE_ONLY.get(cls, ()):
        if spec == "*":
            paths += [(k,) for k in node if k != "_target_"]
        elif spec.endswith(".*"):
            parent = tuple(spec[:-2].split("."))
            sub = _get(node, parent)
            if isinstance(sub, Mapping):
                paths += [(*parent, k) for k in sub if k not in RAY_PLAIN]
        else:
            paths.append(tuple(spec.split(".")))
    return paths


def _typed(key: str, value: Any, typed: Sequence[str]) -> bool:
    """`value` at `key` is what the overrides the user typed set: one sets `key` (or a mapping
    above it) to exactly `value`, or `value` is a mapping whose every entry is typed."""
    if _typed_value_matches(key, value, typed):
        return True
    return (isinstance(value, Mapping) and bool(value)
            and all(_typed(f"{key}.{k}", v, typed) for k, v in value.items()))


def _typed_value_matches(key: str, value: Any, typed: Sequence[str]) -> bool:
    """An override the user typed sets `key` (or a mapping above it) to exactly `value`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for line in typed:
        try:
            override = parser.parse_override(line)
        except HydraException:
            continue
        okey = override.key_or_group
        if override.is_delete() or "/" in okey or not (key == okey
                                                       or key.startswith(okey + ".")):
            continue
        given = override.value()
        rest = tuple(key[len(okey) + 1:].split(".")) if key != okey else ()
        if _get(given, rest) == value:
            return True
    return False


def _sweeper_problems(node: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    if node.get("custom_search_space") is not None:
        out.append(("hydra.sweeper.custom_search_space",
                    "names a function to import; attnbench imports no code named by a config"))
    params = node.get("params")
    if isinstance(params, Mapping):
        out += [(f"hydra.sweeper.params.{k}", "a sweep varies attnbench's settings, not "
                 "Hydra's (hydra.* keys are set once, for the whole sweep)")
                for k in params if str(k).lstrip("+~").startswith(("hydra.", "hydra/"))]
    sampler = node.get("sampler")
    if isinstance(sampler, Mapping):
        target = sampler.get("_target_")
        samplers = plugin_fields(SAMPLER_GROUP)
        if target not in samplers:
            names = ", ".join(sorted(samplers))
            out.append(("hydra.sweeper.sampler._target_",
                        f"= {target!r} is not one of Optuna's samplers ({names}); choose one "
                        "by name: hydra/sweeper/sampler=tpe"))
        else:
            out += [(f"hydra.sweeper.sampler.{k}", f"not a field of {target}")
                    for k in sampler if k not in samplers[target][0]]
    return out


# (class, field) -> (smallest allowed value, what the plugin does otherwise)
MINIMUMS: dict[tuple[str, str], tuple[int, str]] = {
    ("BasicSweeper", "max_batch_size"): (1, "jobs per batch: null = all at once"),
    ("OptunaSweeper", "n_trials"): (1, "trials to run"),
    ("OptunaSweeper", "n_jobs"): (1, "trials asked per batch"),
    **{(cls, f): (1, "a count of resources per job")
       for cls in ("SlurmLauncher", "LocalLauncher")
       for f in ("timeout_min", "cpus_per_task", "tasks_per_node", "nodes")},
    ("SlurmLauncher", "array_parallelism"): (1, "jobs of the sweep at once"),
}


def _value_problems(cls: str, node: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    out = []
    if cls == "JoblibLauncher" and node.get("n_jobs") == 0:
        out.append((f"{where}.n_jobs", "= 0 is out of range: joblib runs n_jobs >= 1 workers "
                                       "at once, or -1 for one per core"))
    for (owner, name), (low, what) in MINIMUMS.items():
        value = node.get(name)
        if owner == cls and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and value < low:
            out.append((f"{where}.{name}", f"= {value!r} is out of range: must be >= {low} "
                                           f"({what})"))
    if cls == "OptunaSweeper":
        rate = node.get("max_failure_rate")
        if isinstance(rate, (int, float)) and not 0 <= rate <= 1:
            out.append((f"{where}.max_failure_rate", f"= {rate!r} is out of range: must be in "
                                                     "[0, 1]"))
    return out


def _get(node: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
