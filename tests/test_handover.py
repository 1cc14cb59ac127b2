"""FeedManager._is_handing_over: whether a consumer was woken with ticks and has not run yet.

Connections yield to such a consumer before decoding their next frame, so the count must return
to zero however the consumer ends: after it runs, when it is cancelled before running, and when
the stream is closed under it. No sockets and no timing: batches are pushed by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import cast

from app_configs import app_config, key

from kitefan import Tick, encode_frame
from kitefan.connection import FeedConnection
from kitefan.events import Status, TickBatch
from kitefan.manager import EventStream, FeedManager


def feed() -> FeedManager:
    return FeedManager(app_config([key("alpha", "alpha-api-key-0001", "alpha-token-0001")]))


def batch() -> TickBatch:
    return TickBatch.of_ticks("alpha", 0, [Tick.ltp(408065, 150_000)], 0.0, 0.0)


async def waiting_consumer(stream: EventStream[TickBatch]) -> asyncio.Task[TickBatch]:
    task = asyncio.get_running_loop().create_task(anext(stream))
    await asyncio.sleep(0)  # let it start waiting
    return task


async def test_a_consumer_woken_with_ticks_is_handed_over_until_it_runs() -> None:
    manager = feed()
    stream = manager.ticks()
    assert not manager._is_handing_over()
    consumer = await waiting_consumer(stream)
    manager._on_ticks(batch())
    assert manager._is_handing_over()
    manager._on_ticks(batch())  # a second batch wakes no one new
    assert manager._is_handing_over()
    got = await consumer
    assert got.ticks == [Tick.ltp(408065, 150_000)]
    assert not manager._is_handing_over()


async def test_ticks_pushed_with_no_consumer_waiting_hand_over_nothing() -> None:
    manager = feed()
    stream = manager.ticks()
    manager._on_ticks(batch())
    assert not manager._is_handing_over()
    assert len(stream.drain()) == 1


async def test_a_consumer_cancelled_before_it_runs_leaves_no_count_behind() -> None:
    manager = feed()
    stream = manager.ticks()
    consumer = await waiting_consumer(stream)
    manager._on_ticks(batch())
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    assert consumer.cancelled()
    assert not manager._is_handing_over()


async def test_a_stream_closed_under_its_consumer_leaves_no_count_behind() -> None:
    manager = feed()
    stream = manager.ticks()
    consumer = await waiting_consumer(stream)
    stream.close()
    assert manager._is_handing_over()
    results = await asyncio.gather(consumer, return_exceptions=True)
    assert isinstance(results[0], StopAsyncIteration)
    assert not manager._is_handing_over()


async def test_two_consumers_are_counted_apart() -> None:
    manager = feed()
    first, second = manager.ticks(), manager.ticks()
    a = await waiting_consumer(first)
    b = await waiting_consumer(second)
    manager._on_ticks(batch())
    assert manager._streams.handover.waiting == 2
    await asyncio.gather(a, b)
    assert not manager._is_handing_over()


def server_error(manager: FeedManager, text: str) -> None:
    """An error text as connection 0 of alpha hands it to the manager."""
    manager._on_server_text(cast(FeedConnection, _Slot()), text, error=True)


class _Slot:
    key_id = "alpha"
    index = 0


async def test_a_stream_keeps_at_most_max_events_other_events_and_counts_the_rest() -> None:
    manager = feed()
    stream = manager.events()
    stream.max_events = 3
    for n in range(5):
        server_error(manager, f"error {n}")
    manager._on_ticks(batch())
    assert stream.dropped_events == 2
    assert [getattr(e, "text", "tick") for e in stream.drain()] == [
        "error 0",
        "error 1",
        "error 2",
        "tick",
    ]
    server_error(manager, "error 5")  # drained: room again
    assert stream.dropped_events == 2
    assert len(stream) == 1


async def test_status_events_are_never_dropped() -> None:
    manager = feed()
    stream = manager.events()
    stream.max_events = 3
    for n in range(5):
        manager.announce(Status.MESSAGE, f"event {n}")
    server_error(manager, "error")
    assert stream.dropped_events == 0
    assert [getattr(e, "message", None) for e in stream.drain()] == [
        "event 0",
        "event 1",
        "event 2",
        "event 3",
        "event 4",
        None,
    ]


def frame_of(n: int) -> TickBatch:
    """A batch as a connection makes it: the frame's bytes, not yet decoded."""
    return TickBatch(
        "alpha", 0, encode_frame([Tick.ltp(408065, 150_000 + i) for i in range(n)]), 0, 0
    )


async def test_a_stream_is_bounded_in_bytes_of_frames_and_drops_undecoded() -> None:
    manager = feed()
    one = frame_of(10)  # 2 + 10 * (2 + 8) = 102 bytes
    stream = manager.ticks(max_bytes=3 * len(one.frame))
    batches = [frame_of(10) for _ in range(5)]
    for b in batches:
        manager._on_ticks(b)
    assert stream.queued_bytes == 3 * 102
    assert stream.dropped_ticks == 20
    assert not batches[0].decoded and not batches[1].decoded
    assert stream.drain() == batches[2:]
    assert stream.received_ticks == 50 == stream.delivered_ticks + stream.dropped_ticks


async def test_drain_with_a_bound_takes_whole_batches_up_to_it() -> None:
    manager = feed()
    stream = manager.events()
    for n in (4, 4, 4):
        manager._on_ticks(frame_of(n))
    manager.announce(Status.MESSAGE, "between")
    manager._on_ticks(frame_of(4))
    assert [len(b) for b in stream.drain(max_ticks=9) if isinstance(b, TickBatch)] == [4, 4]
    taken = stream.drain(max_ticks=9)
    assert [len(b) if isinstance(b, TickBatch) else "status" for b in taken] == [4, "status", 4]
    assert stream.drain(max_ticks=1) == []
    assert stream.delivered_ticks == 16 and stream.queued_ticks == 0
    manager._on_ticks(frame_of(12))
    (only,) = stream.drain(max_ticks=5)  # at least one item
    assert isinstance(only, TickBatch) and len(only) == 12


async def test_closing_a_stream_frees_its_queue_and_counts_it_dropped() -> None:
    manager = feed()
    stream = manager.ticks()
    for _ in range(3):
        manager._on_ticks(frame_of(10))
    stream.close()
    assert len(stream) == 0 and stream.queued_bytes == 0
    assert stream.dropped_ticks == 30
    manager._on_ticks(frame_of(10))  # no longer registered: nothing queued, nothing counted
    assert stream.received_ticks == 30
    assert len(manager._streams) == 0


async def test_breaking_out_of_async_for_over_an_unkept_stream_forgets_it() -> None:
    manager = feed()
    stream = manager.ticks()
    manager._on_ticks(frame_of(1))
    async for _ in stream:
        break
    del stream  # what `async for batch in feed.ticks():` leaves after the break
    assert len(manager._streams) == 0


async def test_a_stream_kept_in_a_variable_can_be_iterated_again() -> None:
    manager = feed()
    stream = manager.ticks()
    for _ in range(2):
        manager._on_ticks(frame_of(1))
    got = []
    for _ in range(2):
        async for batch in stream:
            got.append(batch)
            break
    assert [len(b) for b in got] == [1, 1]
    assert not stream.closed


async def test_a_cancelled_consumer_leaves_no_stream_behind() -> None:
    manager = feed()
    started = asyncio.Event()

    async def consume() -> None:
        stream = manager.ticks()
        started.set()
        async for _ in stream:
            pass

    task = asyncio.get_running_loop().create_task(consume())
    await started.wait()
    manager._on_ticks(frame_of(1))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    del task  # a finished task keeps its frame (and the stream) for its traceback
    # The loop lets go of the finished task once its done-callbacks have run.
    for _ in range(10):
        if not len(manager._streams):
            break
        await asyncio.sleep(0)
    assert len(manager._streams) == 0


async def test_leaving_async_with_closes_the_stream() -> None:
    manager = feed()
    async with manager.ticks() as stream:
        manager._on_ticks(frame_of(3))
    assert stream.closed and stream.dropped_ticks == 3


async def test_a_stream_nobody_references_is_forgotten() -> None:
    manager = feed()
    manager.ticks()
    gc.collect()
    assert len(manager._streams) == 0
    manager._on_ticks(frame_of(3))  # reaches no stream


async def test_a_batch_reaching_several_consumers_is_decoded_once_and_shared() -> None:
    manager = feed()
    ticks_stream, events_stream = manager.ticks(), manager.events()
    batch = frame_of(3)
    manager._on_ticks(batch)
    first, second = ticks_stream.drain()[0], events_stream.drain()[0]
    assert first is second is batch
    was_decoded = batch.decoded
    decoded = first.ticks
    assert (was_decoded, batch.decoded) == (False, True)
    assert isinstance(second, TickBatch) and second.ticks is decoded
    assert [t.last_price for t in decoded] == [1500.0, 1500.01, 1500.02]
