"""Backbones: one file per architecture, registered by name (see `base.py` for the contract)."""

from __future__ import annotations

from attnbench.registry import Registry

BACKBONES: Registry = Registry(
    "backbone", "attnbench.backbones", "attnbench.backbones.base:Backbone"
)

__all__ = ["BACKBONES"]
