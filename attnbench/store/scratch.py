"""Where a training process keeps its run's `last.pt` until the run ends: a folder named by a
random token under attnbench's own temporary root (`<tmp>/attnbench-<uid>`, mode 0700).

A run records only the token (`SCRATCH_TAG`), never a path, and whoever closes a dead run
(`Tracker.keep_last_checkpoint`) uploads the file only if every check holds: the token has the
token's shape, the root is a real folder owned by this user and private to it, the folder is one
attnbench made (the marker it writes when it makes one names the token), and `last.pt` is a
regular file (not a symlink) owned by this user. A run planted in a shared store cannot make
anyone upload another file.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import uuid
from pathlib import Path

LAST = "last.pt"
MARKER = ".attnbench-scratch"
_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def root() -> Path:
    """attnbench's temporary root for this user, created 0700; refused if it is not ours."""
    path = Path(tempfile.gettempdir()) / f"attnbench-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a folder owned by this user")
    return path


def new() -> tuple[str, Path]:
    """A fresh scratch folder: (token, folder)."""
    token = uuid.uuid4().hex
    folder = root() / token
    folder.mkdir(mode=0o700)
    (folder / MARKER).write_text(token)
    return token, folder


def trusted_last(token: str) -> Path | None:
    """The `last.pt` of scratch `token` if every check of the module docstring holds, else None."""
    if not _TOKEN.match(token or ""):
        return None
    try:
        folder = root() / token
        info = os.lstat(folder / LAST)
        marker = os.lstat(folder / MARKER)
        made_by_attnbench = (folder / MARKER).read_text() == token
    except OSError:
        return None
    for item in (info, marker):
        if not stat.S_ISREG(item.st_mode) or item.st_uid != os.getuid():
            return None
    return folder / LAST if made_by_attnbench else None


def remove(token: str) -> None:
    if _TOKEN.match(token or ""):
        shutil.rmtree(root() / token, ignore_errors=True)
