"""Turning attnbench errors into one line and an exit code (no traceback unless --debug)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer


@contextmanager
def reported(debug: bool = False) -> Iterator[None]:
    from attnbench.errors import AttnbenchError

    try:
        yield
    except AttnbenchError as err:
        if debug:
            raise
        from attnbench.console import error

        error(err.one_line())
        raise typer.Exit(err.exit_code) from None


def exit_with(fn: Callable[[], int], debug: bool = False) -> None:
    with reported(debug):
        code = fn()
    raise typer.Exit(code)
