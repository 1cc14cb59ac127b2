"""One connection's life, sans-I/O: its states, its backoffs, and what each outcome leads to.

:class:`ConnectionLife` is what :class:`kitefan.connection.FeedConnection` decides with, in the
manner of :mod:`kitefan.session`: the connection tells it how an attempt or a socket ended
(:meth:`~ConnectionLife.attempt_failed`, :meth:`~ConnectionLife.refused`,
:meth:`~ConnectionLife.opened`, :meth:`~ConnectionLife.lost`, :meth:`~ConnectionLife.crashed`) and
carries out the steps it answers with, in order:

* :class:`Report`: the connection's state is now ``state``; tell the owner, with ``message``
  (and the ``gap`` a reconnect closed);
* :class:`TellRefused`: tell the owner the handshake was refused (HTTP 403 or 429), so that it
  re-plans;
* :class:`Pause`: wait ``seconds`` before the next attempt (cut short by a fresh token or a
  stop).

The rules: a failed attempt or a lost socket waits a capped exponential backoff with jitter
(:class:`~kitefan.retry.Backoff`), reset once a socket opens and subscribes; HTTP 403 waits
``auth_retry_s`` and HTTP 429 ``slot_retry_s``, any other status is a failed attempt; a bug (an
exception out of the connection) waits a backoff of its own, reset once the connection had
stayed up for ``backoff_max_s``; the first open after a loss counts a reconnect and reports the
gap since the last frame, over what the connection carries. Times are given, never read: a test
drives a whole life in microseconds.

Owns: ``ConnectionLife``, ``Report``, ``TellRefused``, ``Pause``. Must not import asyncio,
websockets, rich or typer.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from kitefan.events import ConnState, Gap
from kitefan.retry import Backoff, Refusal, classify_status
from kitefan.settings import Tuning

__all__ = ["ConnectionLife", "Opened", "Pause", "Report", "Step", "TellRefused"]


@dataclass(frozen=True, slots=True)
class Report:
    """The connection is now in ``state``: tell the owner."""

    state: ConnState
    message: str
    gap: Gap | None = None


@dataclass(frozen=True, slots=True)
class TellRefused:
    """Tell the owner the handshake was refused."""

    refusal: Refusal
    status: int


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait this long before the next attempt."""

    seconds: float


Step = Report | TellRefused | Pause


@dataclass(frozen=True, slots=True)
class Opened:
    """A socket opened and subscribed: what to report, and whether it closed a loss."""

    report: Report
    reconnected: bool


class ConnectionLife:
    """The policy of one connection slot, from its first attempt to its stop.

    Args:
        tuning: the backoff, the refusal waits and the liveness timeout.
        rng: the random source of the backoffs' jitter.
    """

    def __init__(self, tuning: Tuning, rng: random.Random | None = None) -> None:
        self.tuning = tuning
        rng = rng or random.Random()
        self._backoff = self._new_backoff(rng)
        self._restart_backoff = self._new_backoff(rng)
        #: Whether a socket of this connection ever opened and subscribed.
        self.ever_opened = False
        #: When the socket was lost (the last frame's wall time) and why, until the next open.
        self.lost_at: float | None = None
        self.lost_reason = ""

    def __repr__(self) -> str:
        return f"ConnectionLife(ever_opened={self.ever_opened}, lost_at={self.lost_at})"

    @property
    def liveness_s(self) -> float:
        """How long a socket may stay silent (heartbeats count as frames)."""
        return self.tuning.liveness_timeout_s

    def silent(self) -> str:
        """Why a socket that stayed silent past :attr:`liveness_s` is dropped."""
        return f"no frame for {self.liveness_s:g} s"

    def attempt_failed(self, reason: str) -> tuple[Step, ...]:
        """The socket did not open (``reason``, already free of secrets)."""
        delay = self._backoff.next_delay()
        return (
            Report(self._waiting_state(), f"attempt failed: {reason}; next try in {delay:.1f} s"),
            Pause(delay),
        )

    def refused(self, status: int) -> tuple[Step, ...]:
        """The server answered the handshake with HTTP ``status`` (not a redirect)."""
        refusal = classify_status(status)
        if refusal is Refusal.AUTH:
            return (
                Report(ConnState.AUTH_FAILED, f"refused with HTTP {status}"),
                TellRefused(refusal, status),
                Pause(self.tuning.auth_retry_s),
            )
        if refusal is Refusal.SLOTS:
            return (
                Report(ConnState.SLOT_LIMITED, f"refused with HTTP {status}"),
                TellRefused(refusal, status),
                Pause(self.tuning.slot_retry_s),
            )
        return self.attempt_failed(f"HTTP {status}")

    def opened(self, now: float, carried: Iterable[int]) -> Opened:
        """A socket opened and its subscriptions went out, at wall time ``now``, carrying the
        tokens ``carried``."""
        self._backoff.reset()
        lost_at, reason = self.lost_at, self.lost_reason
        self.lost_at, self.lost_reason = None, ""
        self.ever_opened = True
        if lost_at is None:
            return Opened(Report(ConnState.CONNECTED, "connected"), reconnected=False)
        tokens = tuple(carried)
        gap = Gap(lost_at, now, tokens, reason) if tokens else None
        message = f"reconnected after {now - lost_at:.1f} s"
        return Opened(Report(ConnState.CONNECTED, message, gap), reconnected=True)

    def lost(self, reason: str, last_frame: float) -> tuple[Step, ...]:
        """An open socket ended (``reason``); its last frame came at wall time ``last_frame``."""
        self.lost_at, self.lost_reason = last_frame, reason
        return (
            Report(ConnState.RECONNECTING, f"lost: {reason}"),
            Pause(self._backoff.next_delay()),
        )

    def crashed(
        self, reason: str, *, uptime_s: float | None, last_frame: float
    ) -> tuple[Step, ...]:
        """An exception out of the connection (a bug, ``reason`` says which), after it had been
        up for ``uptime_s`` (``None``: never up); its last frame came at ``last_frame``."""
        if uptime_s is not None and uptime_s > self.tuning.backoff_max_s:
            self._restart_backoff.reset()
        if self.ever_opened:
            self.lost_at, self.lost_reason = last_frame, reason
        else:
            self.lost_at, self.lost_reason = None, ""
        return (
            Report(self._waiting_state(), f"lost: {reason}"),
            Pause(self._restart_backoff.next_delay()),
        )

    def _waiting_state(self) -> ConnState:
        return ConnState.RECONNECTING if self.ever_opened else ConnState.CONNECTING

    def _new_backoff(self, rng: random.Random) -> Backoff:
        t = self.tuning
        return Backoff(
            t.backoff_initial_s, t.backoff_factor, t.backoff_max_s, t.backoff_jitter, rng
        )
