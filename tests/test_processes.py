"""The secret check every command of the tests goes through (``tests/processes.py``): it fails
loudly, never shows the secret it found, and no test starts a command around it."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import processes
import pytest
from hypothesis import given, settings, strategies as st
from processes import assert_no_secret, masked

TESTS = Path(__file__).resolve().parent


def test_a_secret_fails_with_a_masked_excerpt_of_where_it_is() -> None:
    text = "x" * 100 + "url=ws://h/?api_key=alpha-api-key-0001&access_token=alpha-access-token-0001"
    with pytest.raises(AssertionError) as caught:
        assert_no_secret(text, "stdout of `kitefan stream`")
    message = str(caught.value)
    assert message == (
        "stdout of `kitefan stream` shows 2 secret(s), the first at character 120: …'"
        + ("x" * 100 + "url=ws://h/?api_key=")[-60:]
        + "«secret al…»&access_token=«secret al…»'…"
    )
    assert "api-key-0001" not in message
    assert "token-0001" not in message


def test_a_secret_cut_by_the_excerpt_is_masked_whole() -> None:
    text = "SENTINEL-token-" + "y" * 200
    with pytest.raises(AssertionError) as caught:
        assert_no_secret(text.encode(), "stderr")
    assert "SENTINEL" not in str(caught.value)
    assert "«secret SE…»-token-yyy" in str(caught.value)


def test_masked_forms_and_other_text_pass() -> None:
    assert_no_secret("alpha: alph…01 demo…ey SENT…42 key 'alpha' connected", "stdout")
    assert masked("a SENTINEL-api-key-alpha b") == "a «secret SE…»-api-key-alpha b"


async def test_a_process_printing_a_secret_fails_the_test(tmp_path: Path) -> None:
    code = "import sys; print('token=' + 'demo-alpha-' + 'token-0001', file=sys.stderr)"
    with pytest.raises(AssertionError) as caught:
        await processes.run(sys.executable, "-c", code)
    assert str(caught.value).startswith("stderr of `python -c ")
    assert "«secret de…»" in str(caught.value)
    assert "demo-alpha-token-0001" not in str(caught.value)
    # Written to a file, it is found when the command is left.
    out = tmp_path / "out.txt"
    with pytest.raises(AssertionError) as caught:
        async with processes.started(
            sys.executable, "-c", code.replace(", file=sys.stderr", ""), stdout=out
        ) as command:
            assert await command.wait() == 0
    assert str(caught.value).startswith("stdout of `python -c ")
    assert "(out.txt) shows 1 secret(s)" in str(caught.value)


async def test_what_a_process_printed_is_returned_as_is() -> None:
    code, out, err = await processes.run(sys.executable, "-c", "print('clean'); exit(3)")
    assert (code, out, err) == (3, "clean\n", "")


# Nothing goes around it ----------------------------------------------------------------------

# What starts a command: these functions of these modules, and CliRunner.
STARTERS = {
    "asyncio": {"create_subprocess_exec", "create_subprocess_shell"},
    "subprocess": {"run", "Popen", "call", "check_call", "check_output", "getoutput"},
    "os": {"system", "popen", "spawnv", "spawnvp", "execv", "execvp", "posix_spawn"},
}


def around(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.relative_to(TESTS)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import) and any(a.name == "subprocess" for a in node.names):
            found.append(f"{where}: import subprocess")
        elif isinstance(node, ast.ImportFrom) and (
            node.module == "subprocess" or any(alias.name == "CliRunner" for alias in node.names)
        ):
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in STARTERS.get(node.value.id, set()):
                found.append(f"{where}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id == "CliRunner":
            found.append(f"{where}: CliRunner")
    return found


def test_every_command_of_the_tests_goes_through_processes() -> None:
    sources = sorted(p for p in TESTS.rglob("*.py") if p.name != "processes.py")
    assert len(sources) > 20
    assert [hit for path in sources for hit in around(path)] == []


@pytest.mark.parametrize("pattern", processes.SECRETS, ids=lambda p: p.pattern)
@settings(max_examples=50)
@given(data=st.data())
def test_every_secret_holds_an_anchor_so_the_fast_pass_misses_none(
    pattern: re.Pattern[str], data: st.DataObject
) -> None:
    secret = data.draw(st.from_regex(pattern, fullmatch=True))
    assert any(anchor in secret for anchor in processes.ANCHORS)
    with pytest.raises(AssertionError):
        assert_no_secret(f"x {secret} y".encode(), "a test")


def test_a_big_output_without_an_anchor_is_passed_by_substring_search_alone() -> None:
    line = b'{"type":"tick","key":"alpha","connection":0,"instrument_token":408065}\n'
    assert_no_secret(line * 200_000, "a big output")
