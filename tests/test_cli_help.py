"""Every command answers --help with its own help text, and the README names every command."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from processes import invoke, kitefan, run_sync

from kitefan import __version__
from kitefan.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def commands() -> list[list[str]]:
    group = typer.main.get_command(app)
    found: list[list[str]] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        if sub:
            found.extend([name, child] for child in sub)
        else:
            found.append([name])
    return sorted(found)


def test_every_command_is_there() -> None:
    assert commands() == [
        ["bench"],
        ["config", "check"],
        ["config", "show"],
        ["distribute"],
        ["init"],
        ["instruments", "fetch"],
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
