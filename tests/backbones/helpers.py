"""Shared by the backbone tests: every attention YAML as a parameter, and a recording factory."""

from __future__ import annotations

import pytest
import yaml
from torch import nn

from attnbench.attention import ATTENTION
from tests.conftest import CONF


def attention_configs() -> list:
    params = []
    for path in sorted((CONF / "attention").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text()) or {}
        params.append(pytest.param(cfg.pop("name", path.stem), cfg, id=path.stem))
    return params


VARIANTS = attention_configs()


class Factory:
    """make_attention for the backbone; remembers the modules it built."""

    def __init__(self, name: str, params: dict) -> None:
        self.cls = ATTENTION.get(name)
        self.params = params
        self.built: list[nn.Module] = []

    def __call__(self, d_query: int, d_key: int, d_value: int) -> nn.Module:
        module = self.cls(d_query, d_key, d_value, **self.params)
        self.built.append(module)
        return module
