"""Adding a component the documented way: the three recipes of docs/architecture.md (an 11th
attention variant, a new backbone, a task that reads a file) are written, exactly as the page
gives them, into a copy of the source tree — two files each, nothing else edited — and the
conformance suites, a smoke `run` and a `bench` pass on them."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DOC = REPO / "docs" / "architecture.md"
# ```python file=attnbench/attention/tempered.py ... ```: the files a recipe adds, in full.
FILE_BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```$", re.S | re.M)
SUITES = [
    "tests/attention/test_conformance.py",
    "tests/attention/test_autocast.py",
    "tests/backbones/test_backbone_conformance.py",
    "tests/backbones/test_backbone_configs.py",
    "tests/tasks/test_task_configs.py",
    "tests/bench/test_bench_kernels.py",
]


def documented_files() -> dict[str, str]:
    return dict(FILE_BLOCK.findall(DOC.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the source tree (package, conf, tests) with the documented files added."""
    root = tmp_path_factory.mktemp("tree")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "runs", "outputs")
    for name in ("attnbench", "conf", "tests"):
        shutil.copytree(REPO / name, root / name, ignore=skip)
    shutil.copy(REPO / "pyproject.toml", root)
    for path, text in documented_files().items():
        target = root / path
        assert not target.exists(), f"{path} would replace a file of the tree"
        target.write_text(text, encoding="utf-8")
    data = root / "train.csv"
    data.write_text("text,label\n" + "".join(
        f"{'good' if i % 2 else 'bad'} text {i},{'pos' if i % 2 else 'neg'}\n" for i in range(80)),
        encoding="utf-8")
    return root


def in_tree(tree: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_each_recipe_is_two_files() -> None:
    assert sorted(documented_files()) == [
        "attnbench/attention/tempered.py",
        "attnbench/backbones/poolmix.py",
        "attnbench/tasks/chars.py",
        "conf/attention/tempered.yaml",
        "conf/backbone/poolmix.yaml",
        "conf/task/chars.yaml",
    ]


def test_the_conformance_suites_pass_on_the_new_components(tree: Path) -> None:
    proc = in_tree(tree, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider", *SUITES,
                   "-k", "tempered or poolmix or chars")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", proc.stdout).group(1))
    assert passed > 100 and " failed" not in proc.stdout, proc.stdout[-1000:]


# `attnbench run` then `attnbench bench`, in one interpreter (one import of torch and MLflow).
_RUN_AND_BENCH = """
import sys
from typer.testing import CliRunner
from attnbench.cli import app
runs, data = sys.argv[1:]
for args in (
    ["run", "attention=tempered", "backbone=poolmix", "task=chars", f"task.path={data}",
     "trainer=smoke", f"runs_dir={runs}"],
    ["bench", "attention=tempered", "bench.seq_lens=[16]", "bench.repeats=2",
     "bench.memory=false", "bench.peak_size=64", f"runs_dir={runs}"],
):
    result = CliRunner().invoke(app, args)
    print(args[0], "exit", result.exit_code, result.output[-3000:], flush=True)
"""


def test_a_smoke_run_and_a_bench_use_them(tree: Path) -> None:
    runs = tree / "runs"
    proc = in_tree(tree, "-c", _RUN_AND_BENCH, str(runs), str(tree / "train.csv"))
    assert "run exit 0" in proc.stdout and "bench exit 0" in proc.stdout, (
        proc.stdout[-4000:] + proc.stderr[-3000:])
    with sqlite3.connect(runs / "mlflow.db") as db:
        statuses = db.execute("SELECT name, status FROM runs ORDER BY start_time").fetchall()
    assert statuses[0] == ("tempered-poolmix-chars-s0", "FINISHED"), statuses
    assert statuses[1][1] == "FINISHED" and len(statuses) == 2, statuses  # the bench's run
    table = next(runs.glob("bench/*/table.txt")).read_text(encoding="utf-8")
    assert re.search(r"│ tempered +│", table) and re.search(r"│ tempered_naive +│", table), table
