"""Every experiment preset in conf/experiment/ runs its grid with the smoke trainer, so presets
cannot rot. Seeds are fixed to 0 and jobs run in-process (basic launcher) to keep this quick."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONF, all_runs, write_reviews

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# Presets with their own sweeper plugin are exercised by tests/launchers.
GRID_PRESETS = [
    p
    for p in PRESETS
    if "override /hydra/sweeper" not in (CONF / "experiment" / f"{p}.yaml").read_text()
]


def grid(preset: str) -> dict[str, list[str]]:
    params = yaml.safe_load((CONF / "experiment" / f"{preset}.yaml").read_text())["hydra"][
        "sweeper"
    ]["params"]
    return {k: str(v).split(",") for k, v in params.items()}


def test_classic_presets_exist() -> None:
    for name in (
        "bahdanau_length",
        "vaswani_scaling",
        "heads_ablation",
        "recall_capacity",
        "text_pooling",
        "recall_gap",
        "efficiency_frontier",
    ):
        assert name in GRID_PRESETS
        assert len(grid(name)["seed"]) >= 3, f"{name} must average over at least 3 seeds"


def test_recall_gap_contrasts_softmax_with_subquadratic_mixers() -> None:
    params = grid("recall_gap")
    assert {"scaled", "multihead"} <= set(params["attention"])
    assert {"linear", "lowrank", "local", "none"} <= set(params["attention"])
    assert len(params["task.num_pairs"]) >= 3, "the gap opens as the pairs grow"


def test_efficiency_frontier_covers_every_variant() -> None:
    """A variant added to conf/attention/ must join the frontier, not be silently left out."""
    variants = {p.stem for p in (CONF / "attention").glob("*.yaml")}
    assert set(grid("efficiency_frontier")["attention"]) == variants
    assert len(grid("efficiency_frontier")["task.max_len"]) >= 2


def test_suite_runs_every_variant_on_four_tasks_and_one_backbone() -> None:
    """`compare --across task` reads it: ten variants, the three LRA-like tasks and one more,
    three seeds, one backbone that runs every task, one experiment."""
    params = grid("suite")
    variants = {p.stem for p in (CONF / "attention").glob("*.yaml")}
    assert set(params["attention"]) == variants and len(variants) == 10
    assert {"assoc_recall", "listops", "reverse"} < set(params["task"])
    assert len(params["task"]) == 4 and len(params["seed"]) == 3
    preset = yaml.safe_load((CONF / "experiment" / "suite.yaml").read_text())
    assert "backbone" not in params and preset["experiment_name"] == "suite"


# The default run keeps the cheapest grid; every preset's grid runs in the slow stage.
QUICK_PRESETS = {"heads_ablation", "text_pooling"}


@pytest.mark.parametrize(
    "preset",
    [p if p in QUICK_PRESETS else pytest.param(p, marks=pytest.mark.slow) for p in GRID_PRESETS],
)
def test_preset_runs_its_grid(preset: str, cli, runs_dir: Path, tmp_path: Path) -> None:
    extra = ["seed=0", "hydra/launcher=basic"]
    if "task.path" in (CONF / "experiment" / f"{preset}.yaml").read_text():
        extra.append(f"task.path={write_reviews(tmp_path / 'reviews.csv', n=200)}")
    result = cli("sweep", f"experiment={preset}", extra=extra)
    assert result.exit_code == 0, result.output
    cells = math.prod(len(v) for k, v in grid(preset).items() if k != "seed")
    runs = [r for r in all_runs(runs_dir) if r.tags.get("attnbench.kind") != "sweep"]
    assert len(runs) == cells
    assert all(r.status == "FINISHED" for r in runs)
    assert len({r.name for r in runs}) == cells, "every cell needs its own run name"
    assert {r.tags["attnbench.version"] for r in runs}
    exp = {r.experiment_id for r in runs}
    assert len(exp) == 1
