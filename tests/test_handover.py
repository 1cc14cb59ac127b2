"""FeedManager.handing_over: whether a consumer was woken with ticks and has not run yet.

Connections yield to such a consumer before decoding their next frame, so the count must return
to zero however the consumer ends: after it runs, when it is cancelled before running, and when
the stream is closed under it. No sockets and no timing: batches are pushed by hand.
"""

from __future__ import annotations

import asyncio

from kitefan import Tick
from kitefan.config import AppConfig, Credential, KeyConfig, Strategy
from kitefan.events import TickBatch
from kitefan.manager import EventStream, FeedManager
from kitefan.models import Mode


def feed() -> FeedManager:
    config = AppConfig(
        source="test",
        url="ws://127.0.0.1:9",
        strategy=Strategy.ROUND_ROBIN,
        mode=Mode.QUOTE,
        max_connections_per_key=3,
        max_symbols_per_connection=3000,
        keys=(KeyConfig("alpha", Credential("alpha-api-key-0001", "alpha-token-0001")),),
        symbols=(),
    )
    return FeedManager(config)


def batch() -> TickBatch:
    return TickBatch.of_ticks("alpha", 0, [Tick.ltp(408065, 150_000)], 0.0, 0.0)


async def waiting_consumer(stream: EventStream[TickBatch]) -> asyncio.Task[TickBatch]:
    task = asyncio.get_running_loop().create_task(anext(stream))
    await asyncio.sleep(0)  # let it start waiting
    return task


async def test_a_consumer_woken_with_ticks_is_handed_over_until_it_runs() -> None:
    manager = feed()
    stream = manager.ticks()
    assert not manager.handing_over()
    consumer = await waiting_consumer(stream)
    manager.on_ticks(batch())
    assert manager.handing_over()
    manager.on_ticks(batch())  # a second batch wakes no one new
    assert manager.handing_over()
    got = await consumer
    assert got.ticks == [Tick.ltp(408065, 150_000)]
    assert not manager.handing_over()


async def test_ticks_pushed_with_no_consumer_waiting_hand_over_nothing() -> None:
    manager = feed()
    stream = manager.ticks()
    manager.on_ticks(batch())
    assert not manager.handing_over()
    assert len(stream.drain()) == 1


async def test_a_consumer_cancelled_before_it_runs_leaves_no_count_behind() -> None:
    manager = feed()
    stream = manager.ticks()
    consumer = await waiting_consumer(stream)
    manager.on_ticks(batch())
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    assert consumer.cancelled()
    assert not manager.handing_over()


async def test_a_stream_closed_under_its_consumer_leaves_no_count_behind() -> None:
    manager = feed()
    stream = manager.ticks()
    consumer = await waiting_consumer(stream)
    stream.close()
    assert manager.handing_over()
    results = await asyncio.gather(consumer, return_exceptions=True)
    assert isinstance(results[0], StopAsyncIteration)
    assert not manager.handing_over()


async def test_two_consumers_are_counted_apart() -> None:
    manager = feed()
    first, second = manager.ticks(), manager.ticks()
    a = await waiting_consumer(first)
    b = await waiting_consumer(second)
    manager.on_ticks(batch())
    assert manager._handing_over == 2
    await asyncio.gather(a, b)
    assert not manager.handing_over()


async def test_a_stream_keeps_at_most_max_events_other_events_and_counts_the_rest() -> None:
    manager = feed()
    stream = manager.events()
    stream.max_events = 3
    for n in range(5):
        manager.announce("note", f"event {n}")
    manager.on_ticks(batch())
    assert stream.dropped_events == 2
    assert [getattr(e, "message", "tick") for e in stream.drain()] == [
        "event 0",
        "event 1",
        "event 2",
        "tick",
    ]
    manager.announce("note", "event 5")  # drained: room again
    assert stream.dropped_events == 2
    assert len(stream) == 1
