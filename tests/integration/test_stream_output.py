"""Where ``kitefan stream --format jsonl`` ticks go: every tick received is written or counted as
dropped, a stop is prompt even when the reader stopped reading, and a reader that resumes with a
backlog does not hold up the sockets.

The simulator runs in this process at its maximum rate, the stream in its own process, as a user
runs it; its stdout is a file or a pipe this test reads (or does not).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import sys
import termios
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import pytest
from polling import until
from processes import Command, kitefan, started
from simulators import nse
from streams import account, environment, write_config

from kitefan.control import ControlClient
from kitefan.simulator import Simulator

pytestmark = pytest.mark.integration

SUMMARY = re.compile(
    r"after (?P<seconds>[\d.]+) s: (?P<received>[\d,]+) ticks from .*?, "
    r"(?P<written>[\d,]+) written, (?P<dropped>[\d,]+) dropped"
)


def summary(stderr: str) -> dict[str, float]:
    match = SUMMARY.search(stderr)
    assert match, stderr
    return {name: float(value.replace(",", "")) for name, value in match.groupdict().items()}


@asynccontextmanager
async def max_rate() -> AsyncIterator[Simulator]:
    accounts = [account(k) for k in ("alpha", "bravo", "charlie")]
    async with Simulator(accounts, seed=3, rate=None, heartbeat_interval_s=0.2) as sim:
        yield sim


async def test_at_max_rate_every_tick_is_written_or_counted_dropped(tmp_path: Path) -> None:
    async with max_rate() as sim:
        config = write_config(tmp_path / "kitefan.toml", sim.url, full=nse(600))
        out_path = tmp_path / "out.jsonl"
        argv = kitefan("stream", "--config", str(config), "--format", "jsonl", "--duration", "3")
        async with started(*argv, env=environment(tmp_path), stdout=out_path) as process:
            async with asyncio.timeout(60):
                _, err = await process.communicate()
        assert process.returncode == 0, err
        figures = summary(err.decode())
        lines = out_path.read_bytes().splitlines()
        ticks = sum(1 for line in lines if line.startswith(b'{"type":"tick"'))
        assert figures["received"] > 10_000
        assert ticks == figures["written"]
        assert figures["written"] + figures["dropped"] == figures["received"]
        # The streaming time, not the start-up or the close.
        assert 3.0 <= figures["seconds"] < 3.5


async def test_sigterm_with_a_reader_that_stopped_reading_exits_promptly(tmp_path: Path) -> None:
    async with max_rate() as sim:
        config = write_config(tmp_path / "kitefan.toml", sim.url, full=nse(600))
        read_end, write_end = os.pipe()
        argv = kitefan("stream", "--config", str(config), "--format", "jsonl")
        try:
            async with started(*argv, env=environment(tmp_path), stdout=write_end) as process:
                os.close(write_end)
                # Streaming, and the pipe is full: nobody reads it.
                await until(lambda: _subscribed(sim, 600))
                await until(lambda: _pipe_full(read_end))
                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                async with asyncio.timeout(15):
                    _, err = await process.communicate()
                took = time.monotonic() - signalled
        finally:
            os.close(read_end)
        assert process.returncode == 0, err
        assert took < 5.0, f"exited {took:.1f} s after SIGTERM"
        text = err.decode()
        assert text.startswith("kitefan: terminated after ")
        figures = summary(text)
        assert figures["dropped"] > 0
        assert figures["written"] + figures["dropped"] == figures["received"]


async def _subscribed(sim: Simulator, tokens: int) -> bool:
    return sum(c.tokens_used for c in sim.connections()) >= tokens


async def _pipe_full(fd: int) -> bool:
    """Whether the pipe holds most of what fits in it (the writer is being held up)."""
    buf = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return int.from_bytes(buf, sys.byteorder) >= 60_000


async def test_a_resumed_slow_reader_leaves_the_stream_answering_and_connected(
    tmp_path: Path,
) -> None:
    async with max_rate() as sim:
        config = write_config(tmp_path / "kitefan.toml", sim.url, full=nse(600))
        env = environment(tmp_path)
        read_end, write_end = os.pipe()
        argv = kitefan("stream", "--config", str(config), "--format", "jsonl")
        reader = os.fdopen(read_end, "rb", buffering=0)
        async with started(*argv, env=env, stdout=write_end) as process:
            os.close(write_end)
            try:
                await _resume_and_ask(sim, process, reader, config, env)
            finally:
                process.send_signal(signal.SIGINT)
                async with asyncio.timeout(20):
                    _, err = await process.communicate()
                reader.close()
        assert process.returncode == 0, err
        figures = summary(err.decode())
        assert figures["written"] + figures["dropped"] == figures["received"]


async def _resume_and_ask(
    sim: Simulator, process: Command, reader: IO[bytes], config: Path, env: dict[str, str]
) -> None:
    read_end = reader.fileno()
    await until(lambda: _subscribed(sim, 600))
    await until(lambda: _pipe_full(read_end))
    # The reader stalls for two seconds: the stream's queue fills and sheds (counted).
    await asyncio.sleep(2.0)  # the stall itself is what is tested, not a wait for state
    loop = asyncio.get_running_loop()
    drained = loop.run_in_executor(None, _read_for, reader, 3.0)
    # While it reads the backlog, the stream's control socket answers within a second.
    for _ in range(5):
        asked = time.monotonic()
        async with asyncio.timeout(5):
            client = await ControlClient.connect(config, environ=env)
            async with client:
                stats = await client.stats()
        assert time.monotonic() - asked < 1.0
        await asyncio.sleep(0.3)
    read = await drained
    assert read > 1_000_000
    assert stats["totals"]["reconnects"] == 0
    assert stats["loop_lag"]["samples"] > 0
    assert process.returncode is None


def _read_for(reader: IO[bytes], seconds: float) -> int:
    """Read as fast as possible for ``seconds``; return the bytes read."""
    deadline = time.monotonic() + seconds
    total = 0
    while time.monotonic() < deadline:
        chunk = reader.read(1 << 16)
        if not chunk:
            break
        total += len(chunk)
    return total


async def test_a_full_disk_ends_the_stream_with_one_line(tmp_path: Path) -> None:
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        argv = kitefan("stream", "--demo", "--format", "jsonl", "--duration", "5")
        async with started(*argv, env=environment(tmp_path), stdout=full) as process:
            async with asyncio.timeout(60):
                _, err = await process.communicate()
    finally:
        os.close(full)
    assert process.returncode == 1
    assert err.decode() == (
        "error: cannot write the records: No space left on device; free space or write elsewhere\n"
    )
