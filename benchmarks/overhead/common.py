"""What every overhead measurement shares: the figures and the report they go into, the log line,
launching ``attnbench`` and reading back its runs, a ready MLflow store and Hydra composition."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attnbench  # noqa: F401 - sets OMP_WAIT_POLICY before torch loads, as the CLI does


@dataclass
class Figure:
    section: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        fig = Figure(*args, **kwargs)
        self.figures.append(fig)
        return fig


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def log(msg: str) -> None:
    print(
        f"[overhead {time.strftime('%H:%M:%S')} load {loadavg():.1f}] {msg}",
        file=sys.stderr,
        flush=True,
    )


def exe() -> str:
    return str(Path(sys.executable).parent / "attnbench")


def template_store(root: Path) -> Path:
    """A created and migrated MLflow store, copied into every runs_dir (creation costs seconds)."""
    from attnbench.store.tracker import Tracker

    Tracker(None, root).connect()
    return root / "mlflow.db"


def runs_dir_from(template: Path, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, path / "mlflow.db")
    return path


def compose(overrides: Sequence[str]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from attnbench.config.compose import hydra_compose

    with hydra_compose() as compose_cfg:
        cfg = OmegaConf.to_container(compose_cfg("config", overrides=list(overrides)), resolve=True)
    return cfg  # type: ignore[return-value]


def run_cli(args: Sequence[str], cwd: Path, timeout: float = 3600) -> tuple[float, float]:
    """Launch `attnbench ARGS`; returns (epoch seconds at launch, wall seconds)."""
    start_epoch = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run([exe(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"attnbench {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return start_epoch, wall


def runs_of(runs_dir: Path, experiment: str) -> list[Any]:
    from attnbench.store.tracker import Tracker

    tracker = Tracker(None, runs_dir)
    exp = tracker.find_experiment(experiment)
    return [] if exp is None else tracker.search([exp])


def loss_timestamps(runs_dir: Path, run_id: str) -> dict[int, float]:
    """step -> epoch seconds at which the training loop logged train/loss for that step."""
    from attnbench.store.tracker import Tracker

    history = Tracker(None, runs_dir).client.get_metric_history(run_id, "train/loss")
    return {m.step: m.timestamp / 1000.0 for m in history}
