"""Name -> component registries, discovered from the package folders (no hand-kept lists).

Each component file registers its class with ``@ATTENTION.register("name")`` (or BACKBONES,
TASKS). Lookup imports every module of the component package once, so the folder is the list.
Plugins from other packages register through the entry-point group ``attnbench.<kind>``.
Only registered classes can be built from a config: YAML cannot name arbitrary imports. Each
kind has a base class (``attnbench.attention.base:Attention``, ...) holding the facts every
component declares; a plugin class that does not derive from it is refused at lookup.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types
import typing
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin

from attnbench.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str, base: str) -> None:
        self.kind = kind
        self.package = package
        self.base = base  # "module:Class" every component of this kind derives from
        self._items: dict[str, type[T]] = {}
        self._origin: dict[str, str] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            if name in self._items and self._items[name] is not cls:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            self._items[name] = cls
            self._origin.setdefault(name, "builtin")
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self.package}.{mod.name}")
        for ep in entry_points(group=f"attnbench.{self.kind}"):
            before = set(self._items)
            obj = ep.load()
            if isinstance(obj, type) and ep.name not in self._items:
                self.register(ep.name)(obj)
            for name in set(self._items) - before:
                self._origin[name] = f"plugin {ep.value}"

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def origin(self, name: str) -> str:
        self._load()
        return self._origin.get(name, "?")

    def get(self, name: str) -> type[T]:
        self._load()
        if name not in self._items:
            raise ConfigError(
                f"Unknown {self.kind} {name!r}. Valid options: {', '.join(self.names())}"
            )
        cls = self._items[name]
        module, _, base_name = self.base.partition(":")
        base = getattr(importlib.import_module(module), base_name)
        if not issubclass(cls, base):
            raise ConfigError(
                f"{self.kind} {name!r} ({self.origin(name)}: {cls.__module__}.{cls.__qualname__}) "
                f"does not derive from {module}.{base_name}, which holds the facts every "
                f"{self.kind} declares (see docs/architecture.md)"
            )
        return cls


def params_of(cls: type, context: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
    """The constructor parameters a YAML file may set (everything but the wiring `context`)."""
    sig = inspect.signature(cls.__init__)
    return {
        n: p
        for n, p in sig.parameters.items()
        if n != "self" and n not in context and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _type_ok(value: Any, ann: Any) -> bool:
    if ann is inspect.Parameter.empty or ann is Any:
        return True
    origin = get_origin(ann)
    if origin is Literal:
        return value in get_args(ann)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in get_args(ann))
    if ann is type(None):
        return value is None
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple, typing.Sequence):
        return isinstance(value, (list, tuple))
    if isinstance(ann, type):
        return isinstance(value, ann)
    return True


def _type_name(ann: Any) -> str:
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(ann))
    return getattr(ann, "__name__", str(ann)).replace("typing.", "")


def check_params(
    cls: type, params: Mapping[str, Any], where: str, context: tuple[str, ...] = ()
) -> list[str]:
    """Problems with `params` for `cls`'s constructor: unknown keys and wrong types, all of them."""
    allowed = params_of(cls, context)
    hints = typing.get_type_hints(cls.__init__)
    problems: list[str] = []
    for key, value in params.items():
        if key not in allowed:
            problems.append(
                f"Unknown key '{where}.{key}'. Valid keys: {', '.join(sorted(allowed)) or '(none)'}"
            )
            continue
        ann = hints.get(key, allowed[key].annotation)
        if not _type_ok(value, ann):
            problems.append(
                f"'{where}.{key}' = {value!r} should be {_type_name(ann)}"
            )
    return problems
