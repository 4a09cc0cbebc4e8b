"""Shell completion of overrides (`attnbench run atten<TAB>`): group choices from the conf/
folders, keys of the typed trainer settings and of each group's YAML. No Hydra, no torch."""

from __future__ import annotations

from dataclasses import fields

import yaml

from attnbench.config.groups import GROUPS, conf_dir, group_options
from attnbench.training.config import TrainerConfig

TOP_LEVEL = ("seed", "experiment_name", "runs_dir", "resume")


def _keys(group: str) -> list[str]:
    """Keys a group's YAMLs set (the trainer's typed fields for `trainer`)."""
    if group == "trainer":
        return [f.name for f in fields(TrainerConfig)]
    found: set[str] = set()
    for path in sorted((conf_dir() / group).glob("*.yaml")):
        node = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        found |= {str(k) for k in node
                  if k not in ("defaults", "name") and not str(k).startswith("_")}
    return sorted(found)


def complete_override(incomplete: str) -> list[str]:
    """Completions of one override being typed: `attention=<choice>`, `trainer.<key>=`, ..."""
    key, eq, _ = incomplete.partition("=")
    if eq and key in GROUPS:
        return [f"{key}={o}" for o in group_options(key) if f"{key}={o}".startswith(incomplete)]
    if eq:
        return []
    group, dot, _ = key.partition(".")
    if dot and group in GROUPS:
        return [f"{group}.{k}=" for k in _keys(group) if f"{group}.{k}".startswith(key)]
    words = [f"{g}=" for g in GROUPS] + [f"{g}." for g in GROUPS if g != "experiment"]
    words += [f"{k}=" for k in TOP_LEVEL]
    return sorted(w for w in words if w.startswith(incomplete))
