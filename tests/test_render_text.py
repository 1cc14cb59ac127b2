"""Server text on a terminal: ``printable`` and ``json_escaped``, and the stderr lines that use
them (warnings, error lines, log lines)."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import typer
from rich.console import Console

from kitefan.cli import terminal
from kitefan.errors import FeedError
from kitefan.render.text import json_escaped, printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "Can't subscribe to more than 3000 instruments.",
            "Can't subscribe to more than 3000 instruments.",
        ),
        ("\x1b[2Jcleared", "[2Jcleared"),
        ("\x1b]0;title\x07rest", "]0;titlerest"),
        ("a\tb\nc\r\nd", "a b c  d"),
        ("\x00\x08\x7f\x9b31m\x85", "31m"),
        ("abc\u202edcba\u2066x\u2069\u200f", "abcdcbax"),
        ("₹ 1,512.35 — NIFTY 26DEC\u00a0FUT", "₹ 1,512.35 — NIFTY 26DEC\u00a0FUT"),
        ("[bold red]not markup[/]", "[bold red]not markup[/]"),
    ],
)
def test_printable_drops_what_a_terminal_obeys(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_json_escaped_is_the_same_json_with_nothing_raw_a_terminal_obeys() -> None:
    value = {"message": "a\x1b[2J\x7f\x9b\u202eé\n"}
    line = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    escaped = json_escaped(line)
    assert escaped == '{"message":"a\\u001b[2J\\u007f\\u009b\\u202eé\\n"}'
    assert json.loads(escaped) == value
    plain = '{"message":"ok"}'
    assert json_escaped(plain) is plain


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(terminal, "err", Console(file=buffer, highlight=False, soft_wrap=True))
    return buffer


def test_a_warning_is_plain_text_without_control_characters(stderr: io.StringIO) -> None:
    terminal.warn("server said \x1b[2J[bold]hi[/]")
    assert stderr.getvalue() == "warning: server said [2J[bold]hi[/]\n"


def test_an_error_line_holds_no_control_characters(stderr: io.StringIO) -> None:
    with pytest.raises(typer.Exit) as info, terminal.reported_errors():
        raise FeedError("the server answered \x1b]0;pwned\x07nonsense")
    assert info.value.exit_code == 1
    assert stderr.getvalue() == "error: the server answered ]0;pwnednonsense\n"


def test_log_lines_hold_no_control_characters_but_keep_tracebacks() -> None:
    formatter = terminal.PrintableFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord(
        "kitefan.manager",
        logging.INFO,
        __file__,
        1,
        "%s: %s",
        ("message", "\x1b[2Jhi\nthere"),
        None,
    )
    assert formatter.format(record) == "INFO message: [2Jhi there"
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "kitefan", logging.DEBUG, __file__, 1, "failed", (), sys.exc_info()
        )
    lines = formatter.format(failed).splitlines()
    assert lines[0] == "DEBUG failed"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"
