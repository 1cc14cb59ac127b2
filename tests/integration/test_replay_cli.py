"""``kitefan replay`` as a user runs it: ``kitefan stream --demo --record``, served by the command
in its own process, recorded again by ``kitefan stream --config ... --record`` with the demo's
config: the same frames, byte for byte, on the same keys and connections. A span of the day. And
its bad input: one ``error:`` line, an exit code."""

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

from kitefan.codec import frame_of_packets
from kitefan.config import demo_config_path, load_config
from kitefan.models import Mode
from kitefan.recording import Recording
from kitefan.recording.format import KIND_FRAME

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0
INFY, NIFTY = 408065, 256265


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "KITEFAN_CONFIG"}


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
    code, _, err = await processes.run(
        *processes.kitefan("stream", "--demo", "--record", str(first), "--format", "none",
                           "--duration", "2"),
        env=environment(), within=TIMEOUT,
    )  # fmt: skip
    assert code == 0, err
    recorded = frames_of(first)
    ticks = sum(int.from_bytes(body[:2], "big") for _, _, body in recorded)
    demo = load_config(demo_config_path())
    assert {(key, conn) for key, conn, _ in recorded} == {
        (key.id, n) for key in demo.keys for n in range(3)
    }
    async with replaying(str(first), "--speed", "4") as (process, url):
        # The demo config, pointed at the replay.
        text = demo_config_path().read_text().replace('"ws://127.0.0.1:8765"', f'"{url}"')
        text = text.replace('"demo-instruments.csv"', f'"{demo.instruments}"')
        again = tmp_path / "replay.toml"
        again.write_text(text)
        again.chmod(0o600)
        async with processes.started(
            *processes.kitefan("stream", "--config", str(again), "--record", str(second),
                               "--format", "jsonl"),
            env=environment(),
        ) as stream:  # fmt: skip
            assert stream.stdout is not None
            seen = 0
            async with asyncio.timeout(TIMEOUT):
                while seen < ticks:
                    line = await stream.stdout.readline()
                    assert line, "the stream ended"
                    seen += line.startswith(b'{"type":"tick"')
            stream.send_signal(signal.SIGTERM)
            async with asyncio.timeout(TIMEOUT):
                await stream.wait()
        assert stream.returncode == 0
        code, out, err = await stopped(process)
    # Each connection's frames, in order (frames of one instant on different connections
    # arrive in either order, live as in the replay), byte for byte; but for the tokens the
    # config streams in ltp: the demo's first frames carry them as quote packets (subscribed
    # in quote, then set to ltp), which the replay serves as the ltp its client asked for.
    ltp = {spec.token.to_bytes(4, "big") for spec in demo.symbols if spec.mode is Mode.LTP}
    assert ltp
    expected = {
        where: [cut(body, ltp) for body in bodies]
        for where, bodies in by_connection(recorded).items()
    }
    assert by_connection(frames_of(second)) == expected
    assert code == 0
    assert out == ""
    said = rf"recording {re.escape(str(first))}: {ticks:,} ticks in {len(recorded)} frames of 64 "
    assert re.search(said + r"instruments, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d to ", err), err
    assert "replay at 4x the recorded pace; it starts once a client has subscribed" in err
    assert re.search(
        rf"replay finished: \d+ instant\(s\) of {ticks} recorded ticks, in 1 pass\(es\)", err
    )
    assert "Traceback" not in err


def cut(frame: bytes, ltp: set[bytes]) -> bytes:
    """The frame with the packets of ``ltp`` tokens cut to their first 8 bytes."""
    packets, offset = [], 2
    for _ in range(int.from_bytes(frame[:2], "big")):
        length = int.from_bytes(frame[offset : offset + 2], "big")
        packet = frame[offset + 2 : offset + 2 + length]
        packets.append(packet[:8] if packet[:4] in ltp else packet)
        offset += 2 + length
    return frame_of_packets(packets)


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
            got: list[bytes | str] = []
            async with asyncio.timeout(TIMEOUT):
                while len(got) < 3:
                    message = await ws.recv()
                    if len(message) > 1:
                        got.append(message)
        code, _, err = await stopped(process)
    assert got == [data for _, data in frames[1:]]
    assert code == 0
    assert "6 ticks in 3 frames of 2 instruments, 2023-11-15 10:15:00 to 2023-11-15 10:15:02" in err
