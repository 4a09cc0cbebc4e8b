"""Attention variants: one file per variant, registered by name (see `base.py` for the contract)."""

from __future__ import annotations

from attnbench.registry import Registry

ATTENTION: Registry = Registry(
    "attention", "attnbench.attention", "attnbench.attention.base:Attention"
)

__all__ = ["ATTENTION"]
