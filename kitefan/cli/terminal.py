"""The two consoles, the exit codes, and the one place library errors become exit codes.

Data goes to stdout (``out``); progress, warnings and errors to stderr (``err``). An error is one
line, ``error: <what is wrong and what to do>``, with no traceback unless ``--debug``. Warnings,
errors and log lines may quote what a server sent: they go through
:func:`~kitefan.render.text.printable`, so no control character reaches the terminal.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import IntEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from kitefan.errors import AuthError, ConfigError, KitefanError, NoUsableKeyError, PlanError
from kitefan.models import IST
from kitefan.render.text import printable

__all__ = [
    "LOG_FILE",
    "ExitCode",
    "PrintableFormatter",
    "err",
    "exit_code_of",
    "log_formatter",
    "log_to_file",
    "out",
    "reported_errors",
    "warn",
]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


#: Every command's ``--log-file PATH``.
LOG_FILE = typer.Option(
    "--log-file",
    metavar="PATH",
    dir_okay=False,
    help="Append the log to this file (warnings and up; everything with --debug), times in IST.",
)


def _ist(seconds: float | None) -> time.struct_time:
    return datetime.fromtimestamp(time.time() if seconds is None else seconds, tz=IST).timetuple()


def log_formatter(
    fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s",
) -> logging.Formatter:
    """Log lines stamped in IST, the zone of the market and of every time kitefan prints, with
    no control characters in their messages."""
    formatter = PrintableFormatter(fmt, datefmt="%Y-%m-%d %H:%M:%S IST")
    formatter.converter = _ist
    return formatter


def log_to_file(path: Path | None, debug: bool) -> None:
    """With ``--log-file PATH``: kitefan's log is appended to PATH (DEBUG with ``--debug``).

    Raises:
        KitefanError: the file cannot be opened (one line saying which and why).
    """
    if path is None:
        return
    try:
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    except OSError as exc:
        raise KitefanError(f"--log-file: cannot write {path}: {exc.strerror or exc}") from None
    handler.setFormatter(log_formatter())
    handler.addFilter(_secret_filter())
    logger = logging.getLogger("kitefan")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False


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


def _secret_filter() -> logging.Filter:
    """The filter that masks credentials in every record a handler writes."""
    from kitefan.connection import SecretFilter

    return SecretFilter()


class PrintableFormatter(logging.Formatter):
    """A log formatter whose messages hold no control characters (tracebacks are kept)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


@contextmanager
def reported_errors(debug: bool = False, log_file: Path | None = None) -> Iterator[None]:
    """Turn library errors into one line on stderr and the matching exit code.

    With ``debug``, the exception propagates with its traceback instead. With ``log_file``
    (``--log-file``), the log goes there first (:func:`log_to_file`).
    """
    try:
        log_to_file(log_file, debug)
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
