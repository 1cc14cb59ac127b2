"""``kitefan tail`` and :class:`kitefan.tail.RemoteFeed` against a real Redis that
``kitefan stream --publish`` wrote: the same records as ``stream`` prints, a consumer group
sharing the entries, ``--from now``, and clear errors."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from datetime import datetime
from pathlib import Path

import processes
import pytest
from redisserver import free_port, running_redis

from kitefan.broker import Entry, frame_fields, node_name
from kitefan.errors import BrokerError
from kitefan.events import Event, TickBatch
from kitefan.models import Tick
from kitefan.tail import RemoteFeed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}


async def kitefan(*args: str, within: float = 60.0) -> tuple[int, str, str]:
    return await processes.run(*processes.kitefan(*args), cwd=ROOT, env=ENV, within=within)


async def test_tail_prints_the_jsonl_records_stream_printed() -> None:
    async with running_redis() as redis:
        code, streamed, err = await kitefan(
            "stream", "--demo", "--format", "jsonl", "--duration", "3", "--publish", redis.url
        )
        assert code == 0, err
        code, tailed, tail_err = await kitefan(
            "tail", redis.url, "--from", "start", "--format", "jsonl", "--duration", "1.5"
        )
    assert code == 0, tail_err
    lines = streamed.splitlines()
    assert sum('"type":"tick"' in line for line in lines) > 100
    assert any('"type":"status"' in line for line in lines)
    assert tailed.splitlines() == lines
    ticks = sum('"type":"tick"' in line for line in lines)
    assert f"published {ticks:,} ticks to {redis.url} kitefan:frames (0 ticks dropped)" in err
    entries = len(lines)  # one entry per frame or event; a frame holds one tick or more
    assert tail_err.startswith("kitefan: duration reached after 1.")
    assert f" s: {ticks:,} ticks in " in tail_err
    assert tail_err.endswith(f" entries from kitefan:frames, {ticks:,} written\n")
    assert int(tail_err.split(" ticks in ")[1].split(" ")[0].replace(",", "")) <= entries
    assert len(tail_err.splitlines()) == 1


async def test_tail_prints_the_csv_rows_stream_printed() -> None:
    async with running_redis() as redis:
        code, streamed, err = await kitefan(
            "stream", "--demo", "--format", "csv", "--duration", "2", "--publish", redis.url
        )
        assert code == 0, err
        code, tailed, tail_err = await kitefan(
            "tail", redis.url, "--from", "start", "--format", "csv", "--duration", "1.5"
        )
    assert code == 0, tail_err
    ours = list(csv.reader(io.StringIO(streamed)))
    theirs = list(csv.reader(io.StringIO(tailed)))
    assert len(ours) > 50
    assert theirs[0] == ours[0]
    # Every column the same; received_at to the millisecond it shows (the entry keeps it to the
    # microsecond, so its millisecond may round up where the stream's truncated it).
    assert [row[1:] for row in theirs] == [row[1:] for row in ours]
    for mine, yours in zip(ours[1:], theirs[1:], strict=True):
        delta = datetime.fromisoformat(yours[0]) - datetime.fromisoformat(mine[0])
        assert 0 <= delta.total_seconds() <= 0.001


async def test_bad_input_is_one_line_and_an_exit_code() -> None:
    code, out, err = await kitefan("tail", "http://127.0.0.1:1", "--duration", "1")
    assert (code, out) == (2, "")
    assert (
        err
        == "error: URL: must be redis://[[user]:password@]HOST[:PORT][/DB] (or rediss:// for TLS)\n"
    )
    code, _, err = await kitefan("tail", "redis://127.0.0.1:1", "--from", "yesterday")
    assert code == 2
    assert err == (
        "error: --from: must be now, start or an entry id (like 1700000000000-0), not 'yesterday'\n"
    )
    port = free_port()
    code, out, err = await kitefan(
        "tail", f"redis://:SENTINEL-pw-1234@127.0.0.1:{port}/2", "--duration", "1"
    )
    assert (code, out) == (1, "")
    assert err.startswith(
        f"error: cannot read stream kitefan:frames at redis://:SENT…34@127.0.0.1:{port}/2: "
        f"Error 111 connecting to 127.0.0.1:{port}."
    )
    assert len(err.splitlines()) == 1


def batch(n: int) -> TickBatch:
    tick = Tick.ltp(((1000 + n) << 8) | 1, 10_000 + n)
    return TickBatch.of_ticks("alpha", n % 3, [tick], received_wall=1_700_000_000.0 + n)


def entry_order(entry_id: bytes) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split(b"-")
    return int(milliseconds), int(sequence)


async def publish(client: object, stream: str, batches: list[TickBatch]) -> None:
    node = node_name().encode()
    for b in batches:
        await client.xadd(stream, frame_fields(b, node))  # type: ignore[attr-defined]  # a redis client, untyped here


async def test_a_consumer_group_shares_the_entries_and_from_now_skips_the_past() -> None:
    async with running_redis() as redis:
        client = redis.client()
        try:
            batches = [batch(n) for n in range(60)]
            await publish(client, "s", batches[:40])
            a = RemoteFeed(redis.url, stream="s", start="start", group="g", consumer="a", count=7)
            b = RemoteFeed(redis.url, stream="s", start="start", group="g", consumer="b", count=7)
            now = RemoteFeed(redis.url, stream="s", start="now", block_ms=100)
            async with a, b, now:
                await publish(client, "s", batches[40:])
                got: dict[str, list[bytes]] = {"a": [], "b": []}
                frames: dict[bytes, bytes] = {}
                async with asyncio.timeout(10):
                    while len(got["a"]) + len(got["b"]) < 60:
                        for name, feed in (("a", a), ("b", b)):
                            for entry in await feed.read():
                                got[name].append(entry.id)
                                assert isinstance(entry.item, TickBatch)
                                frames[entry.id] = entry.item.frame
                    recent: list[Entry] = []
                    while len(recent) < 20:
                        recent.extend(await now.read())
                pending = await client.xpending("s", "g")
        finally:
            await client.aclose()
    assert got["a"] and got["b"]
    assert set(got["a"]).isdisjoint(got["b"])
    # In the stream's order: an id is milliseconds-sequence, compared as numbers (entries added
    # in one millisecond count on: b"...-10" sorts before b"...-9" as bytes).
    assert [frames[i] for i in sorted(frames, key=entry_order)] == [x.frame for x in batches]
    recent_batches = [e.item for e in recent if isinstance(e.item, TickBatch)]
    assert len(recent_batches) == len(recent)
    assert [b.frame for b in recent_batches] == [x.frame for x in batches[40:]]
    # What a reader has read is acknowledged when it asks for more; the last batches still pend.
    assert pending["pending"] <= 14


async def read_all(feed: RemoteFeed, into: list[Event]) -> None:
    async with asyncio.timeout(10):
        async for item in feed:
            into.append(item)


async def test_the_library_iterates_batches_and_refuses_json_entries() -> None:
    async with running_redis() as redis:
        client = redis.client()
        try:
            batches = [batch(n) for n in range(5)]
            await publish(client, "s", batches)
            await client.xadd(
                "s", {"key": "alpha", "connection": "0", "received_at": "1.0", "ticks": "[]"}
            )
            async with RemoteFeed(redis.url, stream="s", start="start") as feed:
                seen: list[Event] = []
                with pytest.raises(BrokerError) as caught:
                    await read_all(feed, seen)
        finally:
            await client.aclose()
    seen_batches = [i for i in seen if isinstance(i, TickBatch)]
    assert len(seen_batches) == len(seen)
    assert [(i.key, i.connection, i.frame, i.received_wall) for i in seen_batches] == [
        (x.key, x.connection, x.frame, x.received_wall) for x in batches
    ]
    assert [i.ticks for i in seen_batches] == [x.ticks for x in batches]
    assert str(caught.value).startswith('stream s holds JSON ticks (format = "json"), not frames')


async def test_a_reader_under_traffic_ends_when_cancelled() -> None:
    """Cancelled while entries keep coming (XADD beside it), the reader ends, every time."""
    async with running_redis() as redis:
        client = redis.client()
        frame = frame_fields(
            TickBatch.of_ticks("alpha", 0, [Tick.ltp((t << 8) | 1, 100) for t in range(1, 3000)]),
            b"n",
        )

        async def produce() -> None:
            while True:
                await client.xadd("s", frame, maxlen=1000)
                await asyncio.sleep(0.002)

        producer = asyncio.get_running_loop().create_task(produce())
        try:
            for i in range(6):
                async with RemoteFeed(redis.url, stream="s", start="now") as feed:

                    async def consume(feed: RemoteFeed = feed) -> None:
                        async for item in feed.ticks():
                            assert len(item.ticks) == 2999

                    task = asyncio.get_running_loop().create_task(consume())
                    await asyncio.sleep(0.3 + i * 0.037)
                    task.cancel()
                    async with asyncio.timeout(5):
                        await asyncio.gather(task, return_exceptions=True)
                    assert task.cancelled()
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            await client.aclose()
