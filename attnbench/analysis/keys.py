"""Which config keys runs share and which they differ in: a grouping key's value, the twin a run
pairs with in another group, the keys a group pools, the default grouping of a selection, and
the `--baseline key=value` pairs of those keys."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from attnbench.errors import ConfigError
from attnbench.store.names import (
    ATTENTION_TAG,
    BACKBONE_TAG,
    IDENTITY_TAGS,
    NOT_TRAINED_PARAMS,
    SEED_TAG,
    SWEEP_KEYS_TAG,
    TASK_TAG,
)
from attnbench.store.tracker import RunInfo

if TYPE_CHECKING:  # select filters runs by these keys (it imports this module)
    from attnbench.analysis.select import Selection


def lookup(run: RunInfo, key: str) -> str | None:
    """A grouping key's value: a run tag (attention, backbone, task, seed) or a config param."""
    if key in run.tags:
        return run.tags[key]
    if key in run.params:
        return run.params[key]
    return run.params.get(f"{key}.name")


def _same_key(name: str, key: str) -> bool:
    """`name` is the grouping key `key` itself: equal, or the tag `attention` and the param
    `attention.name` (either way round)."""
    return name == key or name == f"{key}.name" or key == f"{name}.name"


def pairing_key(run: RunInfo, by: Sequence[str]) -> tuple:
    """What a run shares with its counterpart in another group: everything but the grouped keys
    and the config under them (its seed and any other config difference), so runs pair only
    with their exact twin."""

    def grouped(name: str) -> bool:
        return any(_same_key(name, k) or name.startswith(f"{k}.") for k in by)

    tags = tuple((k, run.tags.get(k)) for k in IDENTITY_TAGS if not grouped(k))
    params = tuple(
        sorted(
            (k, v)
            for k, v in run.params.items()
            if not grouped(k) and not k.startswith(NOT_TRAINED_PARAMS)
        )
    )
    return tags + params


def trained_config(run: RunInfo) -> dict[str, str | None]:
    """What was trained: the identity tags and the params, less what only says where results go
    (`NOT_TRAINED_PARAMS`). Includes the seed."""
    tags = {k: run.tags.get(k) for k in IDENTITY_TAGS}
    return tags | {k: v for k, v in run.params.items() if not k.startswith(NOT_TRAINED_PARAMS)}


def config_value(run: RunInfo, key: str) -> str | None:
    """The value of trained config key `key` in `run` (None if it has none)."""
    return trained_config(run).get(key)


def pooled_keys(runs: Sequence[RunInfo], by: Sequence[str]) -> dict[str, int]:
    """Trained config keys other than the seed and the grouped keys whose values differ between
    the runs of one group -> their number of values (a key a run lacks counts as a value).

    Implied differences are folded in: with `backbone.name` differing, `backbone.d_model` and
    the `backbone` tag are not listed again."""
    configs = [trained_config(r) for r in runs]
    names = {k for c in configs for k in c}
    differ = {
        k: len({c.get(k) for c in configs})
        for k in names
        if k not in (SEED_TAG, "seed") and not any(_same_key(k, g) for g in by)
    }
    differ = {k: n for k, n in differ.items() if n > 1}
    heads = {k.partition(".")[0] for k in differ if k.endswith(".name")} | {
        k for k in differ if k in IDENTITY_TAGS
    }
    out = {}
    for key, n in sorted(differ.items()):
        head, dot, rest = key.partition(".")
        if key in IDENTITY_TAGS and f"{key}.name" in differ:
            continue  # listed as <tag>.name
        if dot and rest != "name" and head in heads:
            continue  # follows from a different <group>.name
        out[key] = n
    return out


def default_by(selection: Selection, runs: Sequence[RunInfo]) -> list[str]:
    """The grouping when --by is not given: the keys the sweep varied (its parent run's
    SWEEP_KEYS_TAG) less the seed and keys no run has a value for, attention/backbone/task
    first; otherwise (an experiment, or a sweep that varied only the seed or predates the tag)
    `attention` plus whichever of `backbone` and `task` differ between the runs."""
    tag = selection.parent.tags.get(SWEEP_KEYS_TAG) if selection.parent else None
    try:
        varied = json.loads(tag) if tag else []
    except json.JSONDecodeError:
        varied = []
    keys = [
        str(k)
        for k in varied
        if k != SEED_TAG and any(lookup(r, str(k)) is not None for r in runs)
    ]
    order = {ATTENTION_TAG: 0, BACKBONE_TAG: 1, TASK_TAG: 2}
    keys.sort(key=lambda k: order.get(k, 3))  # stable: the rest keep the tag's order
    if keys:
        return keys
    return [ATTENTION_TAG] + [
        k for k in (BACKBONE_TAG, TASK_TAG) if len({lookup(r, k) for r in runs}) > 1
    ]


def parse_baseline(text: str, by: Sequence[str]) -> dict[str, str]:
    """`attention=none,backbone=rnn` -> {key: value}; a bare value when grouping by one key."""
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    if len(pairs) == 1 and "=" not in pairs[0] and len(by) == 1:
        return {by[0]: pairs[0]}
    out = {}
    for pair in pairs:
        key, eq, value = (s.strip() for s in pair.partition("="))
        if not eq or not key or not value:
            raise ConfigError(
                f"--baseline '{text}': expected key=value pairs separated by commas, e.g. "
                f"--baseline {by[0]}=none"
            )
        if key not in by:
            raise ConfigError(
                f"--baseline key '{key}' is not a grouping key: the groups are by "
                f"{', '.join(by)} (add it to --by)"
            )
        out[key] = value
    if not out:
        raise ConfigError(f"--baseline is empty: e.g. --baseline {by[0]}=none")
    return out
