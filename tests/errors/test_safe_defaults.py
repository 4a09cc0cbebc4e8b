"""Safe defaults: configs cannot import code, checkpoints load as weights only, names that become
paths stay inside runs_dir. (`attnbench ui` binding 127.0.0.1 and warning on 0.0.0.0 is tested
in tests/test_ui_cli.py.)"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, all_runs

CANARY = "tests.errors.canary_module"  # importing it would show up in sys.modules


@pytest.mark.parametrize(
    "override",
    [
        f"attention={CANARY}",
        f"attention.name={CANARY}.Boom",
        f"+attention._target_={CANARY}.Boom",
        f"backbone.name={CANARY}.Boom",
        f"+task._target_={CANARY}.Boom",
        f"+hydra.callbacks.evil._target_={CANARY}.Boom",
        f"+hydra.callbacks.evil={{_target_:{CANARY}.Boom}}",
    ],
)
def test_a_config_cannot_import_anything(cli, runs_dir: Path, override: str) -> None:
    sys.modules.pop(CANARY, None)
    result = cli("run", override)
    assert result.exit_code == 2, result.output
    assert CANARY not in sys.modules
    assert all_runs(runs_dir) == []


def test_a_yaml_with_target_is_refused_by_validation() -> None:
    """A config file (e.g. from --config-dir) that adds _target_ to a component group."""
    from attnbench.config.validate import static_problems

    cfg = {"attention": {"name": "scaled", "dropout": 0.0, "_target_": "os.system"},
           "backbone": {"name": "transformer"}, "task": {"name": "copy"},
           "trainer": {}, "tracking": {"uri": None}, "seed": 0, "runs_dir": "runs"}
    found = static_problems(cfg)
    assert any("attention._target_" in p for p in found["attention"]), found


def test_registries_resolve_names_not_import_paths() -> None:
    from attnbench.attention import ATTENTION
    from attnbench.backbones import BACKBONES
    from attnbench.errors import ConfigError
    from attnbench.tasks import TASKS

    for registry in (ATTENTION, BACKBONES, TASKS):
        for name in ("os.system", "builtins.eval", f"{CANARY}.Boom", "subprocess:Popen"):
            with pytest.raises(ConfigError, match="Valid options"):
                registry.get(name)
    assert CANARY not in sys.modules


# -- checkpoints --------------------------------------------------------------------------------
class _Payload:
    """Pickling this records a call to print: a weights-only load must refuse it."""

    def __reduce__(self):  # noqa: ANN204
        return (print, ("arbitrary code ran",))


def test_checkpoints_load_weights_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from attnbench.errors import AttnbenchError
    from attnbench.training.checkpoint import load_checkpoint, save_checkpoint

    good = save_checkpoint({"w": torch.ones(2, 3)}, tmp_path / "good.pt")
    assert torch.equal(load_checkpoint(good)["w"], torch.ones(2, 3))
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "payload": _Payload()}, evil)
    with pytest.raises(AttnbenchError, match="not a plain weights checkpoint"):
        load_checkpoint(evil)
    assert "arbitrary code ran" not in capsys.readouterr().out
    with pytest.raises(AttnbenchError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_every_torch_load_is_weights_only() -> None:
    """Checkpoints are read through attnbench.training.checkpoint (weights_only=True)."""
    offenders = []
    for path in (REPO / "attnbench").rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\btorch\.load\(", line) and "weights_only=True" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "use attnbench.training.checkpoint.load_checkpoint:\n" + "\n".join(
        offenders
    )


# -- names that become paths --------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["../../etc", "/etc/passwd", "a/../../b", "..", ".", "~", "", "..\\..\\win", "ok name",
     "x" * 500, "sweep\x00null", "-rf", ".hidden"],
)
def test_safe_name_is_one_harmless_path_component(name: str, tmp_path: Path) -> None:
    from attnbench.naming import inside, safe_name

    cleaned = safe_name(name)
    assert cleaned and len(cleaned) <= 120
    assert "/" not in cleaned and "\\" not in cleaned and ".." not in cleaned
    assert not cleaned.startswith((".", "-", "~"))
    root = tmp_path / "runs"
    path = inside(root, "reports", name)
    assert path.parent == (root / "reports").resolve()


def test_experiment_name_cannot_put_artifacts_outside_runs_dir(cli, runs_dir: Path,
                                                               tmp_path: Path) -> None:
    result = cli("run", "experiment_name=../../escaped")
    assert result.exit_code == 0, result.output
    (run,) = all_runs(runs_dir)
    from tests.conftest import tracker_for

    tracker = tracker_for(runs_dir)
    exp = tracker.client.get_experiment(run.experiment_id)
    assert exp.name == "../../escaped"  # the MLflow name is kept as typed ...
    location = Path(exp.artifact_location.removeprefix("file://"))
    assert location.resolve().is_relative_to((runs_dir / "artifacts").resolve())  # ... not the path
    assert not any(p.name == "escaped" for p in tmp_path.parent.iterdir())
    assert not (tmp_path / "escaped").exists()


def test_the_canary_is_importable_so_the_checks_above_mean_something() -> None:
    import importlib

    sys.modules.pop(CANARY, None)
    assert importlib.import_module(CANARY).IMPORTED
    sys.modules.pop(CANARY, None)
