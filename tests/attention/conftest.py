"""Tiny tensors in these tests: one intra-op thread is faster and immune to oversubscription."""

from __future__ import annotations

import typing

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> typing.Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
