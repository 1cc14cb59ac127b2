"""What a running feed hands on: tick batches, status changes, order updates, server errors.

Every item is tagged with the key (its config id) and the connection (0, 1 or 2) it came from.
Ticks travel in batches, one per frame, because per-tick queueing is too slow for the volumes
Kite sends at the open.

Owns: the event types, the connection/key states and the words a status event carries
(:class:`Status`). Must not import asyncio, websockets, rich or typer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

from kitefan.codec import decode_packets, encode_frame, scan_frame
from kitefan.models import OrderUpdate, Tick

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "ConnState",
    "ErrorEvent",
    "Event",
    "Gap",
    "KeyState",
    "OrderEvent",
    "Status",
    "StatusEvent",
    "TickBatch",
]


class ConnState(StrEnum):
    """The state of one connection."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    AUTH_FAILED = "auth_failed"
    SLOT_LIMITED = "slot_limited"
    CLOSED = "closed"


class KeyState(StrEnum):
    """The state of one key, from its connections."""

    CONNECTED = "connected"
    CONNECTING = "connecting"
    RECONNECTING = "reconnecting"
    AUTH_FAILED = "auth_failed"
    SLOT_LIMITED = "slot_limited"
    IDLE = "idle"
    CLOSED = "closed"


class Status(StrEnum):
    """What a :class:`StatusEvent` says: every word its ``state`` can carry.

    One enum, not a union of :class:`ConnState`, :class:`KeyState` and the feed's own words: the
    same word means the same thing whoever sends it (``connected`` is a connection that opened
    or a key whose refusal is over), and what the event is about is told by its ``key`` (``*``
    is the whole feed) and ``connection`` (``None`` is the whole key), not by the word. A
    :class:`~enum.StrEnum`, so a member is the very string recorded, published and printed
    (``json.dumps`` writes ``"connected"``) and ``event.state == "connected"`` keeps working.

    Connection ``N`` of a key (``connection`` is ``N``), from its life (:mod:`kitefan.lifecycle`):

    * ``connecting``: an attempt before the connection ever opened failed; the message says why
      and when the next try is (``attempt failed: …; next try in 2.0 s``).
    * ``connected``: it opened (message ``connected``), or opened again after it was lost and
      resubscribed (the event carries the :class:`Gap`). Also sent for a key (``connection``
      ``None``) whose token is accepted again, and for a connection whose slot is won back after
      a 429 (by :class:`~kitefan.failover.FeedHealth`).
    * ``reconnecting``: it was lost (``lost: …``), or an attempt to open it again failed.
    * ``message``: the server sent a text that is not an error (the message is that text).

    A key, from its health (:class:`~kitefan.failover.FeedHealth`):

    * ``auth_failed``: the key was refused with HTTP 403 (``connection`` ``None``).
    * ``slot_limited``: connection ``N`` was refused with HTTP 429: another program holds it.

    The whole feed (key ``*``):

    * ``replan_failed``: the symbols could not be re-planned around the failed keys.
    * ``config_applied``: a config change was applied (SIGHUP, ``kitefan distribute``); the
      message is its summary.
    * ``config_rejected``: a config change was not applied; the message says why.
    * ``publish_failed``: publishing to Redis is in trouble (``kitefan stream --publish``).

    A shared key (``kitefan stream --share``, :mod:`kitefan.share`; ``connection`` ``None``):

    * ``taken_over``: this process took the key over from another; the event carries the gap
      its symbols streamed nowhere.
    * ``lease_lapsed``: the key stopped here because its lease could not be renewed in time.

    A status read back (a recording, a Redis entry, a jsonl record) may carry a word this
    version does not know: :meth:`read` keeps it, as a ``Status`` that is no member
    (:attr:`known` is false) and prints, records and compares as the word it is, so an old
    kitefan reads a newer one's records instead of failing.
    """

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    MESSAGE = "message"
    AUTH_FAILED = "auth_failed"
    SLOT_LIMITED = "slot_limited"
    REPLAN_FAILED = "replan_failed"
    CONFIG_APPLIED = "config_applied"
    CONFIG_REJECTED = "config_rejected"
    PUBLISH_FAILED = "publish_failed"
    TAKEN_OVER = "taken_over"
    LEASE_LAPSED = "lease_lapsed"

    @classmethod
    def read(cls, word: str) -> Self:
        """The status a record says: its member, or, for a word this version does not know, a
        ``Status`` of that word that is no member (never raises)."""
        try:
            return cls(word)
        except ValueError:
            unknown = str.__new__(cls, word)
            unknown._value_ = word
            unknown._name_ = word
            return unknown

    @classmethod
    def of_connection(cls, state: ConnState) -> Status | None:
        """The status a connection in ``state`` reports itself with; ``None`` for the states
        it does not report (a refusal is reported for the key, a close not at all)."""
        return _CONNECTION_STATUS.get(state)

    @property
    def known(self) -> bool:
        """Whether this is a member (not a word :meth:`read` did not know)."""
        return type(self).__members__.get(self._name_) is self

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        # A plain function, not the bound classmethod: a word that is no member pickles too,
        # whatever reducer of methods a library (twisted) may have registered.
        return (_read_status, (self._value_,))


def _read_status(word: str) -> Status:
    """:meth:`Status.read` (what a pickled status is rebuilt with)."""
    return Status.read(word)


_CONNECTION_STATUS = {
    ConnState.CONNECTING: Status.CONNECTING,
    ConnState.CONNECTED: Status.CONNECTED,
    ConnState.RECONNECTING: Status.RECONNECTING,
}


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch of time in which a connection's symbols did not stream.

    ``start`` is when the connection was lost (its last frame), ``end`` when it was back and
    resubscribed; both are Unix seconds. ``tokens`` are the symbols it carried.
    """

    start: float
    end: float
    tokens: tuple[int, ...]
    reason: str

    @property
    def seconds(self) -> float:
        return self.end - self.start


class TickBatch:
    """The ticks of one frame, kept as the frame's bytes and decoded once, on first use.

    What comes off the socket is a frame: the packets of one connection at one moment. A batch
    holds that frame exactly as it was received (``frame``), where it came from (``key``,
    ``connection``), when (``received_at`` is ``time.perf_counter()`` when it was read off the
    socket, for latency; ``received_wall`` the Unix time of the same moment), and how many ticks it
    holds (``len(batch)``, known without decoding). :attr:`ticks` decodes it the first time anyone
    asks and keeps the result, so every consumer of the same batch shares one decode, and a batch
    dropped from a full queue is never decoded at all.

    The connection checks a frame's structure (:func:`kitefan.codec.scan_frame`) before it makes a
    batch of it, so decoding a batch never fails.
    """

    __slots__ = ("_ticks", "connection", "count", "frame", "key", "received_at", "received_wall")

    key: str
    connection: int
    frame: bytes
    count: int
    received_at: float
    received_wall: float

    def __init__(
        self,
        key: str,
        connection: int,
        frame: bytes,
        received_at: float,
        received_wall: float,
        *,
        count: int | None = None,
    ) -> None:
        self.key = key
        self.connection = connection
        self.frame = frame
        self.received_at = received_at
        self.received_wall = received_wall
        self._ticks: list[Tick] | None = None
        if count is None:
            count = scan_frame(frame)[0]
        self.count = count

    @classmethod
    def of_ticks(
        cls,
        key: str,
        connection: int,
        ticks: Sequence[Tick],
        received_at: float = 0.0,
        received_wall: float = 0.0,
    ) -> TickBatch:
        """A batch of ticks that did not come off a socket (tests, a replay): their frame is
        encoded."""
        batch = cls(
            key, connection, encode_frame(ticks), received_at, received_wall, count=len(ticks)
        )
        batch._ticks = list(ticks)
        return batch

    @property
    def ticks(self) -> list[Tick]:
        """The frame's ticks, in frame order (decoded on first use, then kept)."""
        ticks = self._ticks
        if ticks is None:
            ticks = self._ticks = decode_packets(self.frame)[0]
        return ticks

    def to_numpy(self) -> dict[str, npt.NDArray[Any]]:
        """The frame's ticks as numpy columns, read straight from :attr:`frame` (no
        :class:`Tick` is built), tagged with ``key``, ``connection``, ``received_at`` and
        ``received_wall``: the schema of :mod:`kitefan.columnar`. Needs numpy
        (``pip install 'kitefan[columnar]'``); for many batches at once, use
        :func:`kitefan.columnar.batches_to_numpy`."""
        from kitefan.columnar import batches_to_numpy

        return batches_to_numpy([self])

    def to_arrow(self) -> Any:
        """The frame's ticks as a ``pyarrow.Table`` (schema: :mod:`kitefan.columnar`): nulls
        where a packet kind lacks a field, timestamps in ``Asia/Kolkata``. Needs pyarrow
        (``pip install 'kitefan[parquet]'``). ``polars.from_arrow(table)`` and
        ``table.to_pandas()`` take it on; for many batches at once, use
        :func:`kitefan.columnar.batches_to_arrow`."""
        from kitefan.columnar import batches_to_arrow

        return batches_to_arrow([self])

    @property
    def decoded(self) -> bool:
        """Whether :attr:`ticks` has been decoded already."""
        return self._ticks is not None

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (
            f"TickBatch(key={self.key!r}, connection={self.connection}, ticks={self.count}, "
            f"bytes={len(self.frame)})"
        )


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A connection or key changed state, or the feed says something; a reconnect carries the
    gap it closed.

    ``key`` is a key's config id, or ``*`` for the whole feed; ``connection`` the connection's
    index, or ``None`` for the whole key. ``state`` says what happened (:class:`Status`).
    """

    key: str
    connection: int | None
    state: Status
    message: str
    at: float
    gap: Gap | None = None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order update, delivered once per key however many connections received it."""

    key: str
    connection: int
    update: OrderUpdate
    at: float


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """An error on a connection: a text the server sent as an error, a frame or text that did not
    decode (``skipped a ...: why``), or an internal error (the connection is restarted).

    ``text`` is exactly what the server sent, control characters included; renderers show it
    through :func:`kitefan.render.text.printable`.
    """

    key: str
    connection: int
    text: str
    at: float


Event = TickBatch | StatusEvent | OrderEvent | ErrorEvent
