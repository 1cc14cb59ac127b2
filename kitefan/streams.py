"""The consumers' side of a feed: bounded event streams, the set of them, and the hand-over.

:class:`EventStream` is one consumer's bounded queue of tick batches and events, and an async
iterator over them. :class:`Streams` is every stream of one feed, held weakly: the feed pushes
each batch and event to it once (:meth:`Streams.push_batch`, :meth:`Streams.push_event`) and it
hands them to the streams that want them; it ends them all when the feed fails or closes, and it
tells the feed (through ``on_drop``) which connection's ticks a stream dropped. :class:`HandOver`
counts the consumers that were woken with ticks and have not run yet: a connection holding a
frame yields while it is non-zero (see :mod:`kitefan.connection`).

Each class speaks to the others through these methods only: a stream reaches its set through
:meth:`Streams.dropped`, :meth:`Streams.discard` and :attr:`Streams.handover`, never the feed.

Owns: ``EventStream``, ``Streams``, ``HandOver``. Must not import rich, typer, websockets, the
connection or the manager.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable
from typing import Generic, Self, TypeVar

from kitefan.events import Event, StatusEvent, TickBatch

__all__ = ["AnyStream", "EventStream", "HandOver", "Streams"]

E = TypeVar("E", TickBatch, Event)


class HandOver:
    """How many consumers were woken with ticks and have not run yet.

    A stream counts one when it wakes a waiting consumer (:meth:`woke`) and takes it back when
    that consumer runs, or is cancelled, or its stream is closed under it (:meth:`ran`); so the
    count returns to zero however the consumer ends. True while any is waiting to run.
    """

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting = 0

    def __bool__(self) -> bool:
        return self.waiting > 0

    def __repr__(self) -> str:
        return f"HandOver(waiting={self.waiting})"

    def woke(self) -> None:
        self.waiting += 1

    def ran(self) -> None:
        self.waiting -= 1


class EventStream(Generic[E]):
    """A bounded queue of one consumer's events, and an async iterator over them.

    Bounds: tick batches count against ``max_ticks`` ticks and ``max_bytes`` bytes of frames;
    past either, the oldest batches are dropped (or the newest, with ``drop_newest``), before
    anyone decoded them, and counted in :attr:`dropped_ticks` (and in their connection's
    ``drops``). Status events (state changes, gaps, failover) are never dropped. Orders and error
    texts are kept up to ``max_events``; past it they are dropped and counted in
    :attr:`dropped_events`.

    Accounting: every tick pushed is counted in :attr:`received_ticks`, and at every moment
    ``received_ticks == delivered_ticks + dropped_ticks + queued_ticks``.

    Lifetime: :meth:`close` ends it: the feed stops pushing to it, its queue is freed and what
    was queued is counted as dropped; leaving ``async with feed.ticks() as stream:`` closes it.
    The feed holds its streams weakly, so a stream nobody references any more is gone too:
    breaking out of ``async for batch in feed.ticks():``, or cancelling the task that iterates
    it, leaves nothing queueing behind. A stream kept in a variable lives on (it can be iterated
    again) until it is closed.
    """

    def __init__(
        self,
        owner: Streams,
        *,
        key: str | None,
        connection: int | None,
        ticks_only: bool,
        max_ticks: int,
        drop_newest: bool,
        max_events: int = 10_000,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.key = key
        self.connection = connection
        self.ticks_only = ticks_only
        self.max_ticks = max_ticks
        self.max_bytes = max_bytes
        self.max_events = max_events
        self.drop_newest = drop_newest
        self.received_ticks = 0
        self.delivered_ticks = 0
        self.dropped_ticks = 0
        self.dropped_events = 0
        self._owner = owner
        self._items: deque[E] = deque()
        self._queued_ticks = 0
        self._queued_bytes = 0
        self._queued_events = 0
        self._waiter: asyncio.Future[None] | None = None
        self._woken = False
        self._closed = False
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"EventStream(key={self.key}, connection={self.connection}, queued={len(self)})"

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_ticks(self) -> int:
        return self._queued_ticks

    @property
    def queued_bytes(self) -> int:
        """The bytes of the frames queued."""
        return self._queued_bytes

    @property
    def closed(self) -> bool:
        """Whether the stream takes no more events (what is queued can still be read)."""
        return self._closed

    def accepts(self, key: str, connection: int | None) -> bool:
        """Whether an event of this key and connection belongs in this stream."""
        if self.key is not None and key != self.key:
            return False
        return self.connection is None or connection == self.connection

    # Producer side (the manager)

    def _push_batch(self, batch: TickBatch) -> None:
        if self._closed:
            return
        count = batch.count
        size = len(batch.frame)
        self.received_ticks += count
        if (
            self._queued_ticks + count > self.max_ticks
            or self._queued_bytes + size > self.max_bytes
        ):
            if self.drop_newest:
                self.dropped_ticks += count
                self._owner.dropped(batch, count)
                return
            self._shed(count, size)
        self._items.append(batch)
        self._queued_ticks += count
        self._queued_bytes += size
        self._wake()

    def _push_event(self, event: Event) -> None:
        if self._closed or self.ticks_only:
            return
        if not isinstance(event, StatusEvent):
            if self._queued_events >= self.max_events:
                self.dropped_events += 1
                return
            self._queued_events += 1
        self._items.append(event)  # type: ignore[arg-type]
        self._wake()

    def _shed(self, incoming: int, size: int) -> None:
        items = self._items
        kept: list[E] = []
        while items and (
            self._queued_ticks + incoming > self.max_ticks
            or self._queued_bytes + size > self.max_bytes
        ):
            item = items.popleft()
            if isinstance(item, TickBatch):
                self._forget(item)
                self.dropped_ticks += item.count
                self._owner.dropped(item, item.count)
            else:
                kept.append(item)
        items.extendleft(reversed(kept))

    def _forget(self, item: E) -> None:
        if isinstance(item, TickBatch):
            self._queued_ticks -= item.count
            self._queued_bytes -= len(item.frame)
        elif not isinstance(item, StatusEvent):
            self._queued_events -= 1

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
                if not self._woken:
                    self._woken = True
                    self._owner.handover.woke()

    def _finish(self, error: BaseException | None = None) -> None:
        if error is not None and self._error is None:
            self._error = error
        self._closed = True
        self._wake()

    # Consumer side

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def __anext__(self) -> E:
        while not self._items:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                # A cancelled wait leaves no future behind: its error's traceback holds this
                # frame, and so the stream, which must be free to go once its consumer has.
                if self._waiter is waiter:
                    self._waiter = None
                del waiter
                if self._woken:
                    self._woken = False
                    self._owner.handover.ran()
        item = self._items.popleft()
        self._forget(item)
        if isinstance(item, TickBatch):
            self.delivered_ticks += item.count
        return item

    def drain(self, max_ticks: int | None = None) -> list[E]:
        """What is queued now, without waiting: everything, or the items before the first
        batch that would take the ticks taken past ``max_ticks`` (at least one item).

        Raises the feed's error once everything is drained.
        """
        items = self._items
        if not items and self._error is not None:
            raise self._error
        if max_ticks is None:
            out = list(items)
            items.clear()
            delivered = self._queued_ticks
            self._queued_events = 0
            self._queued_ticks = 0
            self._queued_bytes = 0
            self.delivered_ticks += delivered
            return out
        out = []
        taken = 0
        while items:
            item = items[0]
            if isinstance(item, TickBatch):
                if out and taken + item.count > max_ticks:
                    break
                taken += item.count
            items.popleft()
            self._forget(item)
            out.append(item)
        self.delivered_ticks += taken
        return out

    def close(self) -> None:
        """Stop receiving and free the queue; what was queued is counted as dropped.

        The iteration ends (at once: nothing queued is left to read).
        """
        self._owner.discard(self)
        for item in self._items:
            if isinstance(item, TickBatch):
                self.dropped_ticks += item.count
                self._owner.dropped(item, item.count)
        self._items.clear()
        self._queued_ticks = self._queued_bytes = self._queued_events = 0
        self._finish()


AnyStream = EventStream[TickBatch] | EventStream[Event]


def _no_drop_count(batch: TickBatch, count: int) -> None:
    pass


class Streams:
    """Every stream of one feed, held weakly, and what they share.

    Args:
        on_drop: told of every tick a stream dropped (the batch and how many of its ticks), so
            that the feed counts them for the batch's connection.

    A stream nobody references any more is forgotten (its weak reference dies). Once
    :meth:`fail` was called, every stream, those opened later included, ends with that error.
    """

    def __init__(self, on_drop: Callable[[TickBatch, int], None] = _no_drop_count) -> None:
        self.handover = HandOver()
        self._on_drop = on_drop
        self._refs: tuple[weakref.ref[AnyStream], ...] = ()
        self._failure: BaseException | None = None

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"Streams({len(self._refs)} streams, {self.handover!r})"

    @property
    def failure(self) -> BaseException | None:
        """The error every stream ends with, once :meth:`fail` was called."""
        return self._failure

    def open_ticks(
        self,
        *,
        key: str | None,
        connection: int | None,
        max_ticks: int,
        max_bytes: int,
        drop_newest: bool,
    ) -> EventStream[TickBatch]:
        """A new stream of tick batches only, registered."""
        stream: EventStream[TickBatch] = EventStream(
            self,
            key=key,
            connection=connection,
            ticks_only=True,
            max_ticks=max_ticks,
            max_bytes=max_bytes,
            drop_newest=drop_newest,
        )
        self.add(stream)
        return stream

    def open_events(
        self, *, key: str | None, max_ticks: int, max_bytes: int, drop_newest: bool
    ) -> EventStream[Event]:
        """A new stream of everything (tick batches and events), registered."""
        stream: EventStream[Event] = EventStream(
            self,
            key=key,
            connection=None,
            ticks_only=False,
            max_ticks=max_ticks,
            max_bytes=max_bytes,
            drop_newest=drop_newest,
        )
        self.add(stream)
        return stream

    def add(self, stream: AnyStream) -> None:
        """Push to ``stream`` from now on (it ends at once if the feed has failed)."""
        if self._failure is not None:
            stream._finish(self._failure)
        self._refs = (*self._refs, weakref.ref(stream, self._forget))

    def discard(self, stream: AnyStream) -> None:
        """Push nothing more to ``stream`` (a closed stream calls this)."""
        self._refs = tuple(ref for ref in self._refs if ref() is not stream)

    def _forget(self, dead: weakref.ref[AnyStream]) -> None:
        self._refs = tuple(ref for ref in self._refs if ref is not dead)

    def live(self) -> list[AnyStream]:
        """The streams still referenced, in the order they were opened."""
        return [stream for stream in (ref() for ref in self._refs) if stream is not None]

    def dropped(self, batch: TickBatch, count: int) -> None:
        """A stream dropped ``count`` ticks of ``batch``."""
        self._on_drop(batch, count)

    # The feed's side

    def push_batch(self, batch: TickBatch) -> None:
        """Hand ``batch`` to every stream of its key and connection (the hot path)."""
        for ref in self._refs:
            stream = ref()
            if stream is not None and stream.accepts(batch.key, batch.connection):
                stream._push_batch(batch)

    def push_event(self, event: Event) -> None:
        """Hand ``event`` to every stream of events of its key."""
        for stream in self.live():
            if not stream.ticks_only and stream.accepts(event.key, None):
                stream._push_event(event)

    def fail(self, error: BaseException) -> None:
        """End every stream, now and to come, with ``error`` (the first error given stays)."""
        if self._failure is None:
            self._failure = error
        for stream in self.live():
            stream._finish(error)

    def finish(self) -> None:
        """End every stream: once what is queued is read, with the failure if there was one."""
        for stream in self.live():
            stream._finish(self._failure)
