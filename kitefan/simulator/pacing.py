"""The simulator's pacing, sans-I/O: when each market step and each recorded instant is due.

* **The market at a rate** (``Simulator(rate=R)``): the subscribed tokens are spread over
  :class:`TokenSlices` (1 to 20 slices, about one per 0.1 s of the period ``1/R``, a token's
  slice fixed by a hash of its number), and :class:`MarketSchedule` steps one slice every
  ``period / slices`` seconds, round robin, so that no token moves more than ``R`` times a
  second: a slice is never stepped again less than a period after its last step. A driver that
  falls behind goes on from where it is: late steps go at once, one at a time, and the schedule
  restarts from then, with no burst to catch up.
* **A recording** (``Simulator(replay=...)``): :func:`lead_in_wait` says when a replay starts
  (a quarter of a second after the last request that followed the first subscription, at most
  2 s after that subscription), and :class:`ReplaySchedule` when each instant of a pass is due:
  at a speed, ``(t_i - t_0) / speed`` after the pass began (late instants go at once: the
  schedule is kept, not the gaps); at maximum speed, once every connection's queue is under
  ``low_water_bytes`` (1 MiB).

Times are given, never read: the driver (:mod:`kitefan.simulator.server`) sleeps what these
answer and steps or sends; a test runs a schedule on a virtual clock.

Owns: ``TokenSlices``, ``MarketSchedule``, ``MarketStep``, ``ReplaySchedule``,
``lead_in_wait``, ``slice_count``. Must not import asyncio, websockets, the server, rich or typer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

__all__ = [
    "LEAD_IN_S",
    "MAX_LEAD_IN_S",
    "REPLAY_LOW_WATER",
    "MarketSchedule",
    "MarketStep",
    "ReplaySchedule",
    "TokenSlices",
    "lead_in_wait",
    "slice_count",
]

#: A replay starts once no request came for this long after the first subscription...
LEAD_IN_S = 0.25
#: ...or this long after it, whichever is first.
MAX_LEAD_IN_S = 2.0
#: At maximum speed a replay waits for every connection's queue to be under this.
REPLAY_LOW_WATER = 1024 * 1024


def slice_count(rate: float | None) -> int:
    """How many slices the market's tokens are spread over at ``rate`` (1 at maximum rate)."""
    if rate is None:
        return 1
    return max(1, min(20, round(1.0 / rate / 0.1)))


class TokenSlices:
    """The subscribed tokens, each in one slice (fixed by its number)."""

    __slots__ = ("slices",)

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("at least one slice")
        self.slices: list[set[int]] = [set() for _ in range(count)]

    def __len__(self) -> int:
        return len(self.slices)

    def slice_of(self, token: int) -> int:
        """The slice ``token`` is in (a multiplicative hash, so neighbours spread)."""
        return (token * 0x9E3779B1 & 0xFFFFFFFF) % len(self.slices)

    def add(self, token: int) -> None:
        """Step ``token`` from now on."""
        self.slices[self.slice_of(token)].add(token)

    def discard(self, token: int) -> None:
        """Step ``token`` no more."""
        self.slices[self.slice_of(token)].discard(token)

    def __getitem__(self, index: int) -> set[int]:
        return self.slices[index]


class MarketStep(NamedTuple):
    """Step slice ``slice`` once ``wait`` seconds have passed (0: at once)."""

    slice: int
    wait: float


class MarketSchedule:
    """When each slice is stepped at ``rate`` steps per token per second.

    Args:
        rate: steps per token per second.
        slices: how many slices (:func:`slice_count`).
        now: when the schedule starts (the first slice is due one interval after).

    Use: ``step = schedule.due(now)``; wait ``step.wait``; step slice ``step.slice``;
    ``schedule.ran(now)``.
    """

    __slots__ = ("_index", "_interval", "_last_run", "_next_at", "_period", "_planned")

    def __init__(self, rate: float, slices: int, now: float) -> None:
        if not (math.isfinite(rate) and rate > 0) or slices < 1:
            raise ValueError("a schedule needs a rate above 0 and a slice")
        self._period = 1.0 / rate
        self._interval = self._period / slices
        self._last_run = [-math.inf] * slices
        self._next_at = now
        self._planned = now
        self._index = 0

    def due(self, now: float) -> MarketStep:
        """The next slice to step and how long until it is due; a late one is due now, and the
        schedule goes on from ``now`` (no burst to catch up). Asking again before :meth:`ran`
        answers the same slice."""
        index = self._index
        next_at = max(self._next_at + self._interval, self._last_run[index] + self._period)
        wait = next_at - now
        if wait <= 0:
            next_at = now
            wait = 0.0
        self._planned = next_at
        return MarketStep(index, wait)

    def ran(self, now: float) -> None:
        """The slice :meth:`due` named last was stepped at ``now``."""
        self._next_at = self._planned
        self._last_run[self._index] = now
        self._index = (self._index + 1) % len(self._last_run)


def lead_in_wait(first_subscribed: float, last_request: float, now: float) -> float:
    """How long until a replay starts (0 or less: start now), given when the first subscription
    came and when the last request did."""
    return min(last_request + LEAD_IN_S, first_subscribed + MAX_LEAD_IN_S) - now


class ReplaySchedule:
    """When each instant of a pass of a recording is due.

    Args:
        speed: recorded seconds per second; ``None`` for as fast as the clients read.
        low_water_bytes: at maximum speed, the queue every connection must be under before
            the next instant.

    Use: ``schedule.begin(now)`` at the start of each pass, then for each instant
    ``schedule.wait(instant.time_ns, now, backlog)``.
    """

    __slots__ = ("_low_water", "_origin_ns", "_speed", "_start")

    def __init__(self, speed: float | None, *, low_water_bytes: int = REPLAY_LOW_WATER) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError("a replay's speed is more than 0 (or None for the maximum)")
        self._speed = speed
        self._low_water = low_water_bytes
        self._start = 0.0
        self._origin_ns: int | None = None

    def begin(self, now: float) -> None:
        """A pass begins at ``now``: its first instant is due at once."""
        self._start = now
        self._origin_ns = None

    def drained(self, backlog: int) -> bool:
        """Whether a connection with ``backlog`` bytes queued lets the next instant go."""
        return backlog <= self._low_water

    def wait(self, time_ns: int, now: float, backlog: Callable[[], int]) -> float | None:
        """How long until the instant recorded at ``time_ns`` is due (0 or less: now), or
        ``None``: wait until every connection's queue is under the low water mark (maximum
        speed; ``backlog()`` is the largest queue, asked only then)."""
        speed = self._speed
        if speed is None:
            return 0.0 if backlog() <= self._low_water else None
        origin = self._origin_ns
        if origin is None:
            origin = self._origin_ns = time_ns
        return self._start + (time_ns - origin) / 1e9 / speed - now
