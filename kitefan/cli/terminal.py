"""The two consoles, the exit codes, and the one place library errors become exit codes.

Data goes to stdout (``out``); progress, warnings and errors to stderr (``err``). An error is one
line, ``error: <what is wrong and what to do>``, with no traceback unless ``--debug``. Warnings,
errors and log lines may quote what a server sent: they go through
:func:`~kitefan.render.text.printable`, so no control character reaches the terminal.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from kitefan.errors import AuthError, ConfigError, KitefanError, NoUsableKeyError, PlanError
from kitefan.models import IST
from kitefan.render.text import printable

__all__ = [
    "LOG_FILE",
    "ExitCode",
    "PipeConsole",
    "PrintableFormatter",
    "err",
    "exit_code_of",
    "log_formatter",
    "log_to_file",
    "out",
    "reported_errors",
    "unexpected_error_line",
    "usage_error_line",
    "warn",
]


class PipeConsole(Console):
    """A console whose reader going away (``kitefan stats --watch | head -1``) ends the command
    as a closed pipe does anywhere else in kitefan (:func:`reported_errors`: exit code 0), rather
    than as Rich's exit code 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, (sys.stderr if self.stderr else sys.stdout).fileno())
        os.close(devnull)
        raise BrokenPipeError


out = PipeConsole(highlight=False, soft_wrap=True)
err = PipeConsole(stderr=True, highlight=False, soft_wrap=True)


#: Every command's ``--log-file PATH``.
LOG_FILE = typer.Option(
    "--log-file",
    metavar="PATH",
    dir_okay=False,
    help="Append the log to this file (warnings and up; everything with --debug), times in IST.",
)

# The options several commands share, declared once (``Annotated[bool, DEBUG]``).
DEBUG = typer.Option("--debug", help="Show tracebacks.")
CONFIG = typer.Option(
    "--config", help="Config file [default: ./kitefan.toml, then $KITEFAN_CONFIG]."
)
DURATION = typer.Option(
    "--duration", min=0.0, metavar="SECONDS", help="Stop after this many seconds (exit code 0)."
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


def usage_error_line(exc: Exception, args: Sequence[str], root: Any = None) -> str:
    """The one ``error: ...`` line of a command line that does not parse (an unknown option or
    command, a bad or missing value), instead of Click's usage block.

    Args:
        exc: what the parser raised (a Click ``UsageError`` of typer's).
        args: the command line's words, to quote the value given.
        root: the root command (to name the subcommand when the error does not).
    """
    command = _command_of(getattr(exc, "ctx", None), args, root)
    see = f"see `{command} --help`"
    option = getattr(exc, "option_name", None)
    if type(exc).__name__ == "NoSuchOption" and option is not None:
        close = sorted(getattr(exc, "possibilities", None) or ())
        guess = f" (did you mean {' or '.join(close)}?)" if close else ""
        return f"error: {command}: no such option {option}{guess}; {see}"
    param = getattr(exc, "param", None)
    hint = getattr(exc, "param_hint", None)
    message = _sentence(str(getattr(exc, "message", exc)))
    if param is None and isinstance(hint, str) and hint:
        return f"error: {hint}: {message}"
    if param is None:
        unknown = re.fullmatch(r"no such command '(.*)'", message)
        if unknown:
            ctx = getattr(exc, "ctx", None)
            names = ctx.command.list_commands(ctx) if ctx is not None else []
            return (
                f"error: no such command {unknown.group(1)!r}: the commands are "
                f"{', '.join(names)}; {see}"
            )
        return f"error: {command}: {message}; {see}"
    name = _param_name(param, hint)
    given = _given(param, args)
    shown = f"{name} {given}" if given is not None else name
    return f"error: {shown}: {_what_is_wrong(param, message)}; {see}"


def unexpected_error_line(exc: BaseException) -> str:
    """The one ``error: ...`` line of an error kitefan did not expect (no traceback without
    ``--debug``): a file that cannot be written says which and why; anything else says where to
    look. Secrets in its text are masked."""
    from kitefan.connection import SecretFilter

    if isinstance(exc, OSError) and exc.filename is not None:
        what = f"{exc.filename}: {exc.strerror or type(exc).__name__}"
    else:
        what = (
            "internal error in kitefan (run again with --debug for details): "
            f"{type(exc).__name__}: {exc}"
        )
    record = logging.LogRecord("kitefan", logging.ERROR, "", 0, what, None, None)
    SecretFilter().filter(record)
    return f"error: {printable(record.getMessage())}"


def _command_of(ctx: Any, args: Sequence[str], root: Any) -> str:
    """``kitefan SUBCOMMAND...`` of a parser's context (else of the command line's first words),
    however kitefan was started."""
    names: list[str] = []
    while ctx is not None and getattr(ctx, "parent", None) is not None:
        names.append(str(ctx.info_name))
        ctx = ctx.parent
    names.reverse()
    if ctx is None:
        group = root
        for word in args:
            group = getattr(group, "commands", {}).get(word)
            if group is None:
                break
            names.append(word)
    return " ".join(["kitefan", *names])


def _sentence(text: str) -> str:
    """A parser's message as the rest of an error line: lower-case first (unless the first word
    is a name in capitals, like ``XYZ``), no final period."""
    text = text.strip().rstrip(".")
    first = text.split(" ", 1)[0]
    if len(first) > 1 and first[1:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def _param_name(param: Any, hint: object) -> str:
    if getattr(param, "param_type_name", "") == "argument":
        return str(getattr(param, "name", "?")).upper()
    if isinstance(hint, str) and hint:
        return hint.replace("'", "")
    opts: list[str] = [o for o in getattr(param, "opts", ()) if o.startswith("-")]
    if opts:
        return max(opts, key=len)
    return str(getattr(param, "metavar", None) or getattr(param, "name", "?")).upper()


def _given(param: Any, args: Sequence[str]) -> str | None:
    """What the command line gave the option (``--duration abc``: ``'abc'``), if it is there."""
    opts = [o for o in getattr(param, "opts", ()) if o.startswith("-")]
    for i, word in enumerate(args):
        for opt in opts:
            if word == opt and i + 1 < len(args):
                return _quoted(args[i + 1])
            if word.startswith(opt + "="):
                return _quoted(word[len(opt) + 1 :])
    return None


def _quoted(value: str) -> str:
    plain = value and value.isprintable() and not any(c.isspace() or c in "'\"" for c in value)
    return printable(value) if plain else repr(value)


def _what_is_wrong(param: Any, message: str) -> str:
    """The parser's complaint about a value, in kitefan's words where the parser's are vague
    (``Input should be a valid number, unable to parse string as a number``)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        choices = [str(member.value) for member in annotation]
        return f"use {', '.join(choices[:-1])} or {choices[-1]}"
    if annotation in (int, float) and message.startswith("input should be"):
        kind = "a whole number" if annotation is int else "a number"
        if low is not None and high is not None:
            return f"give {kind} from {low:g} to {high:g}"
        if low is not None:
            return f"give {kind} of at least {low:g}"
        if high is not None:
            return f"give {kind} of at most {high:g}"
        return f"give {kind}"
    return message
