"""The live dashboard as a user sees it: ``kitefan stream`` in a tmux pane of a given size, the
screen read back with ``tmux capture-pane -p``.

Each test runs its own tmux server (``-S``, a socket in a directory of its own) and its own
runtime directory, so tests do not see each other's streams. Screens are polled with a bound,
never slept on.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from processes import run_sync
from simulators import nse
from streams import ROOT, kitefan, simulator_fixture, write_config

from kitefan.simulator import Simulator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)"),
]


class Pane:
    """A command in a detached tmux session of ``width`` x ``height``."""

    def __init__(self, server: str, width: int, height: int) -> None:
        self.server = server
        self.width = width
        self.height = height

    def tmux(self, *args: str) -> str:
        """Run a tmux command; what it prints (the screen, for capture-pane) is checked for
        secrets as every command's output is."""
        done = run_sync("tmux", "-S", self.server, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screen(self) -> list[str]:
        lines = self.tmux("capture-pane", "-p", "-t", "kitefan").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        return lines

    async def until(
        self, predicate: Callable[[list[str]], bool], within: float = 30.0
    ) -> list[str]:
        """The screen, once ``predicate`` holds for it (polled every 0.1 s, for ``within`` s)."""
        lines = self.screen()
        try:
            async with asyncio.timeout(within):
                while not predicate(lines):
                    await asyncio.sleep(0.1)
                    lines = self.screen()
        except TimeoutError:
            raise AssertionError("the screen never matched:\n" + "\n".join(lines)) from None
        return lines


@contextmanager
def pane(args: list[str], env: dict[str, str], width: int, height: int) -> Iterator[Pane]:
    """``kitefan ARGS`` in a tmux pane; leaving stops it (Ctrl-C) and the tmux server."""
    directory = tempfile.mkdtemp(prefix="kitefan-tmux-")
    server = os.path.join(directory, "socket")
    view = Pane(server, width, height)
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "kitefan", *args])
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.isidentifier())
    # The shell stays after the command ends, so a failure's last screen can be read.
    view.tmux(
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "kitefan",
        "-x",
        str(width),
        "-y",
        str(height),
        # Without COLUMNS and LINES, which would override the pane's size.
        f"cd {shlex.quote(str(ROOT))} && env -u COLUMNS -u LINES {exports} TERM=xterm-256color "
        f"{command}; "
        "echo EXITED $?; sleep 600",
    )
    try:
        yield view
    finally:
        # Ctrl-C, and wait until the stream has ended (bounded): killing the server would send
        # it SIGHUP, which a stream takes as "apply the config again", not "stop".
        run_sync("tmux", "-S", server, "send-keys", "-t", "kitefan", "C-c")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("EXITED" in line for line in view.screen()):
            time.sleep(0.1)
        run_sync("tmux", "-S", server, "kill-server")
        shutil.rmtree(directory, ignore_errors=True)


def text(lines: list[str]) -> str:
    return "\n".join(lines)


def tick_rows(lines: list[str]) -> list[str]:
    """The ticks table's rows: a symbol, then a price."""
    return [line for line in lines if re.match(r"\S+\s+[\d,]+\.\d{2,4}\s", line)]


def ready(lines: list[str]) -> bool:
    """The dashboard is drawn, every connection up, and the ticks table full."""
    return "9/9 connections up" in text(lines) and "ticks by symbol: +" in text(lines)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)  # kitefan refuses a runtime directory others may enter
    return {
        "KITEFAN_RUNTIME_DIR": str(runtime),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }


async def test_at_80x24_the_header_keys_and_events_stay_with_fewer_rows(
    env: dict[str, str],
) -> None:
    with pane(["stream", "--demo"], env, 80, 24) as view:
        lines = await view.until(lambda s: ready(s) and bool(s) and "connected" in s[-1])
        assert len(lines) <= 24
        assert lines[0].startswith("kitefan demo  64 symbols on 3 keys, 9/9 connections up")
        rows = tick_rows(lines)
        assert len(rows) >= 5
        more = next(line for line in lines if line.startswith("ticks by symbol: +"))
        assert re.match(rf"ticks by symbol: \+{64 - len(rows)} more", more), more
        # The key states, with every key, and the latest events under their labelled zone.
        states = {line.split()[0]: line.split()[1] for line in lines if line[:5] in KEYS_PREFIX}
        assert set(states) == {"alpha", "bravo", "charlie"}
        assert set(states.values()) <= {"connected", "auth_failed", "reconnecting"}
        events = lines.index(next(line for line in lines if line.startswith("events (IST)")))
        assert events == len(lines) - 4  # the title, then the latest three, last on the screen
        for line in lines[events + 1 :]:
            assert re.match(r"\d\d:\d\d:\d\d (alpha|bravo|charlie)(#\d)? \w+", line), line
        assert "…" not in text(lines[:events]) and "..." not in text(lines)
        assert all(len(line) <= 80 for line in lines)


KEYS_PREFIX = ("alpha", "bravo", "charl")


async def test_at_200x50_values_are_whole_and_the_hidden_are_counted(
    env: dict[str, str],
) -> None:
    args = ["stream", "--demo", "--watch", "NSE:INFY", "--depth", "NFO:NIFTY26DECFUT"]
    with pane(args, env, 200, 50) as view:
        lines = await view.until(
            lambda s: "9/9 connections up" in text(s) and "depth NFO:NIFTY26DECFUT" in text(s)
        )
        assert len(lines) <= 50
        assert "…" not in text(lines)
        rows = tick_rows(lines)
        assert rows[0].split()[0] == "NSE:INFY"  # watched first
        header = next(line for line in lines if line.startswith("symbol "))
        assert header.split()[:8] == ["symbol", "ltp", "chg", "volume", "bid", "ask", "age", "key"]
        assert header.split()[8:11] == ["key", "state", "up"]  # the keys table beside
        assert f"ticks by symbol, watched first: +{64 - len(rows)} more" in text(lines)
        assert "distribution" in text(lines)
        futures = next(row for row in rows if row.startswith("NFO:NIFTY26DECFUT "))
        assert re.match(r"NFO:NIFTY26DECFUT\s+\d{2},\d{3}\.\d\d\s+[+-]\d\.\d\d%\s+\d", futures)


async def test_sort_movers_and_a_depth_of_a_chosen_symbol(env: dict[str, str]) -> None:
    with pane(["stream", "--demo", "--sort", "movers"], env, 120, 40) as view:
        lines = await view.until(lambda s: "ticks by movers: +" in text(s) and bool(tick_rows(s)))
        changes = [
            abs(float(m.group(1)))
            for row in tick_rows(lines)
            if (m := re.search(r"\s([+-]\d+\.\d\d)%\s", row))
        ]
        assert changes and changes == sorted(changes, reverse=True)


simulator = simulator_fixture(seed=3, rate=2.0)


async def test_added_symbols_appear_and_removed_ones_go_after_distribute(
    simulator: Simulator, tmp_path: Path, env: dict[str, str]
) -> None:
    tokens = nse(6)
    config = write_config(tmp_path / "kitefan.toml", simulator.url, quote=tokens[:4])
    names = [str(t) for t in tokens]
    with pane(["stream", "--config", str(config)], env, 120, 30) as view:
        lines = await view.until(lambda s: "all 4 symbols" in text(s))
        assert sorted(row.split()[0] for row in tick_rows(lines)) == sorted(names[:4])
        write_config(config, simulator.url, quote=[*tokens[1:4], *tokens[4:]])
        code, out, err = await kitefan(
            "distribute", "--config", str(config), env={**os.environ, **env}
        )
        assert (code, err) == (0, ""), out

        def changed(s: list[str]) -> bool:
            return sorted(row.split()[0] for row in tick_rows(s)) == sorted(names[1:])

        lines = await view.until(changed)
        assert "all 5 symbols" in text(lines)
        assert lines[0].startswith("kitefan  5 symbols on 3 keys")


async def test_with_redundancy_each_symbol_is_one_row_and_the_header_counts_it_once(
    simulator: Simulator, tmp_path: Path, env: dict[str, str]
) -> None:
    tokens = nse(6)
    config = write_config(tmp_path / "kitefan.toml", simulator.url, full=tokens, redundancy=2)
    with pane(["stream", "--config", str(config)], env, 120, 30) as view:
        lines = await view.until(lambda s: "all 6 symbols" in text(s))
        assert sorted(row.split()[0] for row in tick_rows(lines)) == sorted(map(str, tokens))
        assert lines[0].startswith("kitefan  6 symbols on 3 keys, each on 2, 9/9 connections up")


async def test_debug_log_lines_go_to_the_log_file_not_over_the_dashboard(
    env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "kitefan.log"
    with pane(["stream", "--demo", "--debug", "--log-file", str(log)], env, 100, 30) as view:
        lines = await view.until(ready)
        assert not [line for line in lines if " DEBUG " in line or " INFO " in line]
        assert lines[0].startswith("kitefan demo  64 symbols")
    logged = log.read_text().splitlines()
    assert logged
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST (DEBUG|INFO|WARNING) kitefan\.", logged[0])
    assert "demo-alpha-token" not in log.read_text()


async def test_a_publish_failure_shows_in_the_events_panel_and_nothing_draws_over_it(
    env: dict[str, str],
) -> None:
    """Issue 12, item 5: a warning reaches the dashboard's events panel, and no stderr text
    (a warning: line, a log line, a traceback) is drawn over the dashboard."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on: Redis refuses at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = "SENTINEL-redis-pw-1234"
    url = f"redis://:{secret}@127.0.0.1:{port}/0"
    with pane(["stream", "--demo", "--publish", url], env, 160, 40) as view:
        shown = f"* publish_failed: cannot publish to Redis at redis://:SENT…34@127.0.0.1:{port}/0"
        lines = await view.until(lambda s: ready(s) and shown in text(s))
        assert len(lines) <= 40
        assert lines[0].startswith("kitefan demo  64 symbols on 3 keys")
        events = lines.index(next(line for line in lines if line.startswith("events (IST)")))
        (warning,) = [line for line in lines if shown in line]
        assert lines.index(warning) > events  # in the events panel, as one of its lines
        assert re.match(r"\d\d:\d\d:\d\d \* publish_failed: ", warning), warning
        # Nothing of stderr on the screen: no "warning:" / "error:" line, no log line, no trace.
        assert not [
            line
            for line in lines
            if re.match(r"\s*(warning|error|Traceback|kitefan:)", line)
            or re.search(r" (DEBUG|INFO|WARNING|ERROR) kitefan", line)
        ]
        assert secret not in text(lines)
        # The dashboard goes on drawing over the same rows: still its header, first.
        later = await view.until(lambda s: bool(s) and s != lines and ready(s))
        assert later[0].startswith("kitefan demo  64 symbols on 3 keys")
        # A line written to stderr under the dashboard is soon drawn over, but it scrolls the
        # pane, and what scrolled off the top stays in tmux's history: there must be none.
        assert view.tmux("display-message", "-p", "-t", "kitefan", "#{history_size}") == "0\n"
