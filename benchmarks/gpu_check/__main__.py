"""`python -m benchmarks.gpu_check`: see the package docstring."""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.gpu_check import benchstage, env, grid, sweeps, testsuite, wheels
from benchmarks.gpu_check.plan import BENCH_MODES, DRY, GPU, STAGES, Sizes, describe
from benchmarks.gpu_check.report import Report

REPO = Path(__file__).resolve().parents[2]
MIN_STAGE_S = 10  # a stage with less time left than this is skipped


def parse(argv: list[str]) -> argparse.Namespace:
    import benchmarks.gpu_check as kit

    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=kit.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir", nargs="?", type=Path, help="where gpu-figures.json/.md go")
    p.add_argument("--dry-run", action="store_true",
                   help="the same plan on the CPU at toy sizes (no GPU figures)")
    p.add_argument("--only", default=",".join(STAGES),
                   help=f"stages to run, comma-separated (default: {','.join(STAGES)})")
    p.add_argument("--budget", type=float, help="seconds for the whole kit (default 470 on a GPU, "
                   "600 in a dry run); each stage keeps its own budget within it")
    p.add_argument("--grid-variants", help="variants the grid trains: a,b,... or all")
    p.add_argument("--bench-lengths", metavar="T,T/T/...",
                   help="the lengths of each `attnbench bench` call, calls separated by '/' "
                        "(default on a GPU: 128,256,512,1024,2048/4096,8192/16384/32768/65536/"
                        "131072)")
    p.add_argument("--bench-modes", metavar="MODE,...",
                   help=f"the bench's other modes, after its forward+backward calls: "
                        f"{','.join(BENCH_MODES)} (default) or none")
    p.add_argument("--pytest-workers", type=int,
                   help="pytest-xdist workers of the tests stage (default 6 on a GPU, 0 dry)")
    p.add_argument("--work", type=Path, help="folder for the store and run outputs "
                   "(default: a temporary folder, removed at the end)")
    p.add_argument("--fetch-wheels", type=Path, metavar="DIR",
                   help="download the wheels of benchmarks/gpu-requirements.txt into DIR")
    p.add_argument("--python-version", default=wheels.PYTHON,
                   help="with --fetch-wheels: the Python the wheels are for")
    p.add_argument("--requirements", action="store_true",
                   help="print gpu-requirements.txt's pins recomputed from this venv")
    ns = p.parse_args(argv)
    if ns.bench_lengths and not re.fullmatch(r"\d+(,\d+)*(/\d+(,\d+)*)*", ns.bench_lengths):
        p.error(f"--bench-lengths {ns.bench_lengths!r}: lengths separated by ',' within a call "
                "and '/' between calls, e.g. 128,256/512")
    modes = [] if ns.bench_modes in (None, "none") else ns.bench_modes.split(",")
    if sorted(set(modes) - set(BENCH_MODES)):
        p.error(f"--bench-modes {ns.bench_modes!r}: choose from {', '.join(BENCH_MODES)}, "
                "comma-separated, or none")
    bad = sorted(set(ns.only.split(",")) - set(STAGES))
    if bad:
        p.error(f"--only: unknown stage {', '.join(bad)}; choose from {', '.join(STAGES)}")
    if ns.outdir is None and not (ns.fetch_wheels or ns.requirements):
        p.error("OUTDIR is required (or --fetch-wheels DIR, --requirements)")
    return ns


def sizes_for(ns: argparse.Namespace) -> Sizes:
    sizes = DRY if ns.dry_run else GPU
    if ns.budget:
        sizes = dataclasses.replace(sizes, total_budget_s=ns.budget)
    if ns.grid_variants:
        chosen = None if ns.grid_variants == "all" else tuple(ns.grid_variants.split(","))
        sizes = dataclasses.replace(sizes, grid_variants=chosen)
    if ns.pytest_workers is not None:
        sizes = dataclasses.replace(sizes, pytest_workers=ns.pytest_workers)
    if ns.bench_lengths:
        chunks = tuple(tuple(int(n) for n in c.split(",")) for c in ns.bench_lengths.split("/"))
        sizes = dataclasses.replace(sizes, bench_chunks=chunks)
    if ns.bench_modes:
        chosen = [] if ns.bench_modes == "none" else ns.bench_modes.split(",")
        sizes = dataclasses.replace(sizes, bench_modes={m: sizes.bench_modes[m] for m in chosen})
    return sizes


def run_stage(stage: str, ns: argparse.Namespace, sizes: Sizes, report: Report, work: Path,
              deadline: float, variants: list[str], backbones: list[str], bf16: bool) -> None:
    """One stage within what is left of the kit's budget, or its section says why not."""
    left = deadline - time.monotonic()
    budget = min(sizes.budgets[stage], left)
    if stage not in ns.only.split(","):
        report.skip(stage, "not selected (--only)")
        return
    if budget < MIN_STAGE_S:
        report.skip(stage, f"{left:.0f} s of the kit's budget left")
        return
    with report.stage(stage, budget) as section:
        if stage == "tests":
            testsuite.run_stage(section, REPO, work, sizes.pytest_workers, budget, report.log)
        elif stage == "grid":
            grid.run_stage(section, REPO, work, sizes, variants, backbones, bf16, budget,
                           report.log)
        elif stage == "sweep":
            sweeps.run_stage(section, REPO, work, sizes, bf16, budget, report.log, report.save)
        else:
            benchstage.run_stage(section, REPO, work, sizes, variants, budget, report.log,
                                 report.save)


def run_kit(ns: argparse.Namespace, work: Path) -> int:
    from attnbench.config.groups import group_options

    sizes = sizes_for(ns)
    report = Report(ns.outdir, {
        "mode": "dry-run" if ns.dry_run else "gpu",
        "command": shlex.join(["python", "-m", "benchmarks.gpu_check", *sys.argv[1:]]),
        "budget_s": sizes.total_budget_s,
    })
    deadline = time.monotonic() + sizes.total_budget_s
    report.doc["device"] = dev = env.device(sizes.device)
    report.doc["packages"] = env.packages(REPO)
    variants, backbones = group_options("attention"), group_options("backbone")
    report.doc["plan"] = describe(sizes, variants, backbones)
    report.note(f"gpu_check on {dev['name']} ({'dry run, CPU' if ns.dry_run else 'CUDA'}), "
                f"torch {dev['torch']}, budget {sizes.total_budget_s:.0f} s")
    for step in report.doc["plan"]:
        report.note(f"  {step['stage']:<6} {step['budget_s']:>4} s  {step['what']}")
    report.save()
    if not dev["available"]:
        for stage in STAGES:
            report.skip(stage, "no CUDA device (use --dry-run on a machine without one)")
        report.finish()
        print("error: no CUDA device here: run with --dry-run on a machine without one",
              file=sys.stderr)
        return 2
    bf16 = bool(dev.get("bf16_native")) or ns.dry_run
    selected = ns.only.split(",")
    try:
        for stage in STAGES:
            run_stage(stage, ns, sizes, report, work, deadline, variants, backbones, bf16)
    except BaseException as exc:
        report.finish(stopped=f"interrupted ({type(exc).__name__})")
        raise
    report.finish()
    report.note(f"figures: {ns.outdir / 'gpu-figures.json'} and gpu-figures.md")
    statuses = [report.doc["stages"][s]["status"] for s in selected]
    return 0 if all(s == "done" for s in statuses) else 1


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ns = parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _stop)  # stop the running command, keep the figures
    if ns.requirements:
        for name, version in wheels.closure(REPO).items():
            print(f"{name}=={version}")
        return 0
    if ns.fetch_wheels:
        return wheels.fetch(REPO, ns.fetch_wheels, ns.python_version)
    if ns.work:
        ns.work.mkdir(parents=True, exist_ok=True)
        return run_kit(ns, ns.work.resolve())
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        return run_kit(ns, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
