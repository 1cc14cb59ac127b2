"""Every error of every command is one ``error: ...`` line and a documented exit code; the help
is consistent (metavars, defaults, an example in each command's), and shell completion works.

Issue 12, items 7 and 8.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from processes import ROOT, invoke, kitefan, run_sync
from test_cli_help import commands

from kitefan.cli.bench import Which
from kitefan.cli.terminal import unexpected_error_line

DEMO = str(ROOT / "configs" / "demo.toml")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["stream", "--demo", "--format", "xml"],
            "error: --format xml: use live, jsonl, csv or none; see `kitefan stream --help`",
        ),
        (
            ["stream", "--demo", "--duration", "abc"],
            "error: --duration abc: give a number of at least 0; see `kitefan stream --help`",
        ),
        (
            ["stream", "--duration=-1"],
            "error: --duration -1: give a number of at least 0; see `kitefan stream --help`",
        ),
        (
            ["stream", "--bogus"],
            "error: kitefan stream: no such option --bogus (did you mean --symbols?); "
            "see `kitefan stream --help`",
        ),
        (
            ["stream", "--format"],
            "error: kitefan stream: option '--format' requires an argument; "
            "see `kitefan stream --help`",
        ),
        (
            ["stats", "--count", "x"],
            "error: --count x: give a whole number of at least 1; see `kitefan stats --help`",
        ),
        (
            ["stats", "--bogus"],
            "error: kitefan stats: no such option --bogus; see `kitefan stats --help`",
        ),
        (
            ["simulate", "--port", "70000"],
            "error: --port 70000: give a whole number from 0 to 65535; "
            "see `kitefan simulate --help`",
        ),
        (
            ["config", "check", "--bogus"],
            "error: kitefan config check: no such option --bogus; "
            "see `kitefan config check --help`",
        ),
        (
            ["init", "a.toml", "b.toml"],
            "error: kitefan init: got unexpected extra argument(s) (b.toml); "
            "see `kitefan init --help`",
        ),
        (
            ["config", "bogus"],
            "error: no such command 'bogus': the commands are check, show; "
            "see `kitefan config --help`",
        ),
        (
            ["bogus"],
            "error: no such command 'bogus': the commands are stream, stats, distribute, tail, "
            "candles, record, export, replay, simulate, init, config, instruments, bench; "
            "see `kitefan --help`",
        ),
        (
            ["bench", "everything"],
            "error: WHICH: use "
            + ", ".join(w.value for w in list(Which)[:-1])
            + " or all; see `kitefan bench --help`",
        ),
        (
            ["stream", "--demo", "--symbols", ","],
            "error: --symbols: names no symbol: give tokens or EXCHANGE:TRADINGSYMBOL names, "
            "comma-separated, or leave --symbols out to stream the config's symbols",
        ),
    ],
)
def test_a_command_line_that_does_not_parse_is_one_line_and_exit_code_2(
    args: list[str], line: str
) -> None:
    result = invoke(*args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", line + "\n")


def test_python_dash_m_says_kitefan_in_its_one_line() -> None:
    done = run_sync(*kitefan("stream", "--format", "xml"))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: --format xml: use live, jsonl, csv or none; see `kitefan stream --help`\n"
    )


def test_output_into_a_missing_directory_or_onto_a_directory_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "plan.toml"
    result = invoke("distribute", "--dry-run", "--config", DEMO, "--output", str(missing))
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: --output {missing}: its directory {missing.parent} does not exist: "
        "create it first\n",
    )
    result = invoke("distribute", "--dry-run", "--config", DEMO, "--output", str(tmp_path))
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: --output {tmp_path}: is a directory: give the path of a file to write the "
        "pins to\n",
    )


def test_an_unexpected_error_is_one_line_without_its_secrets() -> None:
    missing = FileNotFoundError(2, "No such file or directory", "/nowhere/x")
    assert unexpected_error_line(missing) == "error: /nowhere/x: No such file or directory"
    bug = RuntimeError("ws://h/?api_key=SENTINELAPIKEY9876&access_token=SENTINELTOKEN5432")
    assert unexpected_error_line(bug) == (
        "error: internal error in kitefan (run again with --debug for details): "
        "RuntimeError: ws://h/?api_key=…&access_token=…"
    )


def _help(words: list[str]) -> str:
    result = invoke(*words, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    return result.stdout


@pytest.mark.parametrize("words", commands(), ids=" ".join)
def test_every_help_names_values_in_capitals_and_defaults_one_way(words: list[str]) -> None:
    text = _help(words)
    assert "(default" not in text
    assert not re.search(r"<[a-z ]+>", text), "typer's <float range>-style metavars"
    options = text.split("\nOptions:\n", 1)[1]
    for option, metavar in re.findall(r"^  (--[a-z-]+) (\S+)", options, re.MULTILINE):
        named = metavar.removeprefix("redis://")  # a URL's scheme is lower-case
        assert named == named.upper() or "|" in named, f"{option} {metavar}"


@pytest.mark.parametrize("words", commands(), ids=" ".join)
def test_every_help_has_an_example_of_its_command(words: list[str]) -> None:
    text = _help(words)
    examples = text.split("Examples:\n\n", 1)[1].split("\n\n", 1)[0]
    lines = examples.splitlines()
    assert lines and all(line.startswith(f"    kitefan {words[0]}") for line in lines), examples


def test_stream_comes_first_and_symbols_help_says_the_mode_suffix() -> None:
    listed = _help([]).split("Commands:\n", 1)[1].split()
    assert listed[0] == "stream"
    text = _help(["stream"])
    assert "--symbols SYM[:MODE],..." in text
    said = " ".join(text.split())
    assert "each with an optional :ltp, :quote or :full suffix for its mode" in said


def test_shell_completion_is_offered_and_completes() -> None:
    done = run_sync(*kitefan("--show-completion", "bash"))
    assert done.returncode == 0
    assert done.stdout.rstrip().endswith("complete -o default -F _kitefan_completion kitefan")
    env = {
        **os.environ,
        "_KITEFAN_COMPLETE": "complete_bash",
        "COMP_WORDS": "kitefan stream --format ",
        "COMP_CWORD": "3",
    }
    done = run_sync(*kitefan(), env=env)
    assert (done.returncode, done.stdout) == (0, "live\njsonl\ncsv\nnone\n")
