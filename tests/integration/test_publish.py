"""Publishing to a real Redis: every frame an XADD entry, byte-exact; events with their JSON
record; JSON ticks; Redis killed and restarted under a live feed; the password never shown.

The simulator and the feed run in the test's process, beside a second consumer of the same feed
(what ``kitefan stream`` would print); ``redis-server`` runs on a free loopback port
(:mod:`redisserver`)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from collections.abc import Callable, Sequence

import pytest
from app_configs import app_config
from polling import eventually
from redisserver import running_redis
from simulators import simulator

from kitefan.broker import decode_entry, symbols_key
from kitefan.config import (
    AppConfig,
    PublishConfig,
    SymbolSpec,
    Tuning,
    parse_redis_url,
)
from kitefan.events import Event, Status, StatusEvent, TickBatch
from kitefan.manager import EventStream, FeedManager
from kitefan.models import Mode, PacketKind
from kitefan.publish import Publisher
from kitefan.render.records import json_lines, status_record
from kitefan.retry import Backoff
from kitefan.streams import Streams

pytestmark = pytest.mark.integration

KEYS = ("alpha", "bravo")
FAST = Tuning(
    connect_timeout_s=2.0,
    liveness_timeout_s=1.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    backoff_jitter=0.1,
)
FLUSH_S = 10.0
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def symbols() -> list[SymbolSpec]:
    """Every packet kind: stocks (segment 1) and indices (segment 9) in each mode."""
    out = []
    for i, mode in enumerate((Mode.LTP, Mode.QUOTE, Mode.FULL)):
        for j in range(3):
            stock = ((2000 + 10 * i + j) << 8) | 1
            index = ((3000 + 10 * i + j) << 8) | 9
            out.append(SymbolSpec(stock, f"NSE:S{i}{j}", mode))
            out.append(SymbolSpec(index, f"NSE:I{i}{j}", mode))
    return out


def make_config(url: str) -> AppConfig:
    return app_config(KEYS, symbols(), url=url, tuning=FAST)


def packet_lengths(frame: bytes) -> list[int]:
    """The packet lengths of a frame, read as the README's layout says."""
    (count,) = struct.unpack_from(">H", frame, 0)
    offset, lengths = 2, []
    for _ in range(count):
        (length,) = struct.unpack_from(">H", frame, offset)
        lengths.append(length)
        offset += 2 + length
    assert offset == len(frame)
    return lengths


async def collect(stream: EventStream[Event], into: list[Event], until: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        async for item in stream:
            into.append(item)
            if until():
                return


def kinds(items: Sequence[Event]) -> set[int]:
    return {length for i in items if isinstance(i, TickBatch) for length in packet_lengths(i.frame)}


async def test_every_frame_is_one_entry_byte_exact_for_every_packet_kind() -> None:
    async with running_redis() as redis, simulator(seed=3, keys=KEYS, rate=20.0) as sim:
        config = make_config(sim.url)
        target = PublishConfig(parse_redis_url(redis.url), stream="test:frames", maxlen=100_000)
        async with FeedManager(config) as feed:
            local = feed.events()
            publisher = Publisher(
                target,
                name_of=feed.name_of,
                symbols=lambda: {s.token: s.name for s in config.symbols},
            )
            # A stop's flush is bounded (1.5 s by default; what is in flight then counts as
            # dropped): these tests compare every entry, so a loaded machine gets longer.
            task = asyncio.get_running_loop().create_task(
                publisher.run(feed.events(), flush_s=FLUSH_S)
            )
            seen: list[Event] = []
            await collect(
                local,
                seen,
                lambda: (
                    kinds(seen) == {k.value for k in PacketKind}
                    and sum(isinstance(i, TickBatch) for i in seen) >= 60
                ),
            )
            await feed.close()
            seen.extend(local.drain())
            await asyncio.wait_for(task, FLUSH_S + 10)
        client = redis.client()
        try:
            entries = await client.xrange("test:frames")
            names = await client.hgetall(symbols_key("test:frames"))
        finally:
            await client.aclose()

    batches = [i for i in seen if isinstance(i, TickBatch)]
    published = [fields for _, fields in entries if b"frame" in fields]
    node = f"{socket.gethostname()}:{os.getpid()}".encode()
    assert [
        (f[b"key"], f[b"connection"], f[b"node"], f[b"received_at"], f[b"frame"]) for f in published
    ] == [
        (
            b.key.encode(),
            str(b.connection).encode(),
            node,
            b"%.6f" % b.received_wall,
            b.frame,
        )
        for b in batches
    ]
    assert {len(f) for f in published} == {5}
    assert kinds(batches) == {8, 28, 32, 44, 184}
    decoded = [decode_entry(i, f, 0.0).item for i, f in entries if b"frame" in f]
    assert [d.ticks for d in decoded if isinstance(d, TickBatch)] == [b.ticks for b in batches]
    # Events: the JSON record of --format jsonl, and rebuilt equal.
    events = [i for i in seen if not isinstance(i, TickBatch)]
    event_entries = [(i, f) for i, f in entries if b"event" in f]
    assert [f[b"event"].decode() for _, f in event_entries] == [
        _dumps(status_record(e)) for e in events
    ]
    assert [decode_entry(i, f, 0.0).item for i, f in event_entries] == events
    assert any(isinstance(e, StatusEvent) and e.state == "connected" for e in events)
    assert {int(k): v.decode() for k, v in names.items()} == {
        s.token: s.name for s in config.symbols
    }
    stats = publisher.stats()
    # Both streams were handed the same frames: what the local one dropped (a frame reaching the
    # feed as it closes) the publisher's dropped too, and everything else reached Redis, the batch
    # in flight at the stop included (the flush waits for Redis's answer to it).
    assert (stats.published_ticks, stats.dropped_ticks, stats.dropped_events) == (
        sum(b.count for b in batches),
        local.dropped_ticks,
        0,
    )
    assert stats.published_entries == len(entries)
    assert (stats.state, stats.reconnects, stats.buffered_entries) == ("connected", 0, 0)


async def test_json_entries_hold_the_records_jsonl_writes() -> None:
    async with running_redis() as redis, simulator(seed=3, keys=KEYS, rate=20.0) as sim:
        config = make_config(sim.url)
        target = PublishConfig(parse_redis_url(redis.url), format="json")
        async with FeedManager(config) as feed:
            local = feed.events()
            publisher = Publisher(target, name_of=feed.name_of)
            # A stop's flush is bounded (1.5 s by default; what is in flight then counts as
            # dropped): these tests compare every entry, so a loaded machine gets longer.
            task = asyncio.get_running_loop().create_task(
                publisher.run(feed.events(), flush_s=FLUSH_S)
            )
            seen: list[Event] = []
            await collect(local, seen, lambda: sum(isinstance(i, TickBatch) for i in seen) >= 20)
            await feed.close()
            seen.extend(local.drain())
            await asyncio.wait_for(task, FLUSH_S + 10)
        client = redis.client()
        try:
            entries = await client.xrange("kitefan:frames")
        finally:
            await client.aclose()
    batches = [i for i in seen if isinstance(i, TickBatch)]
    ticks = [f for _, f in entries if b"event" not in f]
    assert all(b"frame" not in f for f in ticks)
    assert [json.loads(f[b"ticks"]) for f in ticks] == [
        [json.loads(line) for line in json_lines([b], feed.name_of).splitlines()] for b in batches
    ]
    assert ticks[0][b"ticks"].decode() == (
        "[" + ",".join(json_lines([batches[0]], feed.name_of).splitlines()) + "]"
    )


async def test_redis_killed_and_restarted_mid_stream_the_feed_lives_and_publishing_resumes() -> (
    None
):
    warnings: list[str] = []
    async with running_redis() as redis, simulator(seed=3, keys=KEYS, rate=20.0) as sim:
        config = make_config(sim.url)
        target = PublishConfig(parse_redis_url(redis.url))
        async with FeedManager(config) as feed:
            local = feed.ticks()
            stream = feed.events()
            publisher = Publisher(
                target,
                buffer_bytes=4096,
                backoff=Backoff(initial_s=0.05, factor=2.0, max_s=0.2, jitter=0.1),
                on_warning=warnings.append,
            )
            task = asyncio.get_running_loop().create_task(publisher.run(stream))
            await eventually(lambda: publisher.published_ticks > 50)
            await redis.stop()
            await eventually(lambda: publisher.state == "down")
            down_at = local.received_ticks
            # The feed streams on while Redis is down, and what Redis misses is counted.
            await eventually(lambda: local.received_ticks > down_at + 200)
            await eventually(lambda: publisher.dropped_ticks > 0)
            assert publisher.stats().buffered_bytes <= 4096 + 2048
            await redis.start()
            await eventually(lambda: publisher.state == "connected")
            resumed_at = publisher.published_ticks
            await eventually(lambda: publisher.published_ticks > resumed_at + 50)
            client = redis.client()
            try:
                assert await client.xlen("kitefan:frames") > 0
            finally:
                await client.aclose()
            await feed.close()
            await asyncio.wait_for(task, 10)
    stats = publisher.stats()
    assert stats.reconnects == 1
    assert stats.published_ticks + stats.dropped_ticks == stream.received_ticks
    assert len(warnings) == 1
    assert warnings[0].startswith(f"cannot publish to Redis at redis://127.0.0.1:{redis.port}/0 (")
    assert warnings[0].endswith("): dropping and counting entries while retrying; the feed goes on")


async def test_the_password_is_never_shown() -> None:
    secret = "SENTINEL-redis-password-77"
    async with (
        running_redis(password=secret) as redis,
        simulator(seed=3, keys=KEYS, rate=20.0) as sim,
    ):
        config = make_config(sim.url)
        wrong = "SENTINEL-wrong-password-88"
        target = PublishConfig(parse_redis_url(f"redis://:{wrong}@127.0.0.1:{redis.port}/0"))
        warnings: list[str] = []
        async with FeedManager(config) as feed:
            publisher = Publisher(target, on_warning=warnings.append)
            task = asyncio.get_running_loop().create_task(publisher.run(feed.events()))
            await eventually(lambda: bool(warnings))
            shown = [warnings[0], repr(publisher), repr(target), str(publisher.stats())]
            good = PublishConfig(parse_redis_url(f"redis://:{secret}@127.0.0.1:{redis.port}/0"))
            right = Publisher(good)
            task2 = asyncio.get_running_loop().create_task(right.run(feed.events()))
            await eventually(lambda: right.published_ticks > 0)
            shown += [repr(right), repr(good), str(right.stats()), str(feed.stats())]
            await feed.close()
            await asyncio.wait_for(asyncio.gather(task, task2), 10)
    assert "WRONGPASS" in warnings[0] or "invalid" in warnings[0]
    assert "redis://:SENT…88@127.0.0.1" in warnings[0]
    for text in shown:
        assert "SENTINEL-" not in text.replace("SENT…", "")
        assert wrong not in text and secret not in text


async def test_names_that_change_reach_the_symbols_hash() -> None:
    names = {s.token: s.name for s in symbols()}
    async with running_redis() as redis, simulator(seed=3, keys=KEYS, rate=20.0) as sim:
        config = make_config(sim.url)
        target = PublishConfig(parse_redis_url(redis.url))
        client = redis.client()
        try:
            async with FeedManager(config) as feed:
                publisher = Publisher(target, symbols=lambda: dict(names))
                task = asyncio.get_running_loop().create_task(publisher.run(feed.events()))
                await eventually(lambda: publisher.published_entries > 0)
                first = await client.hgetall(symbols_key("kitefan:frames"))
                token = symbols()[0].token
                names[token] = "NSE:RENAMED"
                names[999_001] = "NSE:ADDED"
                async with asyncio.timeout(15):
                    while (await client.hget(symbols_key("kitefan:frames"), "999001")) is None:  # noqa: ASYNC110 - polling Redis, boundedly
                        await asyncio.sleep(0.05)
                after = await client.hgetall(symbols_key("kitefan:frames"))
                await feed.close()
                await asyncio.wait_for(task, 10)
        finally:
            await client.aclose()
    assert {int(k): v.decode() for k, v in first.items()} == {s.token: s.name for s in symbols()}
    assert {int(k): v.decode() for k, v in after.items()} == names


async def test_a_feed_that_ends_before_redis_is_connected_is_still_flushed() -> None:
    """The stop's flush covers a publisher still connecting: everything the feed gave reaches
    Redis, though the feed had ended before the first connection was up."""
    frame = bytes.fromhex("00010008") + struct.pack(">ii", 408065, 150_000)
    streams = Streams()
    events = streams.open_events(key=None, max_ticks=1000, max_bytes=1 << 20, drop_newest=False)
    for i in range(5):
        streams.push_batch(TickBatch("alpha", 0, frame, 0.0, 1_700_000_000.0 + i))
    streams.push_event(StatusEvent("alpha", 0, Status.CONNECTED, "up", 1_700_000_005.0))
    streams.finish()
    async with running_redis() as redis:
        publisher = Publisher(PublishConfig(parse_redis_url(redis.url)))
        assert publisher.state == "connecting"
        await asyncio.wait_for(publisher.run(events, flush_s=FLUSH_S), FLUSH_S + 10)
        client = redis.client()
        try:
            entries = await client.xrange("kitefan:frames")
        finally:
            await client.aclose()
    assert (publisher.published_entries, publisher.published_ticks) == (6, 5)
    assert (publisher.dropped_ticks, publisher.dropped_events) == (0, 0)
    assert [f[b"frame"] for _, f in entries[:5]] == [frame] * 5
    assert b"frame" not in entries[5][1]


async def test_a_batch_in_flight_when_the_feed_ends_is_waited_for_not_counted_dropped() -> None:
    """The feed ends while the publisher's last batch is on its way to Redis (Redis holds write
    commands for a second: CLIENT PAUSE): the stop's flush waits for Redis's answer, so the
    batch counts as published, as it is, not as dropped."""
    frame = bytes.fromhex("00010008") + struct.pack(">ii", 408065, 150_000)
    streams = Streams()
    events = streams.open_events(key=None, max_ticks=1000, max_bytes=1 << 20, drop_newest=False)
    async with running_redis() as redis:
        admin = redis.client()
        try:
            publisher = Publisher(PublishConfig(parse_redis_url(redis.url)))
            task = asyncio.get_running_loop().create_task(publisher.run(events, flush_s=FLUSH_S))
            streams.push_batch(TickBatch("alpha", 0, frame, 0.0, 1_700_000_000.0))
            await eventually(lambda: publisher.published_entries == 1)
            await admin.execute_command("CLIENT", "PAUSE", "1000", "WRITE")
            streams.push_batch(TickBatch("alpha", 0, frame, 0.0, 1_700_000_001.0))
            # The sender took it from the buffer and waits for Redis: end the feed now.
            await eventually(lambda: publisher.stats().buffered_entries == 0)
            assert publisher.published_entries == 1
            streams.finish()
            await asyncio.wait_for(task, FLUSH_S + 10)
            entries = await admin.xrange("kitefan:frames")
        finally:
            await admin.aclose()
    assert len(entries) == 2
    assert (publisher.published_ticks, publisher.dropped_ticks) == (2, 0)
