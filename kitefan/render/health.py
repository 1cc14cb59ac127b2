"""A feed's health as the lines a pipe's stderr shows (``kitefan stream --format jsonl|csv|none``).

In a pipe the records go to stdout and nobody watches a dashboard: what goes wrong must still
reach a person, on stderr, one line per event, naming the key:

* ``warning: key bravo: refused with HTTP 403: …`` (a token expired; the failover, if any, says
  where its symbols went), ``warning: key bravo, connection 0: lost (…); reconnecting``,
  ``warning: key bravo, connection 0: cannot connect: … ; next try in 2.0 s``, a 429, a server's
  error text, a config not applied (SIGHUP, ``kitefan distribute``), Redis publish trouble;
* ``warning: key bravo, connection 0: back after 15.3 s; its 8 symbols have a gap from
  10:02:05 to 10:02:20 IST``: the records have a hole there;
* ``kitefan: key bravo: token accepted again`` and the like: a problem warned about is over.

Repeats are folded: a warning identical to one shown in the last ``repeat_window_s`` (60 s; a
retry's "next try in" does not count) is not shown but counted, and the next one shown after the
window, or the end of the problem, says ``(repeated N times since HH:MM:SS IST)``. While no key
has connected yet, a key's refusal (403) is held for ``hold_s``: when every key is refused the
stream ends with one error line, and these warnings, whose advice no longer applies, are dropped.

Pure: events in, lines out; the caller prints them and says what the time is.

Owns: ``HealthLines``. Must not import asyncio, websockets, rich or typer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from kitefan.events import ErrorEvent, Event, Status, StatusEvent
from kitefan.models import IST
from kitefan.render.text import printable

__all__ = ["HealthLines"]

_RETRY = re.compile(r"; next try in [0-9.]+ s$")
_FEED_WARNINGS = frozenset({Status.CONFIG_REJECTED, Status.REPLAN_FAILED, Status.PUBLISH_FAILED})
_FEED_NEWS = frozenset({Status.CONFIG_APPLIED})


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=IST).strftime("%H:%M:%S")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


@dataclass
class _Seen:
    shown_at: float
    repeats: int = 0


class HealthLines:
    """Which events a pipe's stderr shows, worded, with repeats folded.

    Args:
        moved_to: the keys that now carry a refused key's symbols (the failover), for the line
            of a refusal; empty when they have nowhere to go.
        repeat_window_s: how long an identical warning is counted instead of shown.
        hold_s: how long a refusal is held while no key has connected yet.
    """

    def __init__(
        self,
        moved_to: Callable[[str], Sequence[str]] | None = None,
        *,
        repeat_window_s: float = 60.0,
        hold_s: float = 3.0,
    ) -> None:
        self._moved_to = moved_to
        self.repeat_window_s = repeat_window_s
        self.hold_s = hold_s
        self._seen: dict[str, _Seen] = {}
        self._troubled: set[tuple[str, int | None]] = set()
        self._connected = False
        self._held: list[tuple[float, str]] = []

    def take(self, events: Sequence[Event], now: float) -> list[str]:
        """The lines to print now for these events (ticks and orders give none)."""
        out: list[str] = []
        for event in events:
            if isinstance(event, StatusEvent):
                out.extend(self._status(event, now))
            elif isinstance(event, ErrorEvent):
                where = f"key {event.key}, connection {event.connection}"
                self._troubled.add((event.key, event.connection))
                out.extend(self._warning(f"{where}: {printable(event.text)}", now))
        if self._held and (self._connected or now - self._held[0][0] >= self.hold_s):
            out.extend(line for _, line in self._held)
            self._held.clear()
        return out

    def flush(self) -> list[str]:
        """At the end of a stream that stopped (not failed): what is held, and the counts of
        repeats not shown yet."""
        out = [line for _, line in self._held]
        self._held.clear()
        for text, seen in self._seen.items():
            if seen.repeats:
                out.append(f"warning: {text} {self._repeated(seen)}")
        self._seen.clear()
        return out

    # Internals

    def _status(self, event: StatusEvent, now: float) -> list[str]:
        key, conn, state, message = event.key, event.connection, event.state, event.message
        message = printable(message)
        if key == "*":
            if state in _FEED_WARNINGS:
                return self._warning(message, now)
            if state in _FEED_NEWS:
                return [f"kitefan: {message}"]
            return []
        where = f"key {key}" if conn is None else f"key {key}, connection {conn}"
        if state == Status.CONNECTED:
            self._connected = True
            return self._recovered(event, where, now)
        if state == Status.AUTH_FAILED:
            self._troubled.add((key, None))
            moved = list(self._moved_to(key)) if self._moved_to is not None else []
            failover = f"; its symbols moved to {', '.join(moved)}" if moved else ""
            lines = self._warning(f"{where}: {message}{failover}", now)
            if not self._connected:
                self._held.extend((now, line) for line in lines)
                return []
            return lines
        if state == Status.SLOT_LIMITED:
            self._troubled.add((key, conn))
            return self._warning(f"{where}: {message}", now)
        if state in (Status.CONNECTING, Status.RECONNECTING):
            self._troubled.add((key, conn))
            if message.startswith("attempt failed: "):
                return self._warning(
                    f"{where}: cannot connect: {message.removeprefix('attempt failed: ')}", now
                )
            if message.startswith("lost: "):
                return self._warning(
                    f"{where}: lost ({message.removeprefix('lost: ')}); reconnecting", now
                )
        return []

    def _recovered(self, event: StatusEvent, where: str, now: float) -> list[str]:
        """A connection (or key) is back: the gap it left, else that the trouble is over."""
        out = self._repeats_of(where)
        if event.gap is not None and event.gap.tokens:
            gap = event.gap
            out.append(
                f"warning: {where}: back after {gap.seconds:.1f} s; its "
                f"{_plural(len(gap.tokens), 'symbol')} have a gap from {_clock(gap.start)} to "
                f"{_clock(gap.end)} IST"
            )
        elif (event.key, event.connection) in self._troubled:
            out.append(f"kitefan: {where}: {printable(event.message)}")
        self._troubled.discard((event.key, event.connection))
        if event.connection is None:
            self._held = [(t, line) for t, line in self._held if f" {where}: " not in line]
        return out

    def _warning(self, text: str, now: float) -> list[str]:
        """``warning: text``, unless an identical one was shown within the window."""
        same = _RETRY.sub("", text)
        seen = self._seen.get(same)
        if seen is not None and now - seen.shown_at < self.repeat_window_s:
            seen.repeats += 1
            return []
        suffix = f" {self._repeated(seen)}" if seen is not None and seen.repeats else ""
        self._seen[same] = _Seen(now)
        return [f"warning: {text}{suffix}"]

    def _repeats_of(self, where: str) -> list[str]:
        """The counts of the repeated warnings of ``where``, now that its trouble is over."""
        out = []
        for text in [t for t in self._seen if t.startswith(f"{where}: ")]:
            seen = self._seen.pop(text)
            if seen.repeats:
                out.append(f"warning: {text} {self._repeated(seen)}")
        return out

    @staticmethod
    def _repeated(seen: _Seen) -> str:
        return f"(repeated {_plural(seen.repeats, 'time')} since {_clock(seen.shown_at)} IST)"
