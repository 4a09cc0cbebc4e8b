"""Turning errors into one line and an exit code (no traceback unless --debug).

Exit codes: 2 for a usage/config problem, 1 for a runtime failure, 130 for Ctrl-C. With
``--debug`` the traceback is printed first, then the same one line and the same exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
import typer


@contextmanager
def reported(debug: bool = False) -> Iterator[None]:
    from attnbench.errors import AttnbenchError

    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise  # Typer's own exits and usage errors
    except AttnbenchError as err:
        _fail(err.one_line(), err.exit_code, debug)
    except KeyboardInterrupt:
        _fail("interrupted (Ctrl-C)", 130, debug)
    except Exception as err:  # noqa: BLE001 - a bug must not look like a crash dump either
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        hint = "" if debug else " (rerun with --debug for the traceback)"
        _fail(f"internal error: {type(err).__name__}: {first}{hint}", 1, debug)


def _fail(message: str, code: int, debug: bool) -> None:
    import sys
    import traceback

    from attnbench.console import error

    if debug:
        traceback.print_exc(file=sys.stderr)
    error(message)
    raise typer.Exit(code) from None


def exit_with(fn: Callable[[], int], debug: bool = False) -> None:
    with reported(debug):
        code = fn()
    raise typer.Exit(code)
