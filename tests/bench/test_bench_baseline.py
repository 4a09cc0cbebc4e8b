"""`attnbench bench --baseline FILE.json --threshold X`: the comparison on hand-made JSON with a
planted regression; cases on one side only are listed, not failures; a baseline from another
device, dtype, size or mode is refused in one line before anything is measured; the GPU kit's
gpu-figures.json is read as well as a bench's results.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from attnbench.bench import baseline as base
from attnbench.bench.device import describe
from attnbench.bench.results import Row
from attnbench.errors import ConfigError
from tests.conftest import all_runs

TINY = ["attention=scaled", "bench.seq_lens=[16,32]", "bench.repeats=2", "bench.peak_size=64",
        "bench.threads=1", "bench.memory=false", "bench.naive=false"]
CPU = describe(torch.device("cpu"))


def results_json(path: Path, rows: list[dict[str, Any]], **over: Any) -> Path:
    """A bench's results.json as `write_files` writes it (the keys the comparison reads)."""
    settings = {"batch": 8, "dim": 128, "inputs": "self", "dtype": "float32", "mode": "train",
                "causal": False, **over.pop("settings", {})}
    doc = {"settings": settings, "device": "cpu", "device_name": CPU, "rows": rows, **over}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def row(label: str, n: int, ms: float | None) -> dict[str, Any]:
    return {"label": label, "variant": label.split("_")[0], "kind": "variant", "n": n,
            "median_ms": ms}


def test_planted_regression_and_one_sided_cases(tmp_path: Path) -> None:
    path = results_json(tmp_path / "b.json", [
        row("scaled", 16, 1.0), row("scaled", 32, 2.0), row("linear", 16, 1.0),
        row("linear", 32, None),  # not measured there (e.g. skipped for memory): not a case
    ])
    stored = base.load(path, "train", False)
    here = [Row("scaled", "scaled", "variant", 16, median_ms=1.05),  # +5 %: within 10 %
            Row("scaled", "scaled", "variant", 32, median_ms=2.5),  # +25 %: regressed
            Row("multihead", "multihead", "variant", 16, median_ms=3.0),  # not in the baseline
            Row("linear", "linear", "variant", 32, median_ms=1.0)]  # not measured there
    cmp = base.compare(stored, here, 0.10)
    assert [(c[0], c[1]) for c in cmp.regressed] == [("scaled", 32)]
    assert cmp.regressed[0][4] == pytest.approx(0.25)
    assert sorted(cmp.only_here) == [("linear", 32), ("multihead", 16)]
    assert cmp.only_there == [("linear", 16)]
    assert cmp.verdict() == (f"1 of 2 case(s) more than 10% slower than the baseline {path}: "
                             "scaled T=32 +25.0%")
    assert base.one_sided(cmp) == ["2 case(s) not in the baseline: multihead T=16, linear T=32",
                                   "1 case(s) not in this run: linear T=16"]
    assert base.compare(stored, here, 0.30).regressed == []  # a looser threshold passes


def test_the_gpu_kits_json_is_a_baseline_per_mode(tmp_path: Path) -> None:
    doc = {"schema": 1, "device": {"type": "cuda", "name": "NVIDIA H100 80GB HBM3"},
           "stages": {"bench": {
               "settings": {"batch": 8, "dim": 128, "inputs": "self", "dtype": "float32"},
               "rows": [row("scaled", 128, 0.5)],
               "modes": {"decode": {"settings": {"batch": 8, "dim": 128, "inputs": "self",
                                                 "dtype": "float32", "mode": "decode",
                                                 "causal": True},
                                    "rows": [row("linear", 1024, 0.02)]}}}}}
    path = tmp_path / "gpu-figures.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    train = base.load(path, "train", False)
    assert (train.device, train.device_name, train.times) == (
        "cuda", "NVIDIA H100 80GB HBM3", {("scaled", 128): 0.5})
    assert base.load(path, "decode", True).times == {("linear", 1024): 0.02}
    with pytest.raises(ConfigError) as err:
        base.load(path, "forward", False)
    assert err.value.one_line() == (
        f"--baseline {path}: no rows of bench.mode=forward bench.causal=false (it has: "
        "bench.mode=decode bench.causal=true, bench.mode=train bench.causal=false); compare "
        "runs of one bench.mode and bench.causal")


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3"},
         f"measured on NVIDIA H100 80GB HBM3 (cuda), float32; this run is on {CPU} (cpu), "
         "float32: compare runs of one device and dtype"),
        ({"settings": {"dtype": "bf16"}},
         f"measured on {CPU} (cpu), bf16; this run is on {CPU} (cpu), float32: compare runs of "
         "one device and dtype"),
        ({"settings": {"batch": 4}},
         "measured at other sizes (bench.batch=4 there, 8 here): compare runs of one size"),
    ],
)
def test_another_device_dtype_or_size_is_refused_naming_both(
    cli, runs_dir: Path, tmp_path: Path, over: dict[str, Any], expected: str
) -> None:
    path = results_json(tmp_path / "b.json", [row("scaled", 16, 1.0)], **over)
    result = cli("bench", "--baseline", str(path), "attention=scaled", "bench.device=cpu",
                 f"runs_dir={runs_dir}")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"error: --baseline {path}: {expected}"]
    assert all_runs(runs_dir) == []  # refused before measuring: nothing written


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("{not json", "not a JSON file"),
        ('{"a": 1}', "neither a bench's results.json nor the GPU kit's gpu-figures.json"),
    ],
)
def test_a_bad_baseline_file_is_one_line(cli, runs_dir: Path, tmp_path: Path,
                                         content: str | None, expected: str) -> None:
    path = tmp_path / "b.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = cli("bench", "--baseline", str(path), f"runs_dir={runs_dir}")
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and expected in result.output
    assert all_runs(runs_dir) == []


def test_a_negative_threshold_is_one_line(cli, runs_dir: Path, tmp_path: Path) -> None:
    path = results_json(tmp_path / "b.json", [row("scaled", 16, 1.0)])
    result = cli("bench", "--baseline", str(path), "--threshold", "-0.1", f"runs_dir={runs_dir}")
    assert result.exit_code == 2, result.output
    assert "--threshold -0.1 is out of range: must be >= 0" in result.output


def test_bench_fails_past_the_threshold_and_still_logs_its_run(
    cli, runs_dir: Path, tmp_path: Path
) -> None:
    """A planted baseline: scaled at T=16 took 1 ns there (this run is far slower: regressed),
    at T=32 a whole second (far faster); scaled_bare and a length this run skips are listed."""
    path = results_json(tmp_path / "b.json", [
        row("scaled", 16, 1e-6), row("scaled", 32, 1000.0), row("scaled", 64, 1.0)],
        settings={"batch": 8, "dim": 128})
    result = cli("bench", "--baseline", str(path), "--threshold", "0.10", *TINY,
                 f"runs_dir={runs_dir}")
    assert result.exit_code == 1, result.output
    out = result.output
    assert "REGRESSED" in out and "against the baseline" in out
    assert "case(s) not in the baseline: scaled_bare T=16, scaled_bare T=32" in out
    assert "1 case(s) not in this run: scaled T=64" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"error: 1 of 2 case(s) more than 10% slower than the baseline {path}: "
                           "scaled T=16 +")
    runs = all_runs(runs_dir)  # the measurement itself finished and was logged
    assert len(runs) == 1 and runs[0].status == "FINISHED"
    written = json.loads(next((runs_dir / "bench").glob("*/comparison.json")).read_text())
    assert [(c["label"], c["n"], c["regressed"]) for c in written["cases"]] == [
        ("scaled", 16, True), ("scaled", 32, False)]
    # its own results.json is a baseline for the next run (a folder: the newest under it): no
    # case is 1000x slower than itself
    again = cli("bench", "--baseline", str(runs_dir / "bench"), "--threshold", "1000", *TINY,
                f"runs_dir={runs_dir}")
    assert again.exit_code == 0, again.output
    assert "against the baseline" in again.output and "REGRESSED" not in again.output
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = cli("bench", "--baseline", str(empty), f"runs_dir={runs_dir}")
    assert refused.exit_code == 2
    assert f"--baseline {empty}: a folder with no results.json under it" in refused.output
