"""The simulator's faults, sans-I/O: the plan of ``kitefan simulate``, when each of its faults
fires, and the standing faults a connection is subject to.

Pure. :func:`parse_fault_plan` reads a :class:`FaultPlan` from the command line;
:class:`FaultSchedule` says when each of its faults fires (typed actions: :class:`DropConnections`,
:class:`CloseConnections`, :class:`SendMalformed`, :class:`SetSilent`, :class:`ExpireToken`), and
``Simulator.run_faults`` sleeps what it says and carries the actions out. :class:`FaultState`
holds the faults that stand until changed (silence, delay, redirect, one-sided packet loss) and
decides, per packet, which connection loses it. Times are given, never read: seconds from the
moment the simulator starts serving, on whatever clock the driver passes. The specs:

==============================  ==================================================================
``--drop-every S``              every S seconds, drop every connection without a close frame (TCP
                                abort: clients see 1006)
``--close-every S[:CODE]``      every S seconds, close every connection cleanly with CODE (1000)
``--silent-after S[:D]``        after S seconds go silent: no frames at all, not even heartbeats,
                                for D seconds (default: until stopped)
``--expire-after KEY_ID:S``     after S seconds, the access token of the key with that config id
                                expires: new handshakes with it get HTTP 403 and its open
                                connections are dropped (repeatable)
``--delay-ms MS``               delay every outgoing frame by MS milliseconds
``--malformed-every S``         every S seconds, send one malformed binary frame on every
                                connection
``--drop-packets KEY_ID:N``     the key with that config id loses every N-th packet it shares
                                with another key (they still get it): one-sided ticks for
                                ``redundancy = 2`` (repeatable)
==============================  ==================================================================

Owns: :class:`FaultPlan`, :func:`parse_fault_plan`, :class:`FaultSpecError`,
:class:`FaultSchedule` and its actions, :class:`FaultState`. Must not import asyncio,
websockets, the server, rich or typer.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Generic, TypeVar

__all__ = [
    "CloseConnections",
    "DropConnections",
    "ExpireToken",
    "FaultAction",
    "FaultPlan",
    "FaultSchedule",
    "FaultSpecError",
    "FaultState",
    "SendMalformed",
    "SetSilent",
    "parse_fault_plan",
    "parse_seconds",
]

# Close codes an endpoint may send (RFC 6455 §7.4; 1005, 1006 and 1015 are never sent).
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})


class FaultSpecError(ValueError):
    """A fault option that cannot be read.

    Attributes:
        option: the command-line option (``--silent-after``).
        text: what was given.
        expected: what the option takes.
    """

    def __init__(self, option: str, text: str, expected: str) -> None:
        self.option = option
        self.text = text
        self.expected = expected
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.option}: expected {self.expected}, got {self.text!r}"


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What to break, and when (seconds from the start of serving).

    Attributes:
        drop_every_s: period of dropping every connection without a close frame.
        close_every_s: period of closing every connection cleanly.
        close_code: the close code of those closes.
        silent_after_s: when to go silent.
        silent_for_s: for how long (``None``: until stopped).
        expire_after: ``(key label, seconds)`` pairs: when each key's token expires.
        delay_s: delay of every outgoing frame.
        malformed_every_s: period of sending a malformed frame on every connection.
        drop_packets: ``(key label, n)`` pairs: each key loses every n-th packet it shares.
    """

    drop_every_s: float | None = None
    close_every_s: float | None = None
    close_code: int = 1000
    silent_after_s: float | None = None
    silent_for_s: float | None = None
    expire_after: tuple[tuple[str, float], ...] = ()
    delay_s: float = 0.0
    malformed_every_s: float | None = None
    drop_packets: tuple[tuple[str, int], ...] = ()

    def describe(self) -> list[str]:
        """One short phrase per fault, for the log (key labels only, never credentials)."""
        said: list[str] = []
        if self.drop_every_s is not None:
            said.append(f"drop every connection every {self.drop_every_s:g}s")
        if self.close_every_s is not None:
            said.append(
                f"close every connection with {self.close_code} every {self.close_every_s:g}s"
            )
        if self.silent_after_s is not None:
            span = "" if self.silent_for_s is None else f" for {self.silent_for_s:g}s"
            said.append(f"go silent after {self.silent_after_s:g}s{span}")
        for label, after in self.expire_after:
            said.append(f"expire the token of key {label!r} after {after:g}s")
        if self.delay_s:
            said.append(f"delay every frame by {self.delay_s * 1000:g}ms")
        if self.malformed_every_s is not None:
            said.append(f"send a malformed frame every {self.malformed_every_s:g}s")
        for label, every in self.drop_packets:
            said.append(f"key {label!r} loses 1 in {every} packets it shares with another key")
        return said


def parse_seconds(
    option: str, text: str, *, allow_zero: bool = False, unit: str = "seconds"
) -> float:
    """A number typed for ``option``: finite, more than 0 (or 0 with ``allow_zero``).

    Args:
        option: the command-line option, for the message.
        text: what was typed.
        allow_zero: whether 0 is allowed.
        unit: what the number counts, for the message.

    Raises:
        FaultSpecError: it is not such a number; the message names the option.
    """
    expected = f"a number of {unit}" + (" (0 or more)" if allow_zero else " (more than 0)")
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(option, text, expected) from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise FaultSpecError(option, text, expected)
    return value


def parse_fault_plan(
    *,
    drop_every: str | None = None,
    close_every: str | None = None,
    silent_after: str | None = None,
    expire_after: Sequence[str] = (),
    delay_ms: str | None = None,
    malformed_every: str | None = None,
    drop_packets: Sequence[str] = (),
) -> FaultPlan:
    """Read the fault options of ``kitefan simulate`` (each as typed on the command line).

    Args:
        drop_every: ``SECONDS``.
        close_every: ``SECONDS[:CODE]``.
        silent_after: ``SECONDS[:DURATION]``.
        expire_after: ``KEY_ID:SECONDS`` specs.
        delay_ms: ``MILLISECONDS``.
        malformed_every: ``SECONDS``.
        drop_packets: ``KEY_ID:N`` specs (N a whole number, 1 or more).

    Returns:
        The plan; options not given stay off.

    Raises:
        FaultSpecError: an option does not follow its spec; the message names it.
    """
    drop = None if drop_every is None else parse_seconds("--drop-every", drop_every)
    close = None
    code = 1000
    if close_every is not None:
        period, _, code_text = close_every.partition(":")
        close = parse_seconds("--close-every", period)
        if code_text:
            expected = (
                "SECONDS[:CODE] with a close code a server may send "
                "(1000-1003, 1007-1014, 3000-4999)"
            )
            if not code_text.isdigit():
                raise FaultSpecError("--close-every", close_every, expected)
            code = int(code_text)
            if code not in _SENDABLE_CODES and not 3000 <= code <= 4999:
                raise FaultSpecError("--close-every", close_every, expected)
    silent = None
    silent_for = None
    if silent_after is not None:
        after, colon, duration = silent_after.partition(":")
        silent = parse_seconds("--silent-after", after, allow_zero=True)
        if colon:
            silent_for = parse_seconds("--silent-after", duration)
    expiries: list[tuple[str, float]] = []
    for spec in expire_after:
        label, colon, after = spec.rpartition(":")
        if not colon or not label:
            raise FaultSpecError("--expire-after", spec, "KEY_ID:SECONDS")
        expiries.append((label, parse_seconds("--expire-after", after, allow_zero=True)))
    delay = (
        0.0
        if delay_ms is None
        else parse_seconds("--delay-ms", delay_ms, allow_zero=True, unit="milliseconds") / 1000
    )
    malformed = None
    if malformed_every is not None:
        malformed = parse_seconds("--malformed-every", malformed_every)
    losses: list[tuple[str, int]] = []
    for spec in drop_packets:
        label, colon, every = spec.rpartition(":")
        if not colon or not label or not every.isdigit() or int(every) < 1:
            raise FaultSpecError("--drop-packets", spec, "KEY_ID:N with N a whole number from 1")
        losses.append((label, int(every)))
    return FaultPlan(
        drop_every_s=drop,
        close_every_s=close,
        close_code=code,
        silent_after_s=silent,
        silent_for_s=silent_for,
        expire_after=tuple(expiries),
        delay_s=delay,
        malformed_every_s=malformed,
        drop_packets=tuple(losses),
    )


# Carrying a plan out ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DropConnections:
    """Drop every connection without a close frame."""


@dataclass(frozen=True, slots=True)
class CloseConnections:
    """Close every connection cleanly with ``code``."""

    code: int


@dataclass(frozen=True, slots=True)
class SendMalformed:
    """Send one malformed binary frame on every connection."""


@dataclass(frozen=True, slots=True)
class SetSilent:
    """Go silent (``True``) or speak again (``False``), on every key."""

    silent: bool


@dataclass(frozen=True, slots=True)
class ExpireToken:
    """Expire the token of the key labelled ``label`` (and drop its connections)."""

    label: str


FaultAction = DropConnections | CloseConnections | SendMalformed | SetSilent | ExpireToken


class FaultSchedule:
    """When each fault of a plan fires, from ``start`` (seconds, any clock).

    The periodic faults fire at ``start + k * period`` (k = 1, 2, ...); a driver that is late by
    more than a period gets each fault once, and the next one at the first multiple still ahead
    (no burst to catch up). The one-shot faults (silence and its end, token expiries) fire once.
    Faults due at the same moment come in the plan's order: drop, close, malformed, silence,
    expiries. The plan's standing faults (``delay_s``, ``drop_packets``) are the driver's to set
    at the start; they have no time.

    Use: ``wait = schedule.wait(now)`` (``None``: nothing more will fire); sleep it; carry out
    ``schedule.fire(now)``.
    """

    __slots__ = ("_due",)

    def __init__(self, plan: FaultPlan, start: float) -> None:
        # [when, order, period or None, action]
        self._due: list[tuple[float, int, float | None, FaultAction]] = []
        periodic: list[tuple[float | None, FaultAction]] = [
            (plan.drop_every_s, DropConnections()),
            (plan.close_every_s, CloseConnections(plan.close_code)),
            (plan.malformed_every_s, SendMalformed()),
        ]
        for period, action in periodic:
            if period is not None:
                self._due.append((start + period, len(self._due), period, action))
        if plan.silent_after_s is not None:
            after = start + plan.silent_after_s
            self._due.append((after, len(self._due), None, SetSilent(True)))
            if plan.silent_for_s is not None:
                self._due.append(
                    (after + plan.silent_for_s, len(self._due), None, SetSilent(False))
                )
        for label, after_s in plan.expire_after:
            self._due.append((start + after_s, len(self._due), None, ExpireToken(label)))

    def wait(self, now: float) -> float | None:
        """Seconds until the next fault (0 if one is due), or ``None`` if none will come."""
        if not self._due:
            return None
        return max(0.0, min(entry[0] for entry in self._due) - now)

    def fire(self, now: float) -> list[FaultAction]:
        """The faults due at ``now``, in order; each periodic one is due again a period on."""
        due = sorted(entry for entry in self._due if entry[0] <= now)
        if not due:
            return []
        keep = [entry for entry in self._due if entry[0] > now]
        for when, order, period, action in due:
            if period is not None:
                skipped = math.floor((now - when) / period)
                keep.append((when + (skipped + 1) * period, order, period, action))
        self._due = keep
        return [entry[3] for entry in due]


K = TypeVar("K", bound=Hashable)


class FaultState(Generic[K]):
    """The standing faults of a running simulator, by key (any hashable naming a key).

    * **Silence**: on every key, or on some; a silent key's connections send nothing.
    * **Delay**: every outgoing frame waits this long.
    * **Redirect**: every handshake is answered with this 3xx and ``Location``.
    * **One-sided loss** (``--drop-packets KEY:N``): of the packets a step sends both to a
      connection of a losing key and to a connection of another key that is not silent, every
      N-th (counted per key) is not sent to the losing key; :meth:`lose` says which.
    """

    __slots__ = ("_dropped", "_every", "_shared", "_silent", "delay_s", "redirect", "silent_all")

    def __init__(self) -> None:
        self.silent_all = False
        self._silent: set[K] = set()
        self.delay_s = 0.0
        self.redirect: tuple[HTTPStatus, str | None] | None = None
        self._every: dict[K, int] = {}
        self._shared: dict[K, int] = {}
        self._dropped: dict[K, int] = {}

    # Silence

    def silent(self, key: K) -> bool:
        """Whether the key's connections send nothing now."""
        return self.silent_all or key in self._silent

    def set_silent(self, silent: bool, key: K | None = None) -> None:
        """Silence (or let speak) one key, or every key; speaking on every key lifts the
        per-key silences too."""
        if key is None:
            self.silent_all = silent
            if not silent:
                self._silent.clear()
        elif silent:
            self._silent.add(key)
        else:
            self._silent.discard(key)

    # Delay and redirect

    def set_delay(self, seconds: float) -> None:
        """Delay every outgoing frame by ``seconds``.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError("a delay is 0 or more seconds")
        self.delay_s = seconds

    def set_redirect(self, status: int | None, location: str | None = None) -> None:
        """Answer every handshake with ``status`` and ``location``; ``None`` serves again.

        Raises:
            ValueError: ``status`` is not a 3xx HTTP status, or ``location`` has a line break.
        """
        if status is None:
            self.redirect = None
            return
        if not 300 <= status <= 399 or status not in {s.value for s in HTTPStatus}:
            raise ValueError(f"a redirect is HTTP 300 to 305, 307 or 308, not {status}")
        if location is not None and ("\r" in location or "\n" in location):
            raise ValueError("a Location cannot have a line break")
        self.redirect = (HTTPStatus(status), location)

    # One-sided loss

    @property
    def dropping(self) -> bool:
        """Whether any key loses packets."""
        return bool(self._every)

    def drop_packets(self, key: K, every: int) -> None:
        """The key loses every ``every``-th packet it shares (0: none).

        Raises:
            ValueError: ``every`` is negative.
        """
        if every < 0:
            raise ValueError("every is 0 (no loss) or more")
        if every:
            self._every[key] = every
        else:
            self._every.pop(key, None)

    def packets_dropped(self, key: K) -> int:
        """How many packets the key lost so far."""
        return self._dropped.get(key, 0)

    def lose(self, getting: Sequence[K]) -> list[int]:
        """Which of the connections getting one packet (their keys, in order) do not get it.

        A connection loses it when its key loses packets, is not silent, and a connection of
        another key that is not silent gets the packet too; each such sharing counts towards
        the key's every N-th.
        """
        lost: list[int] = []
        every = self._every
        for index, key in enumerate(getting):
            n = every.get(key)
            if not n or self.silent(key):
                continue
            if not any(other != key and not self.silent(other) for other in getting):
                continue
            shared = self._shared[key] = self._shared.get(key, 0) + 1
            if shared % n == 0:
                self._dropped[key] = self._dropped.get(key, 0) + 1
                lost.append(index)
        return lost
