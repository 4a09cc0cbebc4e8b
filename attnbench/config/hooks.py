"""What a config may set under `hydra.*`: an allow-list, not a block-list. attnbench's own keys
are checked against the components' schemas (`config.validate`); this module checks Hydra's node.

How. The config is checked after its interpolations are resolved (`config.resolve`), so a
mapping built by ``${oc.decode:...}`` or ``${oc.create:...}`` is checked like one written out.
The same command is composed once more from attnbench's own conf/ alone, with no -cd/-cp
folder, no search path, no plugin and no override (`Reference`, built by `config.guard`). The
user's hydra node (as written) may differ from that one only at the keys below, each with its
own rule (applied to the resolved value); anywhere else a key added, removed or changed is
refused:

- ``hydra.run.dir``, ``hydra.sweep.dir``, ``hydra.sweep.subdir``, ``hydra.output_subdir``: output
  folders (text; the subfolders relative, without '..'); the pre-flight checks they can be
  written.
- ``hydra.verbose``: true/false or logger names. ``hydra.job.name``: a plain file name (it names
  the job's log file). ``hydra.searchpath``: config folders as paths that exist (``pkg://`` only
  for installed attnbench plugins' config packages: importing a package runs its code).
- ``hydra.launcher.*`` / ``hydra.sweeper.*``: a launcher/sweeper Hydra's plugin discovery finds,
  the fields of its structured config, values it can run; fields that run commands on the job
  machines come from the command line only (`config.launchers`).
- ``hydra.job_logging`` / ``hydra.hydra_logging``: exactly one of Hydra's own logging options as
  shipped (default, disabled, none, stdout) or attnbench's (conf/hydra/*_logging/quiet.yaml, the
  default), compared as written: their interpolations name the
  job's output folder and job name only, both checked above. So no config can add a handler,
  a formatter factory or a log file at a path it chooses.
- Hydra's bookkeeping (``hydra.overrides``, ``hydra.runtime``, ``hydra.job.id/num/config_name/
  override_dirname``) is written by Hydra itself and not compared.

Everything else keeps attnbench's value: ``hydra.callbacks`` is attnbench's sweep callback
alone, ``hydra.job.env_set``/``env_copy`` stay empty, ``hydra.job.chdir``, ``hydra.mode``,
``hydra.help`` are attnbench's. Object hooks (``_target_``, ``_partial_``, ``_args_``,
``_recursive_``, ``_convert_``: Hydra instantiates callbacks, launchers and sweepers recursively)
are refused anywhere in the config except the sweep callback's, the launcher's, the sweeper's
and its Optuna sampler's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from attnbench.config.launchers import plugin_problems

HOOK_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
SWEEP_CALLBACK = "attnbench.run.sweep.SweepCallback"
# Object hooks Hydra needs: (key path, rule) - the rules are checked by the allow-list below.
ALLOWED_HOOKS = (("hydra", "callbacks", "attnbench_sweep", "_target_"),
                 ("hydra", "launcher", "_target_"), ("hydra", "sweeper", "_target_"),
                 ("hydra", "sweeper", "sampler", "_target_"),
                 ("hydra", "sweeper", "sampler", "_partial_"))
LOGGING = ("job_logging", "hydra_logging")
BOOKKEEPING = (("overrides",), ("runtime",), ("job", "id"), ("job", "num"),
               ("job", "config_name"), ("job", "override_dirname"))
JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
SUMMARY = ("a config may set Hydra's launcher, sweeper, output folders, verbosity, search path "
           "and job name only")

Path = tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    """The hydra node composed from attnbench's own conf/ alone, as written (interpolations
    unresolved), and Hydra's own logging options as shipped ({"job_logging": {option: node}})."""

    hydra: Mapping[str, Any]
    logging: Mapping[str, Mapping[str, Any]]


def hydra_problems(tree: Mapping[str, Any], raw: Mapping[str, Any], ref: Reference,
                   typed: Sequence[str]) -> list[tuple[str, str]]:
    """(key, reason) for everything the config sets that is not allowed: object hooks anywhere
    (`tree`: the whole config resolved), and in the hydra node (`raw`: as written) whatever
    differs from attnbench's outside the allowed keys, whose rules see the resolved values.
    `typed`: the overrides the user typed (command-line-only launcher fields)."""
    hooks = object_hooks(tree)
    found = [(k, "a config cannot name code to import (_target_, _partial_, _args_, ...); "
                 "attnbench builds only its registered components (choose them by name, e.g. "
                 "attention=additive)") for k in hooks]
    hydra = tree.get("hydra")
    if not isinstance(hydra, Mapping):
        return found
    rules: dict[Path, Callable[[Any], list[tuple[str, str]]]] = {
        ("run", "dir"): lambda v: _folder("hydra.run.dir", v, absolute=True),
        ("sweep", "dir"): lambda v: _folder("hydra.sweep.dir", v, absolute=True),
        ("sweep", "subdir"): lambda v: _folder("hydra.sweep.subdir", v, absolute=False),
        ("output_subdir",): lambda v: [] if v is None else _folder("hydra.output_subdir", v,
                                                                   absolute=False),
        ("verbose",): _verbose,
        ("job", "name"): _job_name,
        ("searchpath",): lambda v: [("hydra.searchpath", p) for p in searchpath_problems(
            v if isinstance(v, list) else [v])],
        ("launcher",): lambda v: plugin_problems("launcher", v, typed),
        ("sweeper",): lambda v: plugin_problems("sweeper", v, typed),
        **{(name,): (lambda v, n=name: _logging(n, raw.get(n), ref)) for name in LOGGING},
    }
    found += _diff(raw, ref.hydra, (), rules, hydra)
    return [(k, why) for k, why in found  # a hook inside a refused key: name the hook only
            if k in hooks or not any(h.startswith(k + ".") for h in hooks)]


def _diff(node: Any, ref: Any, path: Path,
          rules: Mapping[Path, Callable[[Any], list[tuple[str, str]]]],
          resolved: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Compare the hydra node as written (`node`) with attnbench's (`ref`); at a path with a rule,
    apply the rule to the resolved value instead."""
    if path in rules:
        return rules[path](_at(resolved, path))
    if path in BOOKKEEPING:
        return []
    key = "hydra." + ".".join(path)
    if isinstance(node, Mapping) and isinstance(ref, Mapping):
        out = [(f"{key}.{k}" if path else f"hydra.{k}", f"not a setting a config may add; "
                f"{SUMMARY}") for k in node if k not in ref and (*path, k) not in rules]
        out += [(f"{key}.{k}" if path else f"hydra.{k}", f"cannot be removed; {SUMMARY}")
                for k in ref if k not in node]
        for k in node:
            if k in ref or (*path, k) in rules:
                out += _diff(node[k], ref.get(k), (*path, k), rules, resolved)
        return out
    if node != ref:
        return [(key, f"= {_short(node)} differs from attnbench's {_short(ref)}; {SUMMARY}")]
    return []


def _at(node: Any, path: Path) -> Any:
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _logging(name: str, node: Any, ref: Reference) -> list[tuple[str, str]]:
    """`hydra.<name>` must be one of the logging options of Hydra and attnbench's conf/ exactly
    as shipped; a difference is named against attnbench's default (conf/hydra/<name>/quiet)."""
    options = ref.logging.get(name, {})
    if any(node == option for option in options.values()):
        return []
    closest = ref.hydra.get(name) or options.get("default", {})
    key = _first_difference(node, closest, f"hydra.{name}")
    return [(key, f"logging must be one of Hydra's own options or attnbench's, as shipped "
                  f"(hydra/{name}="
                  f"{'|'.join(options)}); a config cannot add or change handlers, formatters "
                  "or log files")]


def _first_difference(node: Any, ref: Any, key: str) -> str:
    if isinstance(node, Mapping) and isinstance(ref, Mapping):
        for k in [*node, *(k for k in ref if k not in node)]:
            if k not in ref or k not in node:
                return f"{key}.{k}"
            if node[k] != ref[k]:
                return _first_difference(node[k], ref[k], f"{key}.{k}")
    return key


def _folder(key: str, value: Any, *, absolute: bool) -> list[tuple[str, str]]:
    if isinstance(value, int) and not isinstance(value, bool) and not absolute:
        return []
    if not isinstance(value, str) or not value.strip():
        return [(key, f"= {_short(value)} should be a folder path")]
    if not absolute and (os.path.isabs(value) or ".." in value.replace("\\", "/").split("/")):
        return [(key, f"= {value!r} should be a subfolder (relative, without '..')")]
    return []


def _verbose(value: Any) -> list[tuple[str, str]]:
    names = value if isinstance(value, list) else [value]
    if isinstance(value, bool) or all(isinstance(n, str) for n in names):
        return []
    return [("hydra.verbose", f"= {_short(value)} should be true, false or logger names")]


def _job_name(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str) and JOB_NAME.fullmatch(value):
        return []
    return [("hydra.job.name", f"= {_short(value)} should be a plain name (letters, digits, "
                               "_ . -, at most 64 characters): it names the job's log file")]


def searchpath_problems(entries: Sequence[Any], where: str = "hydra.searchpath") -> list[str]:
    """Why `hydra.searchpath` entries cannot be used: a ``pkg://`` package other than Hydra's own
    configs and installed attnbench plugins' config packages (importing it runs its code), or a
    folder that does not exist."""
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
            continue
        folder = os.path.abspath(os.path.expanduser(text.removeprefix("file://")))
        if not os.path.isdir(folder):
            out.append(f"'{where}' entry {text!r}: no such folder ({folder})")
    return out


def object_hooks(tree: Any) -> list[str]:
    """Key paths (`hydra.callbacks.x._target_`) of every object hook in `tree` (plain, resolved
    containers) other than the ones Hydra needs (`ALLOWED_HOOKS`, checked by their own rules)."""
    return [_dotted(full) for full in _keys(tree, ())
            if full[-1] in HOOK_KEYS and full not in ALLOWED_HOOKS]


def _keys(node: Any, path: Path) -> Iterator[Path]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield (*path, str(key))
            yield from _keys(value, (*path, str(key)))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _keys(value, (*path, f"[{i}]"))


def _dotted(path: Path) -> str:
    return ".".join(path).replace(".[", "[")


def _short(value: Any, limit: int = 60) -> str:
    text = value.name if isinstance(value, Enum) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
