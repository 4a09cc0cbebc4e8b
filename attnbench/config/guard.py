"""The check every composed config passes before Hydra runs anything with it (`run`, `sweep`,
their `--cfg`/`--info`, each sweep job and the sweep's master config): resolve it
(`config.resolve`), apply the allow-list of `config.hooks`, apply the rule on environment
variables, and name where each refused key came from (the command line, the -cd folder, a search
path folder, a plugin's config package, or attnbench's conf/).

The rule on environment variables: a value may read one (``${oc.env:NAME}``) only if the user
typed that read on the command line for that key (``experiment_name='${oc.env:USER}'``). A read
in a config file (a -cd folder, a search path, a plugin, a preset) is refused, naming the key and
the variable, so a shared config cannot copy a secret of the user's environment into the
experiment name, the saved config or an artifact folder name. The reads are those OmegaConf
really makes while the config is resolved, so one hidden behind other interpolations counts too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from attnbench.config.hooks import LOGGING, Reference, hydra_problems
from attnbench.config.resolve import Resolved, resolve

Whence = Callable[[str], str]


@functools.cache
def reference() -> Reference:
    """The hydra node composed from attnbench's conf/ alone, as written, and Hydra's own logging
    options as shipped (read from Hydra's config package)."""
    from hydra.core.global_hydra import GlobalHydra

    from attnbench.config.compose import bare_compose

    with bare_compose() as compose:
        cfg = compose("config", overrides=[], return_hydra_config=True)
        loader = GlobalHydra.instance().hydra.config_loader  # type: ignore[union-attr]
        logging = {
            name: {option: OmegaConf.to_container(
                loader.repository.load_config(f"hydra/{name}/{option}").config, resolve=False)
                   for option in loader.get_group_options(f"hydra/{name}")}
            for name in LOGGING
        }
    hydra = OmegaConf.to_container(cfg.hydra, resolve=False)
    return Reference(hydra, logging)  # type: ignore[arg-type]


def check_config(cfg: DictConfig, *, typed: Sequence[str], multirun: bool = False,
                 whence: Whence | None = None, job_values: bool = True,
                 ) -> tuple[list[str], Resolved]:
    """One line per problem of the composed config `cfg` (hydra node included) and the config
    resolved. `typed`: the overrides the user typed; `whence(key)`: where a key came from;
    `job_values=False` (--cfg without --resolve): values outside hydra.* that cannot be resolved
    are left to the run."""
    resolved = resolve(cfg, multirun=multirun)
    raw_hydra = OmegaConf.to_container(cfg.hydra, resolve=False) if "hydra" in cfg else {}
    ref = reference()
    found = hydra_problems(resolved.tree, raw_hydra, ref, typed)  # type: ignore[arg-type]
    found += env_problems(resolved.env_reads, typed)
    where = whence or (lambda key: "")
    lines = [f"'{key}'{' ' if why.startswith('=') else ': '}{why}{where(key)}"
             for key, why in found]
    refused = {key for key, _ in found}
    errors = [(k, t, w) for k, t, w in resolved.errors if k not in refused
              and (job_values or k.startswith("hydra."))]
    lines += [f"'{k}' = {t!r} cannot be resolved: {w}{where(k)}" for k, t, w in errors]
    return list(dict.fromkeys(lines)), resolved


def env_problems(reads: Sequence[tuple[str, str]], typed: Sequence[str]
                 ) -> list[tuple[str, str]]:
    """(key, reason) for each environment variable read that the user did not type."""
    out = []
    for key, name in reads:
        if not _typed_read(key, name, typed):
            out.append((key, f"reads the environment variable {name} (${{oc.env:{name}}}) from "
                             "a config file: only the command line may copy the environment "
                             f"into a run (type {key}='${{oc.env:{name}}}' if you mean it)"))
    return list(dict.fromkeys(out))


def _typed_read(key: str, name: str, typed: Sequence[str]) -> bool:
    for line in typed:
        okey, _, value = line.lstrip("+~").partition("=")
        okey = okey.strip()
        covers = key == okey or key.startswith((okey + ".", okey + "["))
        if covers and f"oc.env:{name}" in "".join(value.split()):
            return True
    return False


# -- where a key came from ------------------------------------------------------------------------
def whence_finder(config_name: str, overrides: Sequence[str], typed: Sequence[str],
                  multirun: bool, cp_given: bool = False) -> Whence:
    """`whence(key)`: " (from FILE, the -cd folder)" and the like, for the config source that set
    `key` last. Call inside `config.compose.hydra_compose` (it reads Hydra's defaults list)."""

    @functools.cache
    def files() -> list[tuple[str, str, Any]]:
        return _loaded_files(config_name, overrides, multirun, cp_given)

    def whence(key: str) -> str:
        for line in typed:
            okey = line.lstrip("+~").partition("=")[0].strip()
            if "/" not in okey and (key == okey or key.startswith((okey + ".", okey + "["))):
                return f" (from the command line: {_cut(line)})"
        try:
            loaded = files()
        except Exception:  # noqa: BLE001 - no defaults list: say nothing rather than guess
            return ""
        for package, where, raw in reversed(loaded):  # the last file that sets it wins
            if package and key != package and not key.startswith(package + "."):
                continue
            rel = key[len(package) + 1:] if package else key
            if _sets(raw, rel.replace("[", ".[").split(".")):
                return f" (from {where})"
        return ""

    return whence


def _loaded_files(config_name: str, overrides: Sequence[str], multirun: bool,
                  cp_given: bool) -> list[tuple[str, str, Any]]:
    """(package, "FILE, the SOURCE", raw content) of every config file of the defaults list."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from attnbench.plugins import PROVIDER

    hydra = GlobalHydra.instance().hydra
    assert hydra is not None
    mode = RunMode.MULTIRUN if multirun else RunMode.RUN
    defaults = hydra.config_loader.compute_defaults_list(config_name, list(overrides), mode)
    cfg = hydra.compose_config(config_name, list(overrides), run_mode=mode)
    sources = [(s.provider, s.schema, s.path) for s in cfg.hydra.runtime.config_sources]
    kinds = {"main": "the -cp folder" if cp_given else "attnbench's conf/",
             "command-line": "the -cd folder", PROVIDER: "a plugin's config package"}
    out = []
    for default in defaults.defaults:
        if not default.config_path or default.config_path.startswith("_dummy"):
            continue
        for provider, schema, path in sources:
            folder = _folder_of(provider, schema, path)
            if folder is None:
                continue
            file = os.path.join(folder, default.config_path + ".yaml")
            if os.path.isfile(file):
                kind = kinds.get(provider, "a hydra.searchpath folder"
                                 if provider.startswith("hydra.searchpath") else provider)
                raw = OmegaConf.to_container(OmegaConf.load(file), resolve=False)
                out.append((default.package or "", f"{file}, {kind}", raw))
                break
    return out


def _folder_of(provider: str, schema: str, path: str) -> str | None:
    """The folder of a config source: a file source's path, an attnbench plugin's package."""
    from attnbench.plugins import PROVIDER

    if schema == "file":
        return path
    if schema == "pkg" and provider == PROVIDER:
        import importlib.util

        spec = importlib.util.find_spec(path)  # an installed plugin Hydra has already read
        locations = list(spec.submodule_search_locations or []) if spec else []
        return locations[0] if locations else None
    return None


def _sets(node: Any, parts: Sequence[str]) -> bool:
    """`node` (a config file as written) sets the key `parts`, or an interpolation above it
    (a key may itself hold dots: a sweeper's params)."""
    if not parts:
        return True
    if isinstance(node, str):
        return "${" in node
    head = parts[0]
    if head.startswith("[") and isinstance(node, list):
        index = int(head[1:-1])
        return index < len(node) and _sets(node[index], parts[1:])
    if isinstance(node, Mapping):
        return any(_sets(node[key], parts[i:]) for i in range(len(parts), 0, -1)
                   if (key := ".".join(parts[:i])) in node)
    return False


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
