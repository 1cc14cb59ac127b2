"""The simulator serving a recording (frames built in memory with the codec), as clients see it:
the recorded frames at the recorded pace or as fast as read, each connection its tokens and
modes, the lacking-mode text, any credentials, the limits, heartbeats and faults kept."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from kitefan.codec import decode_frame, error_message, frame_of_packets
from kitefan.models import Mode
from kitefan.simulator import Market, Simulator
from kitefan.simulator.recorded import RecordedFrame, Replay, index_frames

pytestmark = pytest.mark.integration

TIMEOUT = 20.0
NOW = 1_700_023_531
T0 = NOW * 1_000_000_000
INFY, TCS, SBIN = 408065, 2953217, 779521
NIFTY = 256265


def recording(
    n: int, gap_ms: int, tokens: list[int], mode: Mode = Mode.FULL
) -> list[RecordedFrame]:
    market = Market(seed=11)
    frames = []
    for i in range(n):
        packets = []
        for token in tokens:
            instrument = market.instrument(token, NOW)
            instrument.step(NOW + i)
            packets.append(instrument.packet(mode))
        frames.append(RecordedFrame(T0 + i * gap_ms * 1_000_000, frame_of_packets(packets)))
    return frames


@asynccontextmanager
async def replaying(
    frames: list[RecordedFrame], *, speed: float | None = 1.0, loop: bool = False, **options: object
) -> AsyncIterator[Simulator]:
    replay = Replay(lambda: frames, index_frames(frames), speed=speed, loop=loop)
    async with Simulator(
        [],
        replay=replay,
        any_credentials=True,
        heartbeat_interval_s=0.2,
        **options,  # type: ignore[arg-type]  # each case passes its own options
    ) as sim:
        yield sim


def url(sim: Simulator, api_key: str = "any-key", token: str = "whatever") -> str:
    return f"{sim.url}/?api_key={api_key}&access_token={token}"


async def send(ws: ClientConnection, action: str, value: object) -> None:
    await ws.send(json.dumps({"a": action, "v": value}))


async def frames_of(ws: ClientConnection, n: int) -> list[bytes]:
    """The next ``n`` tick frames, heartbeats skipped; texts fail the test."""
    got: list[bytes] = []
    async with asyncio.timeout(TIMEOUT):
        while len(got) < n:
            message = await ws.recv()
            assert isinstance(message, bytes), message
            if len(message) > 1:
                got.append(message)
    return got


async def closing(ws: ClientConnection) -> ConnectionClosed:
    """Read until the connection closes; how it closed."""
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed


async def test_a_client_gets_the_recorded_frames_at_the_recorded_pace() -> None:
    frames = recording(3, 300, [INFY, TCS, NIFTY])
    async with replaying(frames) as sim, connect(url(sim)) as ws:
        asked = time.monotonic()
        await send(ws, "subscribe", [INFY, TCS, NIFTY])
        await send(ws, "mode", ["full", [INFY, TCS, NIFTY]])
        got = await frames_of(ws, 3)
        last = time.monotonic()
        assert got == [f.data for f in frames]
        # The replay starts after a quiet quarter second, then keeps the recorded 0.6 s.
        assert last - asked >= 0.25 + 0.6
        async with asyncio.timeout(TIMEOUT):
            await sim.wait_until(lambda: sim.replay_finished)
            assert await ws.recv() == b"\x00"  # heartbeats once the recording is over
        (conn,) = sim.connections()
        assert conn.ticks_sent == 9
        assert conn.frames_sent == 3
        assert conn.texts_sent == 0


async def test_at_maximum_speed_every_tick_arrives_and_each_connection_gets_its_tokens() -> None:
    tokens = [(i << 8) | 1 for i in range(1, 201)]
    frames = recording(400, 1000, tokens)  # 80,000 ticks over 400 s recorded
    async with (
        replaying(frames, speed=None) as sim,
        connect(url(sim, "key-a")) as a,
        connect(url(sim, "key-b")) as b,
    ):
        await send(a, "mode", ["full", tokens])
        await send(b, "mode", ["ltp", tokens[:10]])
        got_a, got_b = await asyncio.gather(frames_of(a, 400), frames_of(b, 400))
    assert got_a == [f.data for f in frames]
    for recorded, served in zip(frames, got_b, strict=True):
        assert [(t.instrument_token, t.values) for t in decode_frame(served)] == [
            (t.instrument_token, t.values[:2]) for t in decode_frame(recorded.data)[:10]
        ]


async def test_a_mode_the_recording_lacks_is_said_once_and_the_best_one_served() -> None:
    frames = recording(2, 50, [INFY, TCS], Mode.QUOTE)
    async with replaying(frames) as sim, connect(url(sim)) as ws:
        await send(ws, "mode", ["full", [INFY]])
        async with asyncio.timeout(TIMEOUT):
            text = await ws.recv()
        assert text == error_message(
            "The recording has no full packets of 408065 (quote); "
            "each is sent in the best mode it has."
        )
        await send(ws, "mode", ["full", [INFY]])
        got = await frames_of(ws, 2)  # no second text before them
        assert [[(t.instrument_token, t.kind) for t in decode_frame(f)] for f in got] == [
            [(INFY, 44)],
            [(INFY, 44)],
        ]


async def test_loop_starts_again_and_a_late_client_gets_the_current_packets() -> None:
    frames = recording(3, 20, [INFY, SBIN], Mode.QUOTE)
    async with replaying(frames, speed=5.0, loop=True) as sim, connect(url(sim)) as ws:
        await send(ws, "subscribe", [INFY, SBIN])
        got = await frames_of(ws, 7)
        assert got == [f.data for f in frames * 2] + [frames[0].data]
        async with connect(url(sim, "another-key")) as late:
            await send(late, "subscribe", [SBIN])
            (snapshot,) = await frames_of(late, 1)
            assert decode_frame(snapshot)[0].instrument_token == SBIN


async def test_any_credentials_still_meet_the_limits_and_the_faults() -> None:
    frames = recording(2, 50, [INFY])
    async with replaying(frames, max_connections_per_key=1) as sim:
        async with connect(url(sim, "replay-key-0001", "t1")) as ws:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url(sim, "replay-key-0001", "t2")):
                    pass
            assert refused.value.response.status_code == 429
            async with connect(url(sim, "replay-key-0002", "t3")) as other:
                await sim.wait_for_connections(2)
                # Keys are named masked, as every key the simulator was not given a label for.
                assert sorted(c.label for c in sim.connections()) == ["repl…01", "repl…02"]
                await sim.drop_connections()
                closed = await closing(other)
                assert isinstance(closed, ConnectionClosedError)
                assert closed.rcvd is None  # 1006: no close frame
            assert isinstance(await closing(ws), ConnectionClosedError)
        with pytest.raises(InvalidStatus) as missing:
            async with connect(f"{sim.url}/?api_key=k3"):
                pass
        assert missing.value.response.status_code == 400


def test_a_simulator_needs_accounts_unless_it_accepts_any() -> None:
    with pytest.raises(ValueError, match="at least one account"):
        Simulator([])
    Simulator([], any_credentials=True)
