"""What a running feed hands on: tick batches, status changes, order updates, server errors.

Every item is tagged with the key (its config id) and the connection (0, 1 or 2) it came from.
Ticks travel in batches, one per frame, because per-tick queueing is too slow for the volumes
Kite sends at the open.

Owns: the event types and the connection/key states. Must not import asyncio, websockets, rich
or typer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kitefan.models import OrderUpdate, Tick

__all__ = [
    "ConnState",
    "ErrorEvent",
    "Event",
    "Gap",
    "KeyState",
    "OrderEvent",
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


@dataclass(frozen=True, slots=True)
class TickBatch:
    """The ticks of one frame.

    ``received_at`` is ``time.perf_counter()`` when the frame was read off the socket (for
    latency), ``received_wall`` is the Unix time of the same moment.
    """

    key: str
    connection: int
    ticks: list[Tick]
    received_at: float
    received_wall: float


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A connection or key changed state; a reconnect carries the gap it closed."""

    key: str
    connection: int | None
    state: str
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
