"""Faults on a schedule, as ``kitefan simulate`` takes them from the command line.

Pure: this module parses and describes a :class:`FaultPlan`; ``Simulator.run_faults`` carries it
out. Times are seconds from the moment the simulator starts serving. The specs:

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

Owns: :class:`FaultPlan`, :func:`parse_fault_plan`, :class:`FaultSpecError`. Must not import
asyncio, websockets, rich or typer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FaultPlan", "FaultSpecError", "parse_fault_plan", "parse_seconds"]

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
