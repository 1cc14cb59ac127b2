"""``kitefan replay`` as a user runs it: a recording made from a real feed, served by the command
in its own process, recorded again by a client with the same config: the same frames, byte for
byte, on the same keys and connections. And its bad input: one ``error:`` line, an exit code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import processes
import pytest
import recordings
from websockets.asyncio.client import connect

from kitefan.config import load_config
from kitefan.manager import FeedManager
from kitefan.recording import Recorder, Recording
from kitefan.recording.format import KIND_FRAME
from kitefan.simulator import Account, Simulator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0
ACCOUNT = Account("alpha-api-key-0001", "alpha-access-token-0001", label="alpha")
INFY, TCS, SBIN, RELIANCE = 408065, 2953217, 779521, 738561
NIFTY, SENSEX = 256265, 265


def config(path: Path, url: str) -> Path:
    path.write_text(
        f'url = "{url}"\n'
        'mode = "quote"\n'
        "max_symbols_per_connection = 3\n"
        "[[keys]]\n"
        'id = "alpha"\n'
        f'api_key = "{ACCOUNT.api_key}"\n'
        f'access_token = "{ACCOUNT.access_token}"\n'
        "[symbols]\n"
        f"full = [{INFY}, {NIFTY}, {RELIANCE}]\n"
        f"quote = [{TCS}, {SENSEX}, {SBIN}]\n"
    )
    path.chmod(0o600)
    return path


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "KITEFAN_CONFIG"}


async def record(config_path: Path, path: Path, frames: int) -> None:
    """Stream ``config_path`` into a recording at ``path`` until it holds ``frames`` frames."""
    async with Recorder(path) as recorder, FeedManager(load_config(config_path)) as feed:
        events = feed.events()
        async with asyncio.timeout(TIMEOUT):
            async for item in events:
                recorder.add(item)
                if recorder.frames >= frames:
                    break
        events.close()


def frames_of(path: Path) -> list[tuple[str, int | None, bytes]]:
    return [
        (r.key, r.connection, r.body) for r in Recording(path).records() if r.kind == KIND_FRAME
    ]


def by_connection(
    frames: list[tuple[str, int | None, bytes]],
) -> dict[tuple[str, int | None], list[bytes]]:
    out: dict[tuple[str, int | None], list[bytes]] = {}
    for key, conn, body in frames:
        out.setdefault((key, conn), []).append(body)
    return out


@asynccontextmanager
async def replaying(*args: str) -> AsyncIterator[tuple[processes.Command, str]]:
    async with processes.started(
        *processes.kitefan("replay", *args, "--port", "0"), cwd=ROOT, env=environment()
    ) as process:
        assert process.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            first = (await process.stdout.readline()).decode()
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+\n", first), first
        yield process, first.strip()


async def stopped(process: processes.Command) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(TIMEOUT):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_record_replay_record_again_gives_the_same_frames(tmp_path: Path) -> None:
    first, second = tmp_path / "first.kfr", tmp_path / "second.kfr"
    async with Simulator([ACCOUNT], seed=4, rate=20.0) as sim:
        await record(config(tmp_path / "live.toml", sim.url), first, 40)
    recorded = frames_of(first)
    assert len(recorded) >= 40
    assert {(key, conn) for key, conn, _ in recorded} == {("alpha", 0), ("alpha", 1), ("alpha", 2)}
    async with replaying(str(first), "--speed", "4") as (process, url):
        await record(config(tmp_path / "replay.toml", url), second, len(recorded))
        code, out, err = await stopped(process)
    # Each connection's frames, in order (frames of one instant on different connections
    # arrive in either order, live as in the replay).
    assert by_connection(frames_of(second)) == by_connection(recorded)
    assert code == 0
    assert out == ""
    assert re.search(rf"recording {re.escape(str(first))}: [\d,]+ ticks in {len(recorded)} frames "
                     r"of 6 instruments, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d to ", err), err  # fmt: skip
    assert "replay at 4x the recorded pace; it starts once a client has subscribed" in err
    assert re.search(r"replay finished: \d+ instant\(s\), [\d]+ ticks, in 1 pass\(es\)", err), err
    assert "Traceback" not in err


async def test_bad_input_is_one_error_line_and_an_exit_code(tmp_path: Path) -> None:
    # 2023-11-15 10:15:31 to 10:15:32 IST.
    frames = recordings.market_frames([INFY], 3, start_s=1_700_023_531, gap_s=0.5)
    day = str(await recordings.write_recording(tmp_path / "day.kfr", frames))
    cases = [
        (["--speed", "fast"], 2, "error: --speed: expected N (times the recorded pace, more than "
                                 "0) or max, got 'fast'"),
        (["--speed", "0"], 2, "error: --speed: expected N (times the recorded pace, more than "
                              "0) or max, got '0'"),
        (["--from", "9:75"], 2, "error: --from: expected HH:MM (a time of day in IST, 00:00 to "
                                "23:59), got '9:75'"),
        (["--expire-after", "alpha:5"], 2, "error: --expire-after needs --config: without it "
                                           "every key and token is accepted"),
        (["--from", "10:16", "--to", "15:30"], 1, f"error: {day} holds no ticks between 10:16 and "
                                                  "15:30 IST: nothing to replay"),
    ]  # fmt: skip
    for args, expected_code, line in cases:
        code, out, err = await processes.run(
            *processes.kitefan("replay", day, *args), env=environment(), within=TIMEOUT
        )
        assert (code, out, err.strip().splitlines()[-1]) == (expected_code, "", line)
        assert "Traceback" not in err
    missing = str(tmp_path / "none.kfr")
    code, out, err = await processes.run(
        *processes.kitefan("replay", missing), env=environment(), within=TIMEOUT
    )
    assert (code, err.strip()) == (1, f"error: {missing}: no such file or directory")


async def test_from_and_to_serve_a_span_of_the_day(tmp_path: Path) -> None:
    # 10:14:59, 10:15:00 ... IST: --from 10:15 keeps all but the first.
    frames = recordings.market_frames([INFY, NIFTY], 4, start_s=1_700_023_499, gap_s=1.0)
    day = await recordings.write_recording(tmp_path / "day.kfr", frames)
    async with replaying(str(day), "--from", "10:15", "--speed", "max") as (process, url):
        async with connect(f"{url}/?api_key=any&access_token=thing") as ws:
            await ws.send(json.dumps({"a": "mode", "v": ["full", [INFY, NIFTY]]}))
            got = []
            async with asyncio.timeout(TIMEOUT):
                while len(got) < 3:
                    message = await ws.recv()
                    if len(message) > 1:
                        got.append(message)
        code, _, err = await stopped(process)
    assert got == [data for _, data in frames[1:]]
    assert code == 0
    assert "6 ticks in 3 frames of 2 instruments, 2023-11-15 10:15:00 to 2023-11-15 10:15:02" in err
