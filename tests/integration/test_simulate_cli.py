"""``kitefan simulate`` as a user runs it: a subprocess, its stdout, its stderr, its exit code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import processes
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from kitefan.codec import decode_frame

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0
CONFIG = """\
[[keys]]
id = "acct1"
api_key = "cli-test-api-key-1"
access_token = "cli-test-access-token-1"

[[keys]]
id = "acct2"
api_key = "cli-test-api-key-2"
access_token = "cli-test-access-token-2"
"""
SECRETS = ("cli-test-api-key-1", "cli-test-access-token-1", "cli-test-api-key-2")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "kitefan.toml"
    path.write_text(CONFIG)
    return path


@dataclass
class Running:
    process: processes.Command
    url: str

    def ticker(self, n: int = 1) -> str:
        return f"{self.url}/?api_key=cli-test-api-key-{n}&access_token=cli-test-access-token-{n}"


def environment(**extra: str) -> dict[str, str]:
    """This environment without a default config, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "KITEFAN_CONFIG"}
    return {**env, **extra}


async def run(*args: str) -> tuple[int, str, str]:
    """Run ``python -m kitefan simulate ARGS`` to its end."""
    return await processes.run(
        *processes.kitefan("simulate", *args), cwd=ROOT, env=environment(), within=TIMEOUT
    )


@asynccontextmanager
async def serving(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Running]:
    """Start ``python -m kitefan simulate ARGS``, read its URL; the caller must stop it."""
    async with processes.started(
        *processes.kitefan("simulate", *args), cwd=ROOT, env=env or environment()
    ) as process:
        assert process.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            first = (await process.stdout.readline()).decode()
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+\n", first), first
        yield Running(process, first.strip())


async def closing(ws: ClientConnection) -> ConnectionClosed:
    """Read until the connection closes; return how it closed."""
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed


async def stop(running: Running, signum: int) -> tuple[int, str, str]:
    running.process.send_signal(signum)
    async with asyncio.timeout(TIMEOUT):
        out, err = await running.process.communicate()
    assert running.process.returncode is not None
    return running.process.returncode, out.decode(), err.decode()


async def test_prints_its_url_first_serves_ticks_and_exits_0_on_ctrl_c(config: Path) -> None:
    async with serving("--config", str(config), "--port", "0") as running:
        async with connect(running.ticker()) as ws:
            await ws.send(json.dumps({"a": "mode", "v": ["full", [408065, 256265]]}))
            async with asyncio.timeout(TIMEOUT):
                frame = await ws.recv()
                while len(frame) < 2:
                    frame = await ws.recv()
            assert isinstance(frame, bytes)
            assert [(t.instrument_token, t.kind) for t in decode_frame(frame)] == [
                (408065, 184),
                (256265, 32),
            ]
        code, out, err = await stop(running, signal.SIGINT)
    assert code == 0
    assert out == ""  # the URL was the only line
    assert re.search(r"connection 1 opened: key acct1 from 127\.0\.0\.1:\d+", err)
    assert "stopped: 1 connection(s) served" in err
    # Each line stamped with the time in IST, labelled (the machine's zone plays no part).
    assert all(re.match(r"\d\d:\d\d:\d\d IST ", line) for line in err.splitlines()), err
    assert "Traceback" not in err
    for secret in SECRETS:
        assert secret not in out + err


async def test_the_demo_config_and_sigterm(tmp_path: Path) -> None:
    async with serving("--demo", "--port", "0") as running:
        demo = "api_key=demo-alpha-key&access_token=demo-alpha-token-0001"
        async with connect(f"{running.url}/?{demo}") as ws:
            async with asyncio.timeout(TIMEOUT):
                assert await ws.recv() == b"\x00"
        code, _, err = await stop(running, signal.SIGTERM)
    assert code == 0
    assert "key alpha" in err


async def test_without_config_or_demo_the_default_config_path_rule_applies(config: Path) -> None:
    async with serving("--port", "0", env=environment(KITEFAN_CONFIG=str(config))) as running:
        async with connect(running.ticker(2)) as ws:
            async with asyncio.timeout(TIMEOUT):
                assert await ws.recv() == b"\x00"
        code, _, err = await stop(running, signal.SIGINT)
    assert code == 0
    assert "key acct2" in err
    code, out, err = await run("--port", "0")
    assert (code, out) == (3, "")
    assert err.startswith("error: no config: pass --config PATH")
    assert err.count("\n") == 1


async def test_faults_from_the_command_line(config: Path) -> None:
    args = (
        "--config",
        str(config),
        "--port",
        "0",
        "--drop-every",
        "0.5",
        "--drop-packets",
        "acct1:3",
    )
    async with serving(*args, "--expire-after", "acct2:0.2") as running:
        async with connect(running.ticker(1)) as ws:
            closed = await closing(ws)
            assert isinstance(closed, ConnectionClosedError)
            assert closed.rcvd is None  # dropped: no close frame
        # The expiry (0.2 s) came before that first drop (0.5 s).
        with pytest.raises(InvalidStatus) as refused:
            async with connect(running.ticker(2)):
                pass
        assert refused.value.response.status_code == 403
        code, _, err = await stop(running, signal.SIGINT)
    assert code == 0
    assert "fault planned: drop every connection every 0.5s" in err
    assert "fault planned: key 'acct1' loses 1 in 3 packets it shares with another key" in err
    assert "fault: on key acct1, 1 in 3 shared packets lost" in err
    assert "fault: the access token of key acct2 expired" in err
    assert "refused key acct2 with 403 Forbidden: invalid or expired access token" in err
    for secret in SECRETS:
        assert secret not in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--config", "{missing}"],
            3,
            "error: {missing}: cannot read: No such file or directory "
            "(`kitefan init {missing}` writes a starter config there)",
        ),
        (
            ["--config", "{config}", "--silent-after", "soon"],
            2,
            "error: --silent-after: expected a number of seconds (0 or more), got 'soon'",
        ),
        (
            ["--config", "{config}", "--expire-after", "zulu:5"],
            2,
            "error: --expire-after: no key is called 'zulu' (keys: acct1, acct2)",
        ),
        (
            ["--config", "{config}", "--drop-packets", "zulu:5"],
            2,
            "error: --drop-packets: no key is called 'zulu' (keys: acct1, acct2)",
        ),
        (
            ["--config", "{config}", "--rate", "fast"],
            2,
            "error: --rate: expected HZ (packets per instrument per second, more than 0) or max, "
            "got 'fast'",
        ),
        (["--config", "{config}", "--demo"], 2, "error: --config and --demo exclude each other"),
    ],
)
async def test_bad_input_is_one_line_on_stderr_and_an_exit_code(
    config: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    values = {"config": str(config), "missing": str(tmp_path / "missing.toml")}
    returned, out, err = await run(*(arg.format(**values) for arg in args))
    assert (returned, out, err) == (code, "", message.format(**values) + "\n")


async def test_a_port_in_use_is_one_line_and_exit_1(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await run("--config", str(config), "--port", str(port))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1


UNUSED_VARS = """\
url = "${KITEFAN_TEST_UNSET_URL}"
api_root = "${KITEFAN_TEST_UNSET_ROOT}"

[[keys]]
id = "acct1"
api_key = "cli-test-api-key-1"
access_token = "${KITEFAN_TEST_TOKEN}"

[publish]
url = "${KITEFAN_TEST_UNSET_REDIS}"
"""


async def test_an_unset_variable_of_a_setting_it_does_not_use_is_no_problem(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kitefan.toml"
    path.write_text(UNUSED_VARS)
    env = environment(KITEFAN_TEST_TOKEN="cli-test-access-token-1")
    async with serving("--config", str(path), "--port", "0", env=env) as running:
        async with connect(running.ticker(1)) as ws:
            async with asyncio.timeout(TIMEOUT):
                assert await ws.recv() == b"\x00"
        code, _, err = await stop(running, signal.SIGINT)
    assert code == 0
    assert "key acct1" in err
    # The keys it does use are still checked.
    code, out, err = await run("--config", str(path), "--port", "0")
    assert (code, out) == (3, "")
    assert err == (
        f"error: {path}: keys[0].access_token: environment variable KITEFAN_TEST_TOKEN is not set\n"
    )
