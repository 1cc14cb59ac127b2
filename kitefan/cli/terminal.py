"""The two consoles, the exit codes, and the one place library errors become exit codes.

Data goes to stdout (``out``); progress, warnings and errors to stderr (``err``). An error is one
line, ``error: <what is wrong and what to do>``, with no traceback unless ``--debug``. Warnings,
errors and log lines may quote what a server sent: they go through
:func:`~kitefan.render.text.printable`, so no control character reaches the terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum

import typer
from rich.console import Console
from rich.text import Text

from kitefan.errors import AuthError, ConfigError, KitefanError, NoUsableKeyError, PlanError
from kitefan.render.text import printable

__all__ = [
    "ExitCode",
    "PrintableFormatter",
    "err",
    "exit_code_of",
    "out",
    "reported_errors",
    "warn",
]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class ExitCode(IntEnum):
    """What ``kitefan`` exits with (docs/behaviour.md, "Commands and exits")."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    AUTH = 4
    INTERRUPTED = 130


def exit_code_of(exc: KitefanError) -> ExitCode:
    """The exit code a library error maps to."""
    match exc:
        case ConfigError() | PlanError():
            return ExitCode.CONFIG
        case AuthError() | NoUsableKeyError():
            return ExitCode.AUTH
        case _:
            return ExitCode.FAILURE


def warn(message: str) -> None:
    """One warning line on stderr (the message is plain text, never markup)."""
    err.print(Text.assemble(("warning:", "yellow"), " ", printable(message)), highlight=False)


class PrintableFormatter(logging.Formatter):
    """A log formatter whose messages hold no control characters (tracebacks are kept)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


@contextmanager
def reported_errors(debug: bool = False) -> Iterator[None]:
    """Turn library errors into one line on stderr and the matching exit code.

    With ``debug``, the exception propagates with its traceback instead.
    """
    try:
        yield
    except KitefanError as exc:
        if debug:
            raise
        err.print(f"error: {printable(str(exc))}", markup=False, highlight=False)
        raise typer.Exit(int(exit_code_of(exc))) from None
    except KeyboardInterrupt:
        if debug:
            raise
        err.print("interrupted", markup=False, highlight=False)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except BrokenPipeError:
        # The reader of our stdout went away (``kitefan ... | head``): not an error of ours.
        sys.stderr.close()
        raise typer.Exit(int(ExitCode.OK)) from None
