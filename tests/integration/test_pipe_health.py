"""Health in pipe mode, actionable connection failures, and two demos at once, as users run them.

Issue 12, items 5, 6 and 9: ``kitefan stream --format jsonl|none`` says what goes wrong on stderr
as ``warning:`` lines naming the key (no Python log lines); a url with nothing listening says the
address, what happened, when the next try is and what to check; every key refused gives only
the token advice; each demo has its own control socket, and ``kitefan stats`` picks with --pid.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from pathlib import Path

import processes
import pytest
from simulators import KEYS, nse
from streams import ROOT, account, environment, kitefan, write_config

from kitefan.config import demo_config_path
from kitefan.control import socket_name
from kitefan.simulator import Simulator

pytestmark = pytest.mark.integration


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_nothing_listening_is_one_warning_saying_where_what_when_and_what_to_check(
    tmp_path: Path,
) -> None:
    port = closed_port()
    config = write_config(
        tmp_path / "kitefan.toml", f"ws://127.0.0.1:{port}", quote=nse(1), keys=["alpha"]
    )
    code, out, err = await kitefan(
        "stream",
        "--config",
        str(config),
        "--format",
        "none",
        "--duration",
        "2",
        env=environment(tmp_path),
    )
    assert (code, out) == (0, "")
    lines = err.splitlines()
    assert re.fullmatch(
        rf"warning: key alpha, connection 0: cannot connect: connection refused by "
        rf"127\.0\.0\.1:{port}: nothing listens there; check the url's host and port, and that "
        r"the server runs; next try in \d+\.\d s",
        lines[0],
    ), lines[0]
    assert lines[-1].startswith("kitefan: duration reached after 2.0 s: 0 ticks from 1 keys")
    # Its repeats are folded into one count, and no line is a Python log line.
    assert all(
        line.startswith(("warning: key alpha, connection 0: cannot connect: ", "kitefan: "))
        for line in lines
    ), err
    assert not re.search(r"\d\d:\d\d:\d\d(,\d+)? (IST )?(WARNING|ERROR|INFO)", err)


async def test_every_key_refused_is_only_the_token_advice(tmp_path: Path) -> None:
    # The simulator knows the keys with other tokens: every key is refused with HTTP 403.
    async with Simulator([account(k, generation=2) for k in KEYS]) as sim:
        config = write_config(tmp_path / "kitefan.toml", sim.url, quote=nse(30))
        code, out, err = await kitefan(
            "stream",
            "--config",
            str(config),
            "--format",
            "jsonl",
            "--duration",
            "10",
            env=environment(tmp_path),
        )
    assert code == 4
    assert err == (
        "error: every key was refused with HTTP 403: their access tokens are invalid or "
        "expired; put fresh tokens in the config\n"
    )
    assert "re-plan" not in out and "capacity" not in out


async def test_two_demos_run_at_once_and_stats_picks_one_by_pid(tmp_path: Path) -> None:
    env = {**os.environ, "KITEFAN_RUNTIME_DIR": str(tmp_path)}
    demo = ("stream", "--demo", "--format", "none", "--duration", "60")
    async with (
        processes.started(*processes.kitefan(*demo), env=env, cwd=ROOT) as first,
        processes.started(*processes.kitefan(*demo), env=env, cwd=ROOT) as second,
    ):
        pids = sorted((first.pid, second.pid))
        sockets = {tmp_path / socket_name(demo_config_path(), pid) for pid in pids}
        async with asyncio.timeout(30):
            while not all(path.exists() for path in sockets):  # noqa: ASYNC110 - other processes
                await asyncio.sleep(0.05)
        code, out, err = await kitefan("stats", "--demo", env=env)
        assert (code, out) == (1, "")
        assert err == (
            f"error: 2 streams of {demo_config_path().resolve()} are running (pids {pids[0]}, "
            f"{pids[1]}): pick one with --pid PID\n"
        )
        code, out, err = await kitefan(
            "stats", "--demo", "--pid", str(pids[1]), "--format", "json", env=env
        )
        assert (code, err) == (0, "")
        assert '"keys":[{"id":"alpha"' in out
        for command in (first, second):
            command.send_signal(signal.SIGINT)
        for command in (first, second):
            assert await command.wait() == 0
