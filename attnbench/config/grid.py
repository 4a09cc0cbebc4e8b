"""The jobs a sweep's overrides describe: counted first, from the sweeps' lengths alone (a
``range`` is never listed to be counted), and refused beyond `MAX_JOBS`, before anything is
expanded (``seed=range(0,100000000)`` would otherwise list 10^8 override strings, gigabytes,
before Hydra's sweeper even starts), then expanded for validation.
"""

from __future__ import annotations

import decimal
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

from attnbench.config.groups import group_options
from attnbench.errors import ConfigError

# The most jobs one sweep may have: far above any study this tool is for (the bundled presets run
# 27 at most), far below what would exhaust memory while Hydra lists them.
MAX_JOBS = 10_000
MAX_CHECKED_JOBS = 256  # jobs composed and validated one by one before a sweep starts


def parse(args: Sequence[str]) -> list[Any]:
    """Hydra's parse of the overrides in `args` (flags skipped); ConfigError on a syntax error."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except HydraException as err:
        raise ConfigError(f"Cannot parse override: {str(err).strip().splitlines()[0]}") from err


def sweep_length(override: Any) -> int:
    """How many values a (discrete) sweep override takes; 1 for a plain override, 1 for an
    interval (the sweeper samples it: counted by its trials, not here)."""
    from hydra.core.override_parser.types import ChoiceSweep, Glob, RangeSweep

    if not override.is_sweep_override() or override.is_interval_sweep():
        return 1
    value = override.value()
    if isinstance(value, Glob):
        return len(value.filter(group_options(override.key_or_group.split("/")[-1])))
    if isinstance(value, ChoiceSweep):
        return len(value.list)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if step == 0:
            raise ConfigError(f"'{override.input_line}': a range's step cannot be 0")
        if all(isinstance(x, int) for x in (start, stop, step)):
            return len(range(start, stop, step))
        span = (decimal.Decimal(stop) - decimal.Decimal(start)) / decimal.Decimal(step)
        return max(0, math.ceil(span))
    return len(value) if isinstance(value, list) else 1


def check_grid(args: Sequence[str]) -> int:
    """The number of jobs the overrides in `args` make (the product of the sweeps' lengths);
    ConfigError naming the count beyond `MAX_JOBS`, or naming an empty sweep."""
    overrides = parse(args)
    lengths = [(o.input_line, sweep_length(o)) for o in overrides]
    count = math.prod(n for _, n in lengths)
    if count == 0:
        empty = [line for line, n in lengths if n == 0]
        raise ConfigError(f"'{empty[0]}' takes no value, so the sweep would run no job")
    if count > MAX_JOBS:
        swept = " x ".join(f"{line}: {n} values" for line, n in lengths if n != 1)
        raise ConfigError(
            f"these overrides make {count} jobs ({swept}); a sweep runs at most {MAX_JOBS}: "
            "sweep fewer values, or split the grid into several sweeps"
        )
    return count


def expand_overrides(args: Sequence[str]) -> list[list[str]]:
    """The jobs a sweep will run, as override lists (for validation only; Hydra runs them): the
    first `MAX_CHECKED_JOBS`, after `check_grid`."""
    check_grid(args)
    return [list(job) for job in itertools.islice(itertools.product(*values_per_key(args)),
                                                  MAX_CHECKED_JOBS)]


def values_per_key(args: Sequence[str]) -> list[list[str]]:
    """Each override of `args` as the list of `key=value` lines its sweep takes (one line for a
    plain override; interval sweeps, which the sweeper samples, are left out)."""
    from hydra.core.override_parser.types import Glob

    per_key: list[list[str]] = []
    for o in parse(args):
        key = o.get_key_element()
        if o.is_delete():
            per_key.append([key])
        elif not o.is_sweep_override():
            per_key.append([f"{key}={o.get_value_element_as_str()}"])
        elif isinstance(o.value(), Glob):
            group = o.key_or_group.split("/")[-1]
            per_key.append([f"{key}={v}" for v in o.value().filter(group_options(group))])
        elif o.is_discrete_sweep():
            per_key.append([f"{key}={v}" for v in o.sweep_string_iterator()])
    return per_key


def coverage_jobs(args: Sequence[str], varies: Callable[[str], bool]) -> list[list[str]]:
    """Beyond the first `MAX_CHECKED_JOBS`: one job per value of each swept key for which
    `varies(key)` (the other keys at their first value), so that every option of a swept config
    group and every value of a swept hydra.* key is composed and checked at least once."""
    per_key = values_per_key(args)
    first = [values[0] for values in per_key]
    jobs = []
    for i, values in enumerate(per_key):
        key = values[0].partition("=")[0].lstrip("+~")
        if len(values) > 1 and varies(key):
            jobs += [[*first[:i], value, *first[i + 1:]] for value in values[1:]]
    return jobs
