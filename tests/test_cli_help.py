"""Every command answers --help with its own help text, and the README names every command."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
import typer
from processes import assert_no_secret, invoke, kitefan, run_sync

from kitefan import __version__
from kitefan.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def commands() -> list[list[str]]:
    group = typer.main.get_command(app)
    found: list[list[str]] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]  # typer's click Group, typed as Command
        sub = getattr(command, "commands", None)
        if sub:
            found.extend([name, child] for child in sub)
        else:
            found.append([name])
    return sorted(found)


def test_every_command_is_there() -> None:
    assert commands() == [
        ["bench"],
        ["candles"],
        ["config", "check"],
        ["config", "show"],
        ["distribute"],
        ["export"],
        ["init"],
        ["instruments", "fetch"],
        ["record", "info"],
        ["replay"],
        ["simulate"],
        ["stats"],
        ["stream"],
        ["tail"],
    ]


@pytest.mark.parametrize("words", commands(), ids=" ".join)
def test_help_exits_0_with_a_description(words: list[str]) -> None:
    result = invoke(*words, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: kitefan {' '.join(words)} ")
    description = result.stdout.split("\n\n")[1].strip()
    assert len(description) > 20


@pytest.mark.parametrize("words", commands(), ids=" ".join)
def test_the_readme_documents_every_command(words: list[str]) -> None:
    assert f"kitefan {' '.join(words)}" in README or f"kitefan {words[0]}" in README


def test_python_dash_m_and_version() -> None:
    done = run_sync(*kitefan("--version"))
    assert (done.returncode, done.stdout, done.stderr) == (0, f"kitefan {__version__}\n", "")


@pytest.mark.parametrize("words", commands(), ids=" ".join)
def test_every_command_takes_a_log_file(words: list[str]) -> None:
    result = invoke(*words, "--help", env={"COLUMNS": "200"})
    assert "--log-file PATH" in result.stdout


def test_a_log_file_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "kitefan.log"
    done = run_sync(*kitefan("config", "show", "--log-file", str(missing)))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"error: --log-file: cannot write {missing}: No such file or directory\n"


def test_the_log_file_gets_the_log_with_times_in_ist(tmp_path: Path) -> None:
    log = tmp_path / "kitefan.log"
    done = run_sync(
        *kitefan(
            "stream",
            "--demo",
            "--format",
            "jsonl",
            "--duration",
            "1",
            "--debug",
            "--log-file",
            str(log),
        ),
        env={**os.environ, "KITEFAN_RUNTIME_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert " DEBUG " not in done.stderr
    text = log.read_text()
    assert_no_secret(text, "the --log-file of kitefan stream --demo")
    lines = text.splitlines()
    assert lines
    assert all(
        re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST [A-Z]+ kitefan", line) for line in lines
    )


def test_log_lines_are_stamped_in_ist_whatever_the_machine_zone() -> None:
    from kitefan.cli.terminal import log_formatter

    record = logging.LogRecord("kitefan.feed", logging.INFO, __file__, 1, "up", None, None)
    record.created = 1700023532.25  # 2023-11-15 04:45:32 UTC
    assert log_formatter().format(record) == "2023-11-15 10:15:32 IST INFO kitefan.feed: up"
