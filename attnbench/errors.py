"""Errors a user can cause, each rendered as one line by the CLI (no traceback)."""

from __future__ import annotations


class AttnbenchError(Exception):
    """Base class: `exit_code` is what the CLI exits with (2 usage/config, 1 runtime)."""

    exit_code = 1

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message)

    def one_line(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        return f"{len(self.problems)} problems: " + "; ".join(self.problems)


class ConfigError(AttnbenchError):
    """A bad override, config value, incompatible choice or data file (exit 2)."""

    exit_code = 2


class IncompatibleError(ConfigError):
    """The backbone cannot run the task's kind: a sweep skips such a cell, `run` refuses it."""


class DataError(ConfigError):
    """A data file that is missing, empty or malformed (exit 2)."""


class TrackingError(AttnbenchError):
    """The tracking store cannot be reached or used (exit 2: it is a config problem)."""

    exit_code = 2


class RunFailed(AttnbenchError):
    """Training failed at run time, e.g. a NaN loss (exit 1)."""

    exit_code = 1


class Interrupted(AttnbenchError):
    """Ctrl-C: the running job was closed as KILLED (exit 130, the shell's code for SIGINT)."""

    exit_code = 130
