"""Every backbone's YAML against its constructor, for all of conf/backbone/ at once."""

from __future__ import annotations

import pytest
import yaml

from attnbench.backbones import BACKBONES
from attnbench.backbones.base import CONTEXT_ARGS
from attnbench.registry import check_params, params_of
from tests.backbones.helpers import VARIANTS
from tests.conftest import CONF

BACKBONE_YAMLS = sorted((CONF / "backbone").glob("*.yaml"))


def test_attention_and_backbone_configs_found() -> None:
    assert VARIANTS, f"no attention configs under {CONF / 'attention'}"
    assert {p.stem for p in BACKBONE_YAMLS} >= {"rnn", "seq2seq", "transformer"}


@pytest.mark.parametrize("path", BACKBONE_YAMLS, ids=lambda p: p.stem)
def test_yaml_lists_every_constructor_param_with_its_default(path) -> None:  # noqa: ANN001
    cfg = yaml.safe_load(path.read_text())
    name = cfg.pop("name")
    assert name == path.stem
    params = params_of(BACKBONES.get(name), CONTEXT_ARGS)
    assert cfg == {n: p.default for n, p in params.items()}
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
    assert check_params(BACKBONES.get(name), cfg, "backbone", CONTEXT_ARGS) == []
