"""One pass per job (issue 25): one `attnbench run` validates its config, loads the task's data
and builds its model once each. The pre-flight hands the job what it validated and loaded when
Hydra runs the job in the same process; a launcher's worker process gets none of it and does
the pass itself, once.

Counted by wrapping, wherever they are bound: validation (`validate`, `validate_and_load`), the
task's `load`, `build_model`, and every backbone constructed, on the meta device (shapes only:
the size check, which also finds what a constructor refuses) or for real.
"""

from __future__ import annotations

import functools
import pickle
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import all_runs, write_reviews


def _wrap_bound(monkeypatch: pytest.MonkeyPatch, module: str, name: str, counts: Counter,
                key: str) -> None:
    """Count calls of `module.name` in every attnbench module that imported it by name."""
    original = getattr(sys.modules[module], name)

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[key] += 1
        return original(*args, **kwargs)

    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("attnbench") and \
                getattr(mod, name, None) is original:
            monkeypatch.setattr(mod, name, counted)


def count_one_pass(monkeypatch: pytest.MonkeyPatch, task: str) -> Counter:
    """Counters of validation, `task`'s data loading, model building and backbone
    constructions (meta / real) from now on."""
    import attnbench.config.build
    import attnbench.config.validate
    import attnbench.run.app
    import attnbench.run.preflight  # noqa: F401 - imported before its names are wrapped
    from attnbench.backbones import BACKBONES
    from attnbench.tasks import TASKS

    counts: Counter = Counter()
    _wrap_bound(monkeypatch, "attnbench.config.validate", "validate", counts, "validate")
    _wrap_bound(monkeypatch, "attnbench.config.validate", "validate_and_load", counts, "validate")
    _wrap_bound(monkeypatch, "attnbench.config.build", "build_model", counts, "build_model")
    cls = TASKS.get(task)
    load = cls.load

    def counted_load(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["load"] += 1
        return load(self, *args, **kwargs)

    monkeypatch.setattr(cls, "load", counted_load)
    for name in BACKBONES.names():
        backbone = BACKBONES.get(name)
        monkeypatch.setattr(backbone, "__init__", _counted_init(backbone.__init__, counts))
    return counts


def _counted_init(init: Callable[..., None], counts: Counter) -> Callable[..., None]:
    @functools.wraps(init)  # (validation reads the constructor's signature)
    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        first = next(self.parameters())
        counts["meta model" if first.is_meta else "model"] += 1

    return counted


ONCE = {"validate": 1, "load": 1, "build_model": 1, "model": 1, "meta model": 1}


@pytest.mark.parametrize("task", ["assoc_recall", "text"])
def test_one_run_validates_loads_and_builds_once(
    cli: Callable[..., Any], runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    task: str,
) -> None:
    """A synthetic task is sized from its settings before it is drawn, a file task once it is
    read: either way one meta-device model, then the one real model."""
    extra = [f"task.path={write_reviews(tmp_path / 'reviews.csv')}"] if task == "text" else []
    counts = count_one_pass(monkeypatch, task)
    result = cli("run", f"task={task}", *extra)
    assert result.exit_code == 0, result.output
    assert counts == ONCE
    (run,) = all_runs(runs_dir)
    assert run.status == "FINISHED"


def test_match_params_is_chosen_once_by_the_pre_flight(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The width `match_params` picks is counted on the meta device once (the reference's
    count and the run's own), the job builds at that width without counting again."""
    counts = count_one_pass(monkeypatch, "assoc_recall")
    result = cli("run", "attention=multihead", "match_params=scaled")
    assert result.exit_code == 0, result.output
    assert "match_params=scaled: backbone.d_model" in result.output
    assert counts == {**ONCE, "meta model": 3}  # scaled's count, multihead's, the size check


def test_a_job_without_the_hand_over_does_its_pass_itself(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a launcher's worker process does (the hand-over arrives empty there): the job
    validates, loads and builds once itself."""
    from attnbench.run import launch
    from attnbench.run.preflight import Prepared

    monkeypatch.setattr(Prepared, "take", lambda self, plain: None)
    counts = count_one_pass(monkeypatch, "assoc_recall")
    check = launch.check_overrides

    def then_count_the_job(*args: Any, **kwargs: Any) -> Any:
        checked = check(*args, **kwargs)
        counts.clear()
        return checked

    monkeypatch.setattr(launch, "check_overrides", then_count_the_job)
    result = cli("run")
    assert result.exit_code == 0, result.output
    assert counts == ONCE


def test_the_hand_over_stays_in_its_process() -> None:
    """Pickled (as launchers send the task function to their workers), it arrives empty: no
    job's data crosses with it."""
    from attnbench.config.validate import Checked
    from attnbench.run.preflight import Prepared

    prepared = Prepared()
    plain = {"seed": 0, "task": {"name": "copy"}, "hydra": {"run": {"dir": "x"}}}
    prepared.add(plain, Checked(cfg=object(), loaded=None))  # type: ignore[arg-type]
    assert len(pickle.loads(pickle.dumps(prepared))) == 0
    assert prepared.take({"task": {"name": "copy"}, "seed": 0}) is not None  # hydra node aside
    assert prepared.take(plain) is None  # taken once
