"""Provenance of a run: which code trained it (a hash of the source files it used, the git
commit), and on what (torch, Python, platform).

`code_hash` enters the content hash that `sweep --resume` matches on, so editing a variant's file
retrains that variant's cells, and only those: a component (attention variant, backbone, task)
contributes its own module and the attnbench modules it imports, not its siblings'; everything
outside the component folders (training loop, wiring, ...) counts for every run. Plugin
components contribute their own package's modules the same way.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from attnbench.config.run_config import RunConfig

PACKAGE = Path(__file__).resolve().parent.parent
COMPONENT_DIRS = ("attention", "backbones", "tasks")


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _module_file(root: Path, package: str, module: str) -> Path | None:
    """The file of `module` (dotted) inside `package` rooted at `root`, if it is one of ours."""
    if module != package and not module.startswith(package + "."):
        return None
    rel = Path(*module.split(".")[1:])
    for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, package: str) -> set[str]:
    """Modules of `package` that `path` imports (at any depth of the file), as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(_read(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m == package or m.startswith(package + ".")}


def _closure(start: Path, root: Path, package: str) -> set[Path]:
    """`start` and every module of `package` it imports, transitively."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(path, package):
            found = _module_file(root, package, module)
            if found is not None and found not in seen:
                todo.append(found)
    return seen


@functools.cache
def _shared_files() -> tuple[Path, ...]:
    """attnbench's modules outside the component folders (they count for every run)."""
    return tuple(sorted(p for p in PACKAGE.rglob("*.py")
                        if p.relative_to(PACKAGE).parts[0] not in COMPONENT_DIRS))


def _component_files(classes: Iterable[type]) -> dict[str, Path]:
    """{package-relative name: file} of the classes' modules and what they import."""
    files: dict[str, Path] = {}
    for cls in classes:
        source = Path(inspect.getsourcefile(cls) or "")
        package = cls.__module__.split(".")[0]
        root = Path(inspect.getsourcefile(sys.modules[package]) or "").parent
        if source.is_file():
            files |= {f"{package}/{p.relative_to(root)}": p
                      for p in _closure(source, root, package)}
    return files


def code_hash(cfg: RunConfig) -> str:
    """A hash of the source files that define what `cfg` trains (see the module docstring)."""
    from attnbench.attention import ATTENTION
    from attnbench.backbones import BACKBONES
    from attnbench.tasks import TASKS

    classes = (ATTENTION.get(cfg.attention.name), BACKBONES.get(cfg.backbone.name),
               TASKS.get(cfg.task.name))
    files = {f"attnbench/{p.relative_to(PACKAGE)}": p for p in _shared_files()}
    files |= _component_files(classes)
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(_read(files[name])).digest())
    return digest.hexdigest()[:16]


# git reads configuration that can run commands (core.fsmonitor, core.hooksPath, aliases,
# credential helpers, ...) from the system, the user's home and the checkout: provenance reads
# none of it. The environment is rebuilt from scratch (no HOME/XDG_CONFIG_HOME a config or a
# parent process set, no GIT_* variable), and the settings that name a command are switched off.
GIT_SETTINGS = ("core.fsmonitor=", "core.hooksPath=/dev/null", "core.pager=cat",
                "core.untrackedCache=false", "diff.external=", "protocol.allow=never")


def git_environment() -> dict[str, str]:
    """The environment git runs in for provenance: nothing from os.environ but PATH and the
    locale, no user or system config."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    return {**keep, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "HOME": os.devnull, "XDG_CONFIG_HOME": os.devnull, "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0"}


@functools.cache
def git_state() -> dict[str, str]:
    """The commit and dirty flag of the git checkout attnbench runs from ({} when it is not one,
    e.g. an installed wheel). git runs no user code: see `GIT_SETTINGS`, `git_environment`."""
    settings = [arg for setting in GIT_SETTINGS for arg in ("-c", setting)]

    def git(*args: str) -> str:
        return subprocess.run(["git", *settings, "-C", str(PACKAGE), *args], capture_output=True,
                              text=True, timeout=10, check=True, env=git_environment(),
                              stdin=subprocess.DEVNULL).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "."))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": str(dirty).lower()}


@functools.cache
def environment() -> dict[str, str]:
    """torch, CUDA, Python and platform versions."""
    import torch

    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
