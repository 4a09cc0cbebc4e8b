"""The GPU check kit (``python -m benchmarks.gpu_check``) cannot rot: its ``--dry-run`` runs the
same plan on the CPU at toy sizes, as a command, and its figures files must hold every stage's
section with sane values. The default run covers the test and bench stages; the slow run adds
the grid and the sweep (several `attnbench sweep` processes, about 2 min here). The wheel list
for the GPU machines must cover every dependency in pyproject.toml."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "benchmarks" / "gpu-requirements.txt"
STAGES = ("tests", "grid", "sweep", "bench")
DRY_LENGTHS = (16, 32, 64)  # the dry run's bench lengths (benchmarks/gpu_check/plan.py DRY)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))


def kit(out: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", *args, str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )


def figures(out: Path, done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    doc = json.loads((out / "gpu-figures.json").read_text(encoding="utf-8"))
    md = (out / "gpu-figures.md").read_text(encoding="utf-8")
    assert doc["kit"]["mode"] == "dry-run" and doc["kit"]["finished"]
    assert doc["device"]["name"] and doc["device"]["type"] == "cpu"
    assert [s["stage"] for s in doc["plan"]] == list(STAGES)
    assert set(doc["stages"]) == set(STAGES)
    assert md.startswith(f"# attnbench GPU check: {doc['device']['name']}")
    assert "DRY RUN" in md
    assert (out / "gpu-check.log").stat().st_size > 0
    assert not list(out.glob("*.part")) and not list(out.glob("*.tmp"))
    return doc


def check_tests(section: dict[str, Any], md: str) -> None:
    """On a machine without CUDA every gpu test skips itself: none fails, none errors."""
    assert section["status"] == "done"
    assert "tests/training/test_cuda_breadth.py" in section["files"]
    assert section["collected"] >= 100  # 264 when written
    assert section["failed"] == section["errors"] == section["passed"] == 0
    assert section["skipped"] == section["collected"] and section["not_reached"] == 0
    assert all("CUDA" in reason for reason in section["skip_reasons"])
    assert f"skipped {section['skipped']}" in md


def check_bench(section: dict[str, Any], md: str, calls: list[list[int]]) -> None:
    """Every variant in conf/attention at every length; the peers' ratios are the quotients of
    the times the rows hold, at every length."""
    assert section["status"] == "done"
    assert [c["lengths"] for c in section["calls"]] == calls
    ms = {(r["label"], r["n"]): r["median_ms"] for r in section["rows"]}
    for variant in options("attention"):
        assert all(ms[(variant, n)] > 0 for n in DRY_LENGTHS), variant
        assert section["longest_T"][variant] == DRY_LENGTHS[-1]
    for name, (mine, peer) in {"multihead / nn.MultiheadAttention": ("multihead",
                                                                     "multihead_torch"),
                               "scaled / SDPA": ("scaled", "scaled_bare")}.items():
        by_n = section["peers"][name]
        assert sorted(map(int, by_n)) == list(DRY_LENGTHS)
        for n, cell in by_n.items():
            assert cell["variant_ms"] == pytest.approx(ms[(mine, int(n))], rel=1e-3)
            assert cell["peer_ms"] == pytest.approx(ms[(peer, int(n))], rel=1e-3)
            assert cell["ratio"] == pytest.approx(cell["variant_ms"] / cell["peer_ms"], abs=2e-3)
        assert f"**{name}**" in md


def check_decode(section: dict[str, Any], md: str, out: Path) -> None:
    """The decoding call: every variant with a causal form and attention to decode, per-step
    time and state at each prefix length (linear's state flat, scaled's cache growing), read
    back by `attnbench bench --baseline` as a decode baseline."""
    from attnbench.bench.baseline import load

    mode = section["modes"]["decode"]
    assert mode["rc"] == 0 and mode["settings"]["mode"] == "decode", mode
    decoded = set(options("attention")) - {"lowrank", "none"}
    assert {r["label"] for r in mode["rows"]} == decoded
    assert all(r["median_ms"] > 0 and r["state_mb"] > 0 for r in mode["rows"])
    assert mode["state_exponents"]["linear"] == pytest.approx(0.0, abs=1e-9)
    assert mode["state_exponents"]["scaled"] == pytest.approx(1.0)
    assert set(mode["skipped"]) == {"lowrank", "none"}
    assert "decoding: ms per step" in md
    stored = load(out / "gpu-figures.json", "decode", True)
    assert {label for label, _ in stored.times} == decoded


def test_dry_run_tests_and_bench_stages(tmp_path: Path, empty_store: Path) -> None:
    """`--only tests,bench`, one bench call and one decoding call on a ready store (about 45 s
    here, most of it the processes' start-up): the other stages' sections say they were not
    selected."""
    out, work = tmp_path / "out", tmp_path / "work"
    (work / "runs").mkdir(parents=True)
    shutil.copy(empty_store, work / "runs" / "mlflow.db")
    doc = figures(out, kit(out, "--dry-run", "--only", "tests,bench", "--bench-lengths",
                           "16,32,64", "--bench-modes", "decode", "--work", str(work)))
    md = (out / "gpu-figures.md").read_text(encoding="utf-8")
    check_tests(doc["stages"]["tests"], md)
    check_bench(doc["stages"]["bench"], md, [[16, 32, 64]])
    assert list(doc["stages"]["bench"]["modes"]) == ["decode"]
    check_decode(doc["stages"]["bench"], md, out)
    for stage in ("grid", "sweep"):
        assert doc["stages"][stage] == {"status": "skipped", "why": "not selected (--only)"}


@pytest.mark.slow  # the whole plan: four `attnbench sweep` and two `attnbench bench` processes
def test_full_dry_run_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "out"
    doc = figures(out, kit(out, "--dry-run", timeout=900))
    md = (out / "gpu-figures.md").read_text(encoding="utf-8")
    assert all(doc["stages"][s]["status"] == "done" for s in STAGES), doc["stages"]
    check_tests(doc["stages"]["tests"], md)
    check_bench(doc["stages"]["bench"], md, [[16, 32], [64]])
    check_decode(doc["stages"]["bench"], md, out)
    causal = doc["stages"]["bench"]["modes"]["causal"]
    assert causal["settings"]["causal"] is True and causal["skipped"] == {
        "lowrank": "skipped: lowrank has no causal form (its fact `causal` is False)"}
    assert all(r["fwd_ms"] > 0 and r["bwd_ms"] > 0 for r in causal["rows"])

    grid = doc["stages"]["grid"]
    cells = {(c["attention"], c["backbone"], c["precision"]): c["status"] for c in grid["cells"]}
    assert set(cells) == {(v, b, p) for v in ("scaled", "additive") for b in options("backbone")
                          for p in ("32", "bf16")}
    assert set(cells.values()) == {"ok"} and grid["ok"] == grid["total"] == len(cells)

    sweep = doc["stages"]["sweep"]
    for precision in ("32", "bf16"):
        row = sweep["per_precision"][precision]
        assert row["jobs"] == row["finished"] == 5
        assert row["samples_per_s"] > 0 and row["peak_mem_mb"] > 0 and row["train_s"] > 0
    assert set(sweep["per_variant"]) == {"none", "dot", "scaled", "additive", "multihead"}
    assert sweep["deterministic"]["pairs"] == sweep["deterministic"]["identical"] == 10
    assert "**10 of 10** repeated runs identical" in md


def test_without_cuda_the_kit_says_so_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = kit(out, "--only", "bench")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: no CUDA device here: run with --dry-run on a machine without one"]
    doc = json.loads((out / "gpu-figures.json").read_text(encoding="utf-8"))
    assert doc["device"]["available"] is False
    assert {s["status"] for s in doc["stages"].values()} == {"skipped"}


def test_an_unknown_stage_is_refused_naming_the_stages(tmp_path: Path) -> None:
    done = kit(tmp_path / "out", "--dry-run", "--only", "tests,gpu")
    assert done.returncode == 2
    assert "unknown stage gpu; choose from tests, grid, sweep, bench" in done.stderr
    assert not (tmp_path / "out").exists()
    done = kit(tmp_path / "out", "--dry-run", "--bench-lengths", "16,x")
    assert done.returncode == 2 and "--bench-lengths '16,x': lengths separated by" in done.stderr
    done = kit(tmp_path / "out", "--dry-run", "--bench-modes", "decode,prefill")
    assert done.returncode == 2 and "--bench-modes 'decode,prefill': choose from causal, decode" \
        in done.stderr


def test_gpu_requirements_cover_every_dependency() -> None:
    """Each of attnbench's dependencies is either pinned (name==version) in the wheel list or
    named on one of its `# image:` lines (the GPU image holds it)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    def canon(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    pins, image = {}, set()
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("# image:"):
            image.update(canon(n) for n in line.removeprefix("# image:").split())
        elif spec := line.split("#", 1)[0].strip():
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+!-]+", spec), spec
            name, version = spec.split("==")
            pins[canon(name)] = version
    assert "torch" in image and "hydra-core" in pins and "mlflow" in pins
    assert not set(pins) & image
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    for dep in project["project"]["dependencies"]:
        name = canon(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0])
        assert name in pins or name in image, f"{name}: neither pinned nor on the image"
