"""One simulator connection's outbox, sans-I/O: what is queued to send, when it is due, and when
a client is too slow to keep.

:class:`Outbox` is what the server's send loop (:mod:`kitefan.simulator.server`) decides with, in
the manner of :mod:`kitefan.session`: the server :meth:`~Outbox.put` s frames in (error texts,
snapshots, a market step's packets, order updates, hostile frames), each due ``delay_s`` after it
was put (the delay fault), and asks :meth:`~Outbox.next` what to do now; the answer is one of

* :class:`Send`: hand this item to the socket now (then :meth:`~Outbox.sent`, which counts it);
* :class:`Lose`: the connection is silent: this item goes nowhere and is not counted;
* :class:`Wait`: the first item is due in ``seconds``;
* :class:`Stream`: nothing is queued and the caller may stream (maximum rate): send frames
  back to back until something is queued;
* :class:`Idle`: nothing to do; wait for a :meth:`~Outbox.put` for at most ``seconds``, then
  ask again.

A connection on which nothing was put for ``heartbeat_s`` gets a 1-byte heartbeat: :meth:`next`
queues it itself (a silent connection gets none). The queue is bounded: a put that takes it past
``max_backlog_bytes`` answers :data:`SHED`, once; the server drops the connection (as Kite drops
a slow consumer) and counts it, and the outbox takes nothing more. What the client lost is what
was queued then (:attr:`Outbox.shed`: frames and bytes, the one just put included).

Every figure is counted by kind in a :class:`Sent` (the connection's, and the totals it is given),
when the item is handed to the socket. Times are given, never read: a test runs a connection's
whole send schedule on a virtual clock.

Owns: ``Outbox``, ``Sent``, ``Kind``, ``Outgoing``, ``Shed``, the steps. Must not import asyncio,
websockets, the server, rich or typer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import NamedTuple

from kitefan.codec import HEARTBEAT

__all__ = [
    "MAX_BACKLOG_BYTES",
    "QUEUED",
    "REFUSED",
    "SHED",
    "Idle",
    "Kind",
    "Lose",
    "Outbox",
    "Outgoing",
    "Put",
    "Send",
    "Sent",
    "Shed",
    "Step",
    "Stream",
    "Wait",
]

#: A connection with more than this queued is dropped as a slow consumer (Kite's habit).
MAX_BACKLOG_BYTES = 64 * 1024 * 1024


class Kind(IntEnum):
    """What an outgoing frame is, for the counters."""

    TICKS = 0
    HEARTBEAT = 1
    TEXT = 2
    ORDER = 3
    MALFORMED = 4


class Outgoing(NamedTuple):
    """A queued frame: when it is due, what it is, how many packets it holds, and what the
    driver resolves once it is sent or lost (``done``, opaque here)."""

    due: float
    payload: bytes | str
    kind: Kind
    ticks: int
    done: object


class Put(Enum):
    """What :meth:`Outbox.put` did."""

    #: Queued.
    QUEUED = "queued"
    #: Queued, and the queue is now past its bound: drop the connection (said once).
    SHED = "shed"
    #: Not queued: the outbox is closed or was shed.
    REFUSED = "refused"


QUEUED = Put.QUEUED
SHED = Put.SHED
REFUSED = Put.REFUSED


@dataclass(frozen=True, slots=True)
class Send:
    """Hand ``item`` to the socket now."""

    item: Outgoing


@dataclass(frozen=True, slots=True)
class Lose:
    """The connection is silent: ``item`` is not sent and not counted."""

    item: Outgoing


@dataclass(frozen=True, slots=True)
class Wait:
    """The first queued item is due in ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Stream:
    """Nothing is queued: stream frames (maximum rate) until something is."""


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing to do: wait for a put for at most ``seconds`` (the next heartbeat)."""

    seconds: float


Step = Send | Lose | Wait | Stream | Idle

_STREAM = Stream()


@dataclass(frozen=True, slots=True)
class Shed:
    """What a slow client lost when it was dropped: the frames and bytes queued then."""

    frames: int
    bytes: int


@dataclass(slots=True)
class Sent:
    """Frames handed to the socket, by kind.

    Attributes:
        frames_sent: binary frames carrying ticks (subscribe snapshots included).
        ticks_sent: packets in those frames.
        heartbeats_sent: 1-byte heartbeats.
        texts_sent: text frames (error texts and order updates).
        orders_sent: order updates.
        malformed_sent: malformed frames sent on purpose.
        bytes_sent: payload bytes of every frame above.
    """

    frames_sent: int = 0
    ticks_sent: int = 0
    heartbeats_sent: int = 0
    texts_sent: int = 0
    orders_sent: int = 0
    malformed_sent: int = 0
    bytes_sent: int = 0

    def count(self, kind: Kind, ticks: int, size: int) -> None:
        """Count one frame of ``kind`` holding ``ticks`` packets, ``size`` bytes long."""
        self.bytes_sent += size
        if kind is Kind.TICKS:
            self.frames_sent += 1
            self.ticks_sent += ticks
        elif kind is Kind.HEARTBEAT:
            self.heartbeats_sent += 1
        elif kind is Kind.MALFORMED:
            self.malformed_sent += 1
        else:
            self.texts_sent += 1
            if kind is Kind.ORDER:
                self.orders_sent += 1


class Outbox:
    """One connection's queue of frames, its bound, its heartbeats and its counts.

    Args:
        now: the time it opens (the idle time before the first heartbeat counts from here).
        heartbeat_s: idle time after which a heartbeat is queued.
        max_backlog_bytes: queued bytes past which the client is shed.
        totals: more tallies counted with the connection's own (the simulator's totals).
    """

    __slots__ = (
        "_heartbeat_s",
        "_max_backlog",
        "_targets",
        "closed",
        "last_put",
        "queue",
        "queued_bytes",
        "sent",
        "shed",
    )

    def __init__(
        self,
        now: float,
        *,
        heartbeat_s: float,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
        totals: Sequence[Sent] = (),
    ) -> None:
        self._heartbeat_s = heartbeat_s
        self._max_backlog = max_backlog_bytes
        #: What was handed to the socket on this connection.
        self.sent = Sent()
        self._targets = (self.sent, *totals)
        self.queue: deque[Outgoing] = deque()
        self.queued_bytes = 0
        #: When something was last put (or streamed); heartbeats wait for this to be old.
        self.last_put = now
        #: What the client lost when it was shed (``None``: it was not).
        self.shed: Shed | None = None
        self.closed = False

    def put(
        self,
        now: float,
        payload: bytes | str,
        kind: Kind,
        ticks: int = 0,
        *,
        delay_s: float = 0.0,
        done: object = None,
    ) -> Put:
        """Queue ``payload``, due ``delay_s`` from ``now``; past the bound, shed the client."""
        if self.closed or self.shed is not None:
            return REFUSED
        self.queue.append(Outgoing(now + delay_s, payload, kind, ticks, done))
        self.queued_bytes += len(payload)
        self.last_put = now
        if self.queued_bytes > self._max_backlog:
            self.shed = Shed(len(self.queue), self.queued_bytes)
            return SHED
        return QUEUED

    def next(
        self, now: float, *, silent: bool = False, stream: bool = False, delay_s: float = 0.0
    ) -> Step:
        """What the send loop does now.

        Args:
            now: the time.
            silent: the connection sends nothing (a silence fault): queued items are lost and
                no heartbeat is queued.
            stream: the caller has frames to stream when nothing is queued (maximum rate).
            delay_s: the delay of a heartbeat queued now (the delay fault).
        """
        queue = self.queue
        if not queue:
            if stream and not silent:
                return _STREAM
            idle = now - self.last_put
            if idle < self._heartbeat_s:
                return Idle(self._heartbeat_s - idle)
            self.last_put = now
            if silent or self.put(now, HEARTBEAT, Kind.HEARTBEAT, delay_s=delay_s) is REFUSED:
                return Idle(self._heartbeat_s)
        item = queue[0]
        if item.due > now:
            return Wait(item.due - now)
        queue.popleft()
        self.queued_bytes -= len(item.payload)
        return Lose(item) if silent else Send(item)

    def sent_item(self, item: Outgoing) -> None:
        """Count ``item`` as handed to the socket."""
        size = len(item.payload)
        for target in self._targets:
            target.count(item.kind, item.ticks, size)

    def streamed(self, now: float, ticks: int, size: int) -> None:
        """Count a tick frame streamed at maximum rate (it also holds the heartbeat off)."""
        for target in self._targets:
            target.frames_sent += 1
            target.ticks_sent += ticks
            target.bytes_sent += size
        self.last_put = now

    def close(self) -> list[Outgoing]:
        """Take nothing more; return what was still queued (never sent)."""
        self.closed = True
        left = list(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        return left
