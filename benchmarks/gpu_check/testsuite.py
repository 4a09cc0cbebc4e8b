"""Stage `tests`: ``pytest -m gpu`` on the test files that mark tests ``gpu``, every outcome
recorded as it happens (benchmarks/gpu_check/pytest_log.py), so a run stopped at its budget
still counts what it reached."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.gpu_check import proc, runs
from benchmarks.gpu_check.pytest_log import ENV

GPU_MARK = re.compile(r"\bmark\.gpu\b")
MAX_LISTED = 60  # failures listed by name (the rest counted)


def gpu_test_files(repo: Path) -> list[str]:
    """Test files that mark tests gpu (a module's pytestmark or a decorator)."""
    return sorted(
        str(p.relative_to(repo))
        for p in (repo / "tests").rglob("test_*.py")
        if GPU_MARK.search(p.read_text(encoding="utf-8"))
    )


def command(files: list[str], workers: int) -> list[str]:
    return [sys.executable, "-m", "pytest", "-m", "gpu", "-n", str(workers),
            "-p", "benchmarks.gpu_check.pytest_log", "-p", "no:cacheprovider",
            "-q", "--no-header", "-o", "console_output_style=classic", *files]


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per outcome, the failures' one-line reasons, the skips' reasons with counts."""
    tests = [r for r in records if r.get("event") == "test"]
    collected = max((r["n"] for r in records if r.get("event") == "collected"), default=None)
    counts = Counter(r["outcome"] for r in tests)
    bad = [r for r in tests if r["outcome"] in ("failed", "error", "xpassed")]
    bad += [{"test": r["test"], "outcome": "collect error", "reason": r["reason"]}
            for r in records if r.get("event") == "collect_error"]
    reached = len({r["test"] for r in tests})
    return {
        "collected": collected,
        "passed": counts["passed"],
        "failed": counts["failed"],
        "errors": counts["error"] + sum(r["outcome"] == "collect error" for r in bad),
        "skipped": counts["skipped"],
        "xfailed": counts["xfailed"],
        "not_reached": (collected - reached) if collected is not None else None,
        "failures": [{k: r[k] for k in ("test", "outcome", "reason")} for r in bad[:MAX_LISTED]],
        "failures_not_listed": max(0, len(bad) - MAX_LISTED),
        "skip_reasons": dict(Counter(r["reason"] for r in tests
                                     if r["outcome"] == "skipped").most_common(10)),
        "slowest": sorted(({"test": r["test"], "s": r["duration_s"]} for r in tests),
                          key=lambda r: -r["s"])[:5],
    }


def run_stage(section: dict[str, Any], repo: Path, work: Path, workers: int, budget_s: float,
              log: Path) -> None:
    files = gpu_test_files(repo)
    section["files"] = files
    record = work / "tests.jsonl"
    record.unlink(missing_ok=True)
    env = {**runs.env(repo), ENV: str(record)}  # a test that starts `python -m attnbench` finds it
    cmd = command(files, workers)
    done = proc.run(cmd, budget_s, log, cwd=repo, env=env)
    section["command"] = " ".join(["pytest", *cmd[3:]])
    section["rc"], section["timed_out"] = done.rc, done.timed_out
    lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
    section.update(summarise([json.loads(line) for line in lines if line.strip()]))
    if done.timed_out:
        section["status"] = "timeout"
    elif done.rc not in (0, 1):  # 1 = some test failed: the counts say which
        section["status"] = "failed"
        section["error"] = f"pytest exit code {done.rc}: " + done.tail.strip()[-300:]
