"""Backbones: one file per architecture, registered by name (see `base.py` for the contract)."""

from __future__ import annotations

from attnbench.registry import Registry

BACKBONES: Registry = Registry("backbone", "attnbench.backbones")

__all__ = ["BACKBONES"]
