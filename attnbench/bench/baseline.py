"""``attnbench bench --baseline FILE.json``: this run's times against a stored run's, case by case,
failing past a threshold (xformers' ``--fail_if_regression`` habit).

A baseline is the ``results.json`` a bench writes (``runs/bench/<time>/results.json``; a folder
names the newest one under it, e.g. ``runs/bench``: the last bench) or the ``gpu-figures.json``
the GPU kit writes (benchmarks/gpu_check: its bench stage's rows, one set per mode it ran).
Loaded and checked before anything is measured, each problem one line (exit 2): a file that is
missing or is neither; a baseline measured on another device (its type or name), in another
dtype, at other sizes (``bench.batch``, ``bench.dim``, ``bench.inputs``), or with no rows of
this run's mode (``bench.mode``, ``bench.causal``).

The comparison: a case is a label (``scaled``, ``multihead_torch``, ...) at a length T; its time
is ``median_ms`` (forward + backward, the inference forward, or ms per decoding step: the mode's
own). A case is *regressed* when this run's time exceeds the baseline's by more than
``threshold`` (0.10 = 10 % slower). Cases measured on one side only are listed, never failures.

No torch here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnbench.errors import AttnbenchError, ConfigError

SIZES = ("batch", "dim", "inputs")  # bench settings a case's time depends on beyond its label


class Regressed(AttnbenchError):
    """Some case is slower than the baseline by more than the threshold (exit 1)."""

    exit_code = 1


@dataclass(frozen=True)
class Baseline:
    """The stored run a bench is compared with: where it ran and its times by (label, T)."""

    path: Path
    device: str  # device type: cpu, cuda, mps
    device_name: str
    dtype: str
    mode: str
    causal: bool
    sizes: dict[str, Any]
    times: dict[tuple[str, int], float]  # (label, T) -> median ms


@dataclass
class Comparison:
    """This run against a baseline: every case both measured, and those only one side did."""

    baseline: Baseline
    threshold: float
    # (label, T, baseline ms, this run's ms, change: this / baseline - 1)
    cases: list[tuple[str, int, float, float, float]] = field(default_factory=list)
    only_here: list[tuple[str, int]] = field(default_factory=list)
    only_there: list[tuple[str, int]] = field(default_factory=list)

    @property
    def regressed(self) -> list[tuple[str, int, float, float, float]]:
        return [c for c in self.cases if c[4] > self.threshold]

    def verdict(self) -> str:
        """One line: which cases regressed past the threshold, and by how much."""
        worst = sorted(self.regressed, key=lambda c: -c[4])
        listed = ", ".join(f"{lb} T={n} {100 * ch:+.1f}%" for lb, n, _, _, ch in worst)
        return (f"{len(worst)} of {len(self.cases)} case(s) more than "
                f"{100 * self.threshold:g}% slower than the baseline {self.baseline.path}: "
                f"{listed}")


def _fail(path: Path, why: str) -> ConfigError:
    return ConfigError(f"--baseline {path}: {why}")


def load(path: Path, mode: str, causal: bool) -> Baseline:
    """The baseline in `path`: a bench's results.json or the GPU kit's gpu-figures.json (its
    rows of this `mode` and `causal`), or a folder: the newest results.json under it (e.g.
    runs/bench, the last bench); one-line ConfigError otherwise."""
    if path.is_dir():
        found = sorted(path.rglob("results.json"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise _fail(path, "a folder with no results.json under it")
        path = found[-1]
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(path, f"not a JSON file ({str(err).splitlines()[0]})") from None
    if isinstance(doc, dict) and isinstance(doc.get("rows"), list) and "settings" in doc:
        s = doc["settings"]
        sets = [(s, doc["rows"])]
        device = str(doc.get("device", "")).partition(":")[0]
        name = str(doc.get("device_name", ""))
    elif isinstance(doc, dict) and isinstance(doc.get("stages", {}).get("bench"), dict):
        stage = doc["stages"]["bench"]
        sets = [(part.get("settings", {}), part.get("rows", []))
                for part in (stage, *stage.get("modes", {}).values()) if part.get("rows")]
        device = str(doc.get("device", {}).get("type", ""))
        name = str(doc.get("device", {}).get("name", ""))
    else:
        raise _fail(path, "neither a bench's results.json nor the GPU kit's gpu-figures.json "
                          "(no 'rows' and 'settings', no 'stages.bench')")
    found = [(s, rows) for s, rows in sets
             if (s.get("mode", "train"), bool(s.get("causal", False))) == (mode, causal)]
    if not found:
        have = sorted({_mode(s.get("mode", "train"), bool(s.get("causal"))) for s, _ in sets})
        raise _fail(path, f"no rows of {_mode(mode, causal)} (it has: "
                          f"{', '.join(have) or 'no rows'}); compare runs of one bench.mode and "
                          "bench.causal")
    settings, rows = found[0]
    try:
        times = {(str(r["label"]), int(r["n"])): float(r["median_ms"])
                 for r in rows if r.get("median_ms")}
    except (KeyError, TypeError, ValueError) as err:
        raise _fail(path, f"a row without a label, n and median_ms ({err})") from None
    return Baseline(path, device, name, str(settings.get("dtype", "float32")), mode, causal,
                    {k: settings.get(k) for k in SIZES}, times)


def _mode(mode: str, causal: bool) -> str:
    return f"bench.mode={mode} bench.causal={'true' if causal else 'false'}"


def check_same(baseline: Baseline, device: str, device_name: str, dtype: str,
               sizes: Mapping[str, Any]) -> None:
    """One-line ConfigError when the baseline ran on another device or dtype, or at other sizes,
    naming both sides."""
    here = f"{device_name} ({device.partition(':')[0]}), {dtype}"
    there = f"{baseline.device_name} ({baseline.device}), {baseline.dtype}"
    if (baseline.device, baseline.device_name, baseline.dtype) != (
        device.partition(":")[0], device_name, dtype
    ):
        raise _fail(baseline.path, f"measured on {there}; this run is on {here}: compare runs "
                                   "of one device and dtype")
    other = {k: (baseline.sizes[k], sizes[k]) for k in SIZES
             if baseline.sizes.get(k) is not None and baseline.sizes[k] != sizes[k]}
    if other:
        diff = ", ".join(f"bench.{k}={a} there, {b} here" for k, (a, b) in other.items())
        raise _fail(baseline.path, f"measured at other sizes ({diff}): compare runs of one size")


def compare(baseline: Baseline, rows: Sequence[Any], threshold: float) -> Comparison:
    """This run's `rows` (each with label, n, median_ms) against the baseline's times."""
    here = {(r.label, r.n): r.median_ms for r in rows if r.median_ms}
    out = Comparison(baseline, threshold)
    for key, ms in here.items():
        old = baseline.times.get(key)
        if old is None:
            out.only_here.append(key)
        else:
            out.cases.append((*key, old, ms, ms / old - 1))
    out.only_there = [k for k in baseline.times if k not in here]
    return out


def comparison_table(cmp: Comparison) -> Any:
    """The cases both sides measured, the regressed ones marked."""
    from rich.table import Table

    table = Table(title=f"against the baseline {cmp.baseline.path} (threshold "
                        f"{100 * cmp.threshold:g}% slower)", title_justify="left")
    for col in ("attention", "T", "baseline ms", "ms", "change", ""):
        table.add_column(col, justify="left" if col in ("attention", "") else "right")
    for label, n, old, new, change in cmp.cases:
        flag = "REGRESSED" if change > cmp.threshold else ""
        table.add_row(label, str(n), f"{old:.3f}", f"{new:.3f}", f"{100 * change:+.1f}%", flag)
    return table


def one_sided(cmp: Comparison) -> list[str]:
    """A line for the cases only this run measured, and one for those only the baseline did."""
    out = []
    for cases, where in ((cmp.only_here, "not in the baseline"),
                         (cmp.only_there, "not in this run")):
        if cases:
            out.append(f"{len(cases)} case(s) {where}: "
                       + ", ".join(f"{lb} T={n}" for lb, n in cases))
    return out


def summary(cmp: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data (written beside results.json)."""
    return {
        "baseline": str(cmp.baseline.path),
        "threshold": cmp.threshold,
        "cases": [{"label": lb, "n": n, "baseline_ms": a, "ms": b, "change": ch,
                   "regressed": ch > cmp.threshold} for lb, n, a, b, ch in cmp.cases],
        "not_in_baseline": [{"label": lb, "n": n} for lb, n in cmp.only_here],
        "not_in_this_run": [{"label": lb, "n": n} for lb, n in cmp.only_there],
    }
