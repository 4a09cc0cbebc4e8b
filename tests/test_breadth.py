"""Every compatible (backbone, attention, task) triple found in conf/ trains a few steps and logs.

The triples come from globbing conf/, so a new YAML is covered without editing this file. The
default run trains a covering subset (every backbone with every variant, and every backbone with
every task it can run); the slow stage trains all of them.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CONF

SIZES = {"n_train": 48, "n_val": 16, "n_test": 16}


def _yaml(group: str, name: str) -> dict[str, Any]:
    return yaml.safe_load((CONF / group / f"{name}.yaml").read_text())


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _triples() -> list[tuple[str, str, str]]:
    from attnbench.attention import ATTENTION
    from attnbench.backbones import BACKBONES
    from attnbench.tasks import TASKS

    out = []
    for backbone, attention, task in itertools.product(
        _options("backbone"), _options("attention"), _options("task")
    ):
        kind = TASKS.get(_yaml("task", task)["name"]).kind
        node = _yaml("backbone", backbone)
        cls = BACKBONES.get(node.pop("name"))
        refused = cls.incompatible(ATTENTION.get(_yaml("attention", attention)["name"]), node)
        if kind in cls.kinds and refused is None:  # e.g. lm refuses lowrank (no causal form)
            out.append((backbone, attention, task))
    return out


def _covering(triples: list[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Triples that together pair every backbone with every variant and with every task it can
    run: variant i of a backbone trains on its i-th compatible task (mod their number)."""
    tasks: dict[str, set[str]] = {}
    variants: dict[str, set[str]] = {}
    for backbone, attention, task in triples:
        tasks.setdefault(backbone, set()).add(task)
        variants.setdefault(backbone, set()).add(attention)
    chosen = set()
    for backbone, names in variants.items():
        options = sorted(tasks[backbone])
        for i, attention in enumerate(sorted(names)):
            chosen.add((backbone, attention, options[i % len(options)]))
    return chosen


def _params() -> list:
    triples = _triples()
    quick = _covering(triples)
    return [t if t in quick else pytest.param(*t, marks=pytest.mark.slow) for t in triples]


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    text = root / "reviews.csv"
    rows = ["text,label"] + [
        f"{'a fine film' if i % 2 else 'a dull plot'} number {i},{'pos' if i % 2 else 'neg'}"
        for i in range(60)
    ]
    text.write_text("\n".join(rows) + "\n", encoding="utf-8")
    pairs = root / "pairs.tsv"
    words = ["one", "two", "three", "four", "five"]
    lines = [
        f"{words[i % 5]} {words[(i + 1) % 5]}\t{words[(i + 1) % 5]} {words[i % 5]}\tCC-BY 2.0 #{i}"
        for i in range(60)
    ]
    pairs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"text": text, "translation": pairs}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> Path:
    import shutil

    runs = tmp_path_factory.mktemp("breadth") / "runs"
    runs.mkdir()
    shutil.copy(empty_store, runs / "mlflow.db")
    return runs


def test_grid_covers_every_backbone_and_variant() -> None:
    triples = _triples()
    assert {b for b, _, _ in triples} == set(_options("backbone"))
    assert {a for _, a, _ in triples} == set(_options("attention"))
    assert {t for _, _, t in triples} == set(_options("task"))


@pytest.mark.parametrize(("backbone", "attention", "task"), _params())
def test_triple_trains_and_logs(
    backbone: str, attention: str, task: str, store: Path, data_files: dict[str, Path]
) -> None:
    from attnbench.config.validate import validate
    from attnbench.run.experiment import run_experiment
    from attnbench.store.tracker import Tracker

    task_cfg = _yaml("task", task)
    for key, value in SIZES.items():
        if key in task_cfg:
            task_cfg[key] = value
    if task_cfg["name"] in data_files:
        task_cfg["path"] = str(data_files[task_cfg["name"]])
    cfg = {
        "attention": _yaml("attention", attention),
        "backbone": _yaml("backbone", backbone),
        "task": task_cfg,
        "trainer": yaml.safe_load((CONF / "trainer" / "default.yaml").read_text())
        | yaml.safe_load((CONF / "trainer" / "smoke.yaml").read_text()),
        "tracking": {"uri": None},
        "seed": 0,
        "experiment_name": "breadth",
        "runs_dir": str(store),
        "resume": False,
    }
    cfg["trainer"].pop("defaults", None)
    result = run_experiment(validate(cfg))
    assert result.status == "FINISHED"
    run = Tracker(None, store).get_run(result.run_id)
    assert run.status == "FINISHED"
    assert math.isfinite(run.metrics["train/loss"])
    primary = run.tags["attnbench.primary_metric"]
    for split in ("val", "test"):
        assert 0.0 <= run.metrics[f"{split}/{primary}"] <= (100.0 if primary == "bleu" else 1.0)
    assert run.metrics["cost/params"] > 0
