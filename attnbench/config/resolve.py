"""Resolve a composed config the way Hydra will, before anything runs, so the checks see what the
interpolations become (``${oc.decode:'{_target_: ...}'}`` is a mapping with a ``_target_``, not a
string) and a broken interpolation is one line naming its key.

Every value is resolved one by one (an error is recorded against its key and the walk goes on),
with the values Hydra only fills in when a job starts set to stand-ins first: the job number and
id (0), the job's output folder (`hydra.run.dir`, or `hydra.sweep.dir`/`hydra.sweep.subdir`),
and Hydra's own config for the ``${hydra:...}`` resolver. While the walk runs, the ``oc.env``
resolver is wrapped to record which key read which environment variable (the rule on secrets,
`config.guard`, decides whether that read is allowed); the wrapper returns what ``oc.env``
returns and is removed when the walk ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

MISSING = "???"
# Hydra's record of the command line (override strings, kept as typed): not resolved.
BOOKKEEPING = (("hydra", "overrides"), ("hydra", "job", "override_dirname"))


@dataclass
class Resolved:
    """A config with every interpolation resolved: plain dicts and lists (`tree`; a value that
    cannot be resolved keeps its text), the values that could not be resolved (`errors`:
    (key, text, why)) and the environment variables read (`env_reads`: (key, variable))."""

    tree: dict[str, Any] = field(default_factory=dict)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    env_reads: list[tuple[str, str]] = field(default_factory=list)

    def problems(self, *, skip: tuple[str, ...] = ()) -> list[str]:
        """One line per value that cannot be resolved, except keys under `skip`."""
        return [f"'{key}' = {text!r} cannot be resolved: {why}"
                for key, text, why in self.errors
                if not any(key == s or key.startswith(s + ".") for s in skip)]


def resolve(cfg: DictConfig, *, multirun: bool = False) -> Resolved:
    """Resolve `cfg` (a composed config, with or without its hydra node); `multirun`: a sweep's
    job, whose output folder is `hydra.sweep.dir`/`hydra.sweep.subdir`. The stand-ins are set
    on `cfg` itself (a copy would cost more than the walk) and taken out again."""
    from hydra.core.hydra_config import HydraConfig

    out = Resolved()
    saved = HydraConfig.instance().cfg
    with _stand_ins(cfg, multirun):
        try:
            if "hydra" in cfg:
                HydraConfig.instance().set_config(cfg)  # marks cfg.hydra read-only
            with _recording_env(out.env_reads):
                tree = _walk(cfg, (), out.errors)
        finally:
            HydraConfig.instance().cfg = saved
    out.tree = tree if isinstance(tree, dict) else {}
    return out


STAND_INS = (("job", "num"), ("job", "id"), ("runtime", "output_dir"))


@contextmanager
def _stand_ins(cfg: DictConfig, multirun: bool) -> Iterator[None]:
    """`cfg`'s job number, id and output folder hold what the first job gets, while the walk
    runs; afterwards the values that were missing are missing again."""
    if "hydra" not in cfg:
        yield
        return
    hydra = cfg.hydra
    readonly = OmegaConf.is_readonly(hydra)
    missing = [path for path in STAND_INS if OmegaConf.is_missing(hydra[path[0]], path[1])]
    select = {key: OmegaConf.select(cfg, f"hydra.{key}", default=None,
                                    throw_on_resolution_failure=False)
              for key in ("run.dir", "sweep.dir", "sweep.subdir")}
    folder = select["run.dir"]
    if multirun and select["sweep.dir"] is not None:
        folder = os.path.join(str(select["sweep.dir"]), str(select["sweep.subdir"] or ""))
    values = {"num": 0, "id": "0", "output_dir": os.path.abspath(str(folder or "."))}
    try:
        with read_write(hydra), open_dict(hydra):
            for group, key in missing:
                hydra[group][key] = values[key]
        yield
    finally:
        OmegaConf.set_readonly(hydra, False)
        with open_dict(hydra):
            for group, key in missing:
                hydra[group][key] = MISSING
        OmegaConf.set_readonly(hydra, readonly)


def _walk(node: Any, path: tuple[str, ...], errors: list[tuple[str, str, str]]) -> Any:
    if OmegaConf.is_dict(node):
        return {str(k): _child(node, k, (*path, str(k)), errors) for k in node}
    if OmegaConf.is_list(node):
        return [_child(node, i, (*path, f"[{i}]"), errors) for i in range(len(node))]
    return node


def dotted(path: tuple[str, ...]) -> str:
    """A key path as OmegaConf writes it: `a.b[0].c`."""
    return ".".join(path).replace(".[", "[")


def _child(parent: Any, key: Any, path: tuple[str, ...],
           errors: list[tuple[str, str, str]]) -> Any:
    if path in BOOKKEEPING:  # the command line as text: Hydra saves it unresolved
        return OmegaConf.to_container(parent, resolve=False)[key]  # type: ignore[index]
    if OmegaConf.is_missing(parent, key):
        return MISSING
    try:
        value = parent[key]
    except Exception as err:  # noqa: BLE001 - OmegaConf's resolution errors, reported per key
        text = _text(parent, key)
        errors.append((dotted(path), text, _why(err)))
        return text
    if OmegaConf.is_config(value):
        return _walk(value, path, errors)
    return value


def _text(parent: Any, key: Any) -> str:
    """The value as written (an interpolation's text)."""
    raw = OmegaConf.to_container(parent, resolve=False)
    try:
        return str(raw[key])  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return "?"


def _why(err: Exception) -> str:
    """OmegaConf's resolution error in words."""
    from omegaconf.errors import (
        InterpolationKeyError,
        InterpolationToMissingValueError,
        UnsupportedInterpolationType,
    )

    text = " ".join(str(err).split())
    first = text.split(" full_key:")[0]
    if "Recursive interpolation" in text:
        return "it refers to itself (directly or through other keys)"
    if "Environment variable" in text and "not found" in text:
        name = first.split("Environment variable '")[-1].split("'")[0]
        return (f"the environment variable {name} is not set (set it, or give a default: "
                f"${{oc.env:{name},default}})")
    if isinstance(err, InterpolationKeyError):
        key = first.split("'")[1] if "'" in first else first
        return f"it refers to '{key}', which does not exist"
    if isinstance(err, InterpolationToMissingValueError):
        return f"it refers to a value that is not set ({first})"
    if isinstance(err, UnsupportedInterpolationType):
        return (f"{first} (resolvers: oc.env, oc.decode, oc.create, oc.select, oc.dict.keys, "
                "oc.dict.values, now, hydra)")
    return first


@contextmanager
def _recording_env(reads: list[tuple[str, str]]) -> Iterator[None]:
    """``oc.env`` as usual, each read recorded as (key being resolved, variable)."""
    from omegaconf.resolvers import oc

    marker = oc._DEFAULT_MARKER_  # what oc.env uses for "no default given"

    def recording(key: str, default: Any = marker, *, _node_: Any = None) -> Any:
        where = _node_._get_full_key(None) if _node_ is not None else "?"
        reads.append((str(where), str(key)))
        return oc.env(key, default)

    OmegaConf.register_new_resolver("oc.env", recording, replace=True)
    try:
        yield
    finally:  # OmegaConf's own registration, as `register_default_resolvers` makes it
        OmegaConf.register_new_resolver("oc.env", oc.env, replace=True)
