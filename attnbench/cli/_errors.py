"""Turning errors into one line and an exit code (no traceback unless --debug).

Exit codes: 2 for a usage/config problem, 1 for a runtime failure, 130 for Ctrl-C. With
``--debug`` the traceback is printed first, then the same one line and the same exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
import typer
from typer.core import TyperGroup

try:  # recent Typer carries its own copy of click; older Typer uses click itself
    from typer._click import exceptions as _usage
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as _usage

_ABORTS: tuple[type[BaseException], ...] = tuple(
    {typer.Abort, getattr(_usage, "Abort", typer.Abort)}  # Typer's click copy has none
)

# What the command line itself may raise (as opposed to a command body): exits and usage errors.
_CLI_EXITS: tuple[type[BaseException], ...] = tuple(
    {typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort,
     click.ClickException, _usage.ClickException}
)


@contextmanager
def reported(debug: bool = False) -> Iterator[None]:
    from attnbench.errors import AttnbenchError

    try:
        yield
    except _CLI_EXITS:
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


class OneLineUsageErrors(TyperGroup):
    """The `attnbench` group: a usage error (unknown option or command, missing argument, bad
    option value) is one `error:` line naming the problem and where the choices are, exit 2,
    instead of click's usage block. Help (`--help`, or no arguments) prints as usual.
    `--install-completion [SHELL]` / `--show-completion [SHELL]` are answered before Typer
    parses (cli/completion.py)."""

    def main(
        self, args: Sequence[str] | None = None, *a: Any, standalone_mode: bool = True, **kw: Any
    ) -> Any:
        if not standalone_mode:
            return super().main(args, *a, standalone_mode=False, **kw)
        try:
            from attnbench.cli.completion import handle

            done = handle(sys.argv[1:] if args is None else list(args))
            if done is not None:
                sys.exit(done)
            code = super().main(args, *a, standalone_mode=False, **kw)
        except _usage.UsageError as err:
            if type(err).__name__ == "NoArgsIsHelpError":  # `attnbench` alone: the help
                err.show()
                sys.exit(err.exit_code)
            from attnbench.console import error

            where = err.ctx.command_path if err.ctx is not None else "attnbench"
            message = " ".join(err.format_message().split()).rstrip(".")
            error(f"{message} (see '{where} --help')")
            sys.exit(err.exit_code)
        except _usage.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except _ABORTS:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
