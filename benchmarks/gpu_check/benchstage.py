"""Stage `bench`: `attnbench bench` for every variant with its peers (SDPA, the bare fused
call; nn.MultiheadAttention) at growing lengths, one call per group of lengths, until a length
no longer fits the device's memory (the bench's own guard skips those cases) or the budget;
then, in the time the plan keeps for them, one call per other mode (causal training, decoding
after a prefix: plan.BENCH_MODES)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu_check import proc, runs
from benchmarks.gpu_check.plan import BENCH_MODES, PEERS, Sizes

EXPERIMENT = "kit-bench"
GROWTH = 4  # a call at twice the length is predicted to take up to this many times as long
KEEP = ("label", "variant", "kind", "n", "median_ms", "iqr_ms", "fwd_ms", "bwd_ms", "peak_mb",
        "state_mb", "gflops", "pct_peak", "note")
MIN_CALL_S = 15  # a mode's call with less time than this is not started


def _newest_results(bench_dir: Path, since: float) -> dict[str, Any] | None:
    found = [p for p in bench_dir.glob("*/results.json") if p.stat().st_mtime >= since]
    if not found:
        return None
    return json.loads(max(found, key=lambda p: p.stat().st_mtime).read_text(encoding="utf-8"))


def predict(took: list[float]) -> float:
    """Seconds the next call may take: the first call (the shortest lengths) stands for the fixed
    cost of a call (start-up, the matmul peak), and the last call's work above it grows up to
    GROWTH times with the doubled length."""
    if not took:
        return 0.0
    fixed = min(took[0], took[-1])
    return fixed + GROWTH * (took[-1] - fixed)


def peers(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """variant time ÷ its peer's at every length both ran: multihead ÷ nn.MultiheadAttention,
    scaled ÷ SDPA."""
    ms = {(r["variant"], r["kind"], r["n"]): r["median_ms"] for r in rows if r["median_ms"]}
    out: dict[str, dict[str, Any]] = {}
    for name, (variant, kind) in PEERS.items():
        out[name] = {
            str(n): {"variant_ms": round(mine, 4), "peer_ms": round(ms[(variant, kind, n)], 4),
                     "ratio": round(mine / ms[(variant, kind, n)], 3)}
            for (v, k, n), mine in sorted(ms.items(), key=lambda item: item[0][2])
            if v == variant and k == "variant" and (variant, kind, n) in ms
        }
    return out


def longest(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The longest length each case ran at."""
    out: dict[str, int] = {}
    for r in rows:
        if r["median_ms"]:
            out[r["label"]] = max(out.get(r["label"], 0), r["n"])
    return out


def _call(args: list[str], left: float, repo: Path, work: Path, log: Path
          ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One `attnbench bench` call within `left` seconds: its record (lengths, rc, seconds, or
    the error's last line) and the results.json it wrote (None if it failed)."""
    cmd = runs.attnbench("bench", *args, f"experiment_name={EXPERIMENT}",
                         f"runs_dir={work / 'runs'}")
    since = time.time() - 1
    done = proc.run(cmd, left, log, cwd=work, env=runs.env(repo))
    call: dict[str, Any] = {"rc": done.rc, "elapsed_s": round(done.elapsed_s, 1)}
    result = _newest_results(work / "runs" / "bench", since) if done.ok else None
    if result is None:
        call["error"] = ("the budget ran out" if done.timed_out else
                         (done.tail.strip().splitlines() or ["no output"])[-1][:500])
    else:
        call.update(device_name=result["device_name"], dtype=result["settings"]["dtype"],
                    matmul_peak_gflops=round(result["matmul_peak_gflops"], 1))
    return call, result


def run_stage(section: dict[str, Any], repo: Path, work: Path, sizes: Sizes, variants: list[str],
              budget_s: float, log: Path, save: Any) -> None:
    t_end = time.monotonic() + budget_s
    t_main = t_end - (sizes.bench_modes_s if sizes.bench_modes else 0)
    rows: list[dict[str, Any]] = []
    section.update(calls=[], rows=rows)
    for chunk in sizes.bench_chunks:
        left = t_main - time.monotonic()
        guess = predict([c["elapsed_s"] for c in section["calls"]])
        if guess > left:
            section["stopped"] = (f"T={chunk[0]} not tried: predicted {guess:.0f} s, "
                                  f"{left:.0f} s of the budget left")
            break
        call, result = _call(
            [f"attention={','.join(variants)}", f"bench.device={sizes.device}",
             f"bench.seq_lens=[{','.join(map(str, chunk))}]", *sizes.bench_overrides],
            left, repo, work, log)
        section["calls"].append({"lengths": list(chunk), **call})
        if result is None:
            section["stopped"] = f"T={chunk[0]}: {call['error']}"
            break
        new = [{k: r.get(k) for k in KEEP} for r in result["rows"]]
        rows += new
        section.update(peers=peers(rows), longest_T=longest(rows),
                       settings={k: result["settings"][k] for k in ("batch", "dim", "dtype",
                                                                    "inputs", "repeats")})
        save()
        if not any(r["median_ms"] for r in new):
            section["stopped"] = f"T={chunk[0]}: no case ran (memory)"
            break
    section["command"] = " ".join(["attnbench", *section_cmd(variants, sizes)])
    if section.get("stopped", "").endswith("the budget ran out"):
        section["status"] = "timeout"
    run_modes(section, repo, work, sizes, variants, t_end, log, save)


def run_modes(section: dict[str, Any], repo: Path, work: Path, sizes: Sizes,
              variants: list[str], t_end: float, log: Path, save: Any) -> None:
    """The bench's other modes (plan.BENCH_MODES: causal training, decoding), one call each
    with an even share of what is left of the stage, into ``section["modes"][name]``: the rows,
    the settings (``mode``, ``causal``) and the exponents — a baseline for ``attnbench bench
    --baseline gpu-figures.json`` in that mode."""
    modes: dict[str, Any] = section.setdefault("modes", {})
    for i, (name, lengths) in enumerate(sizes.bench_modes.items()):
        share = (t_end - time.monotonic()) / (len(sizes.bench_modes) - i)
        args = [f"attention={','.join(variants)}", f"bench.device={sizes.device}",
                f"bench.seq_lens=[{','.join(map(str, lengths))}]", *sizes.bench_overrides,
                *BENCH_MODES[name]]
        entry = modes[name] = {"command": " ".join(["attnbench", "bench", *args]),
                               "lengths": list(lengths)}
        if share < MIN_CALL_S:
            entry["stopped"] = f"not run: {share:.0f} s of the budget left"
            continue
        call, result = _call(args, share, repo, work, log)
        entry.update(call)
        if result is not None:
            entry.update(
                settings={k: result["settings"][k] for k in ("batch", "dim", "dtype", "inputs",
                                                             "repeats", "mode", "causal")},
                rows=[{k: r.get(k) for k in KEEP} for r in result["rows"]],
                exponents=result["exponents"], state_exponents=result["state_exponents"],
                skipped=result["skipped"])
        save()


def section_cmd(variants: list[str], sizes: Sizes) -> list[str]:
    lengths = ",".join(str(n) for chunk in sizes.bench_chunks for n in chunk)
    return ["bench", f"attention={','.join(variants)}", f"bench.device={sizes.device}",
            f"bench.seq_lens=[{lengths}]", *sizes.bench_overrides]
