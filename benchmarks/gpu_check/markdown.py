"""gpu-figures.md: the figures document (gpu-figures.json) as Markdown tables, one section per
stage, written beside the JSON after every step."""

from __future__ import annotations

from typing import Any


def _f(value: Any, fmt: str = ".3g") -> str:
    if value is None:
        return "—"
    return format(value, fmt) if isinstance(value, (int, float)) else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c.replace("|", "\\|")
                              for c in row) + " |" for row in rows]
    return out + [""]


def _head(doc: dict[str, Any]) -> list[str]:
    kit, dev = doc["kit"], doc["device"]
    mode = "DRY RUN on the CPU (toy sizes: not GPU figures)" if kit.get("mode") == "dry-run" \
        else "CUDA GPU"
    lines = [f"# attnbench GPU check: {dev.get('name', '?')}", "",
             f"- mode: {mode}",
             f"- started {kit.get('started')}, finished "
             f"{kit.get('finished') or '— (running or stopped)'}, "
             f"{_f(kit.get('elapsed_s'), '.0f')} s of a {_f(kit.get('budget_s'), '.0f')} s budget",
             f"- torch {dev.get('torch')}, CUDA {dev.get('cuda')}, driver "
             f"{dev.get('driver') or '—'}, compute capability {dev.get('capability') or '—'}, "
             f"{_f(dev.get('memory_gib'))} GiB, "
             f"native bf16: {dev.get('bf16_native')}, Python {dev.get('python')}, "
             f"{dev.get('cpu_count')} CPUs",
             f"- command: `{kit.get('command')}`", ""]
    plan = [[p["stage"], _f(p["budget_s"], ".0f"),
             doc["stages"].get(p["stage"], {}).get("status", "pending"),
             _f(doc["stages"].get(p["stage"], {}).get("elapsed_s"), ".0f"), p["what"]]
            for p in doc["plan"]]
    lines += ["## Plan", ""] + _table(["stage", "budget s", "status", "took s", "what"], plan)
    pk = doc.get("packages") or {}
    if pk:
        lines += ["## Packages", "",
                  f"- missing: {', '.join(pk.get('missing', [])) or 'none'}",
                  f"- at another version than gpu-requirements.txt pins: "
                  f"{', '.join(pk.get('mismatch', [])) or 'none'}",
                  f"- `pip check`: {(pk.get('pip_check') or '').splitlines()[:1] or ['—']}", ""]
    return lines


def _tests(s: dict[str, Any]) -> list[str]:
    lines = [f"passed **{s.get('passed')}**, failed **{s.get('failed')}**, errors "
             f"{s.get('errors')}, skipped {s.get('skipped')}, not reached "
             f"{_f(s.get('not_reached'))} (of {_f(s.get('collected'))} collected); "
             f"`{s.get('command', '')}`", ""]
    if s.get("failures"):
        lines += _table(["test", "outcome", "reason"],
                        [[f["test"], f["outcome"], f["reason"]] for f in s["failures"]])
    if s.get("skip_reasons"):
        lines += _table(["skipped because", "tests"], [[k, v] for k, v in
                                                       s["skip_reasons"].items()])
    return lines


def _grid(s: dict[str, Any]) -> list[str]:
    cells = s.get("cells", [])
    precisions = list(dict.fromkeys(c["precision"] for c in cells))
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    for c in cells:
        rows.setdefault((c["attention"], c["backbone"], c["task"]), {})[c["precision"]] = (
            "ok" if c["status"] == "ok" else "✗")
    lines = [f"{s.get('ok')} of {s.get('total')} cells trained; "
             + ", ".join(f"`{c}`" for c in s.get("commands", [])), ""]
    lines += _table(["attention", "backbone", "task", *precisions],
                    [[*k, *(v.get(p, "—") for p in precisions)] for k, v in rows.items()])
    bad = [c for c in cells if c["status"] != "ok"]
    if bad:
        lines += _table(["cell", "status"], [[f"{c['attention']}/{c['backbone']}/{c['task']}/"
                                              f"{c['precision']}", c["status"]] for c in bad])
    return lines


def _sweep(s: dict[str, Any]) -> list[str]:
    per = s.get("per_precision", {})
    lines = [f"`{s.get('command', '')}` took {_f(s.get('sweep_wall_s'))} s in all", ""]
    lines += _table(["precision", "jobs", "finished", "jobs' wall s", "training s", "samples/s",
                     "peak MB"],
                    [[p, v["jobs"], v["finished"], v["jobs_wall_s"], v["train_s"],
                      v["samples_per_s"], v["peak_mem_mb"]] for p, v in per.items()])
    if "32" in per and "bf16" in per and per["32"]["train_s"]:
        ratio = per["bf16"]["train_s"] / per["32"]["train_s"]
        lines += [f"bf16 ÷ float32 training time (summed over the finished jobs): {ratio:.2f}",
                  ""]
    pv = s.get("per_variant", {})
    header = ["attention"]
    for p in per:
        header += [f"score {p}", f"samples/s {p}", f"peak MB {p}"]
    lines += _table(header, [[v, *(x for p in per for x in (
        d.get(p, {}).get("score"), d.get(p, {}).get("samples_per_s"),
        d.get(p, {}).get("peak_mem_mb")))] for v, d in pv.items()])
    det = s.get("deterministic", {})
    if "pairs" in det:
        lines += [f"Determinism (trainer.deterministic=true): **{det['identical']} of "
                  f"{det['pairs']}** repeated runs identical (every metric but time and memory, "
                  f"and the train/loss curve).", ""]
        if det["differing"]:
            lines += _table(["cell", "metrics that differ", "max |diff|"],
                            [[d["cell"], ", ".join(d["metrics"]), d["max_abs_diff"]]
                             for d in det["differing"]])
    elif det:
        lines += [f"Determinism: not checked ({det.get('skipped')})", ""]
    return lines


def _bench(s: dict[str, Any]) -> list[str]:
    calls = s.get("calls", [])
    first = next((c for c in calls if "device_name" in c), {})
    st = s.get("settings", {})
    lines = [f"{first.get('device_name', '—')}, {st.get('dtype', '—')}, B={st.get('batch')} "
             f"D={st.get('dim')} inputs={st.get('inputs')}, matmul peak "
             f"{_f(first.get('matmul_peak_gflops'), '.0f')} GFLOP/s; forward+backward median "
             f"of {st.get('repeats')} calls. {s.get('stopped', '')}", ""]
    for name, by_n in s.get("peers", {}).items():
        lines += [f"**{name}**", ""]
        lines += _table(["T", "variant ms", "peer ms", "÷"],
                        [[n, v["variant_ms"], v["peer_ms"], _f(v["ratio"], ".3f")]
                         for n, v in by_n.items()])
    rows = s.get("rows", [])
    labels = list(dict.fromkeys(r["label"] for r in rows))
    ns = sorted({r["n"] for r in rows})
    ms = {(r["label"], r["n"]): r["median_ms"] for r in rows}
    lines += ["forward+backward ms (— = skipped: memory, or not run)", ""]
    lines += _table(["case", *map(str, ns), "longest T"],
                    [[lab, *(ms.get((lab, n)) for n in ns),
                      s.get("longest_T", {}).get(lab)] for lab in labels])
    for name, mode in s.get("modes", {}).items():
        lines += _mode(name, mode)
    return lines


MODE_TITLES = {"causal": "causal forward+backward ms (fwd + bwd)",
               "decode": "decoding: ms per step after a prefix of T positions, and the state MB"}


def _mode(name: str, m: dict[str, Any]) -> list[str]:
    """One of the bench's other modes: the case x T table with its exponents."""
    lines = [f"**{MODE_TITLES.get(name, name)}**: `{m.get('command', '')}`"
             + (f" — {m.get('stopped') or m.get('error')}" if m.get("stopped") or m.get("error")
                else ""), ""]
    rows = m.get("rows", [])
    if not rows:
        return lines
    decoding = m.get("settings", {}).get("mode") == "decode"
    ns = sorted({r["n"] for r in rows})
    cell = {(r["label"], r["n"]): r for r in rows}
    header = ["case", *(f"{n} ms" for n in ns), "exponent"]
    if decoding:
        header += [*(f"{n} MB" for n in ns), "state exponent"]
    body = []
    for lab in dict.fromkeys(r["label"] for r in rows):
        line = [lab, *(cell.get((lab, n), {}).get("median_ms") for n in ns),
                _f(m.get("exponents", {}).get(lab), ".2f")]
        if decoding:
            line += [*(cell.get((lab, n), {}).get("state_mb") for n in ns),
                     _f(m.get("state_exponents", {}).get(lab), ".2f")]
        body.append(line)
    lines += _table(header, body)
    if m.get("skipped"):
        lines += [f"- {lab}: {why}" for lab, why in m["skipped"].items()] + [""]
    return lines


SECTIONS = {"tests": ("Tests: `pytest -m gpu`", _tests), "grid": ("Every variant x backbone x "
            "precision (trainer=smoke)", _grid), "sweep": ("Default sweep, float32 vs bf16",
            _sweep), "bench": ("attnbench bench", _bench)}


def render(doc: dict[str, Any]) -> str:
    lines = _head(doc)
    for name, (title, body) in SECTIONS.items():
        s = doc["stages"].get(name)
        if s is None:
            continue
        lines += [f"## {title}", "", f"status: **{s.get('status')}**"
                  + (f" — {s['error']}" if s.get("error") else "")
                  + (f" — {s['why']}" if s.get("why") else ""), ""]
        if s.get("status") not in ("skipped", "running") or s.get("cells") or s.get("rows"):
            lines += body(s)
    return "\n".join(lines).rstrip() + "\n"
