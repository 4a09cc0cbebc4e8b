"""Each fact once: the trainer's code defaults are the defaults of conf/trainer/default.yaml, and
every preset trainer sets only keys the typed config has."""

from __future__ import annotations

from dataclasses import fields

import pytest
import yaml

from attnbench.training.config import TrainerConfig
from tests.conftest import CONF

TRAINERS = sorted((CONF / "trainer").glob("*.yaml"))


def test_code_defaults_equal_the_default_yaml() -> None:
    node = yaml.safe_load((CONF / "trainer" / "default.yaml").read_text(encoding="utf-8"))
    defaults = {f.name: f.default for f in fields(TrainerConfig)}
    assert node == defaults
    assert TrainerConfig(**node) == TrainerConfig()


@pytest.mark.parametrize("path", TRAINERS, ids=lambda p: p.stem)
def test_every_trainer_yaml_sets_known_keys(path) -> None:  # noqa: ANN001
    node = yaml.safe_load(path.read_text(encoding="utf-8"))
    node.pop("defaults", None)
    known = {f.name for f in fields(TrainerConfig)}
    assert set(node) <= known, sorted(set(node) - known)
    assert TrainerConfig(**node).problems() == []
