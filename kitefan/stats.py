"""Counters of a running feed, and the frozen snapshots that are shown, served and exported.

The hot path only adds to plain integer attributes of :class:`ConnectionCounters`; everything
derived (rates, ages, percentiles, per-key sums) is computed when a snapshot is taken, from an
injected clock, so the snapshot is exact and cheap to test.

The counters are declared once, in the counter table :class:`Counts`: one dataclass field per
counter, whose metadata (a :class:`Counter`) says what it counts (the Prometheus help), its
metric, its stats column and view, and whether the key counts it itself (``orders``) or sums
its connections. The hot path's ``ConnectionCounters`` and the snapshots ``ConnectionStats``,
``KeyStats`` and ``Totals`` derive from ``Counts``, so each counter is a typed attribute of all
four; the per-key and total sums, the counters' part of every JSON document
(:meth:`Counts.counts`, in the table's order), the Prometheus families
(:mod:`kitefan.metrics`) and the stats tables' columns (:mod:`kitefan.render.stats`) are read
from :data:`COUNTERS`. A new counter is one line in the table, plus the line that counts it.
The snapshots refuse assignment at run time (each attribute is set once, by the constructor):
a dataclass cannot be ``frozen`` over the mutable table.

Rates are taken over a sliding window (5 s by default) of samples recorded at snapshot time, so
a display refreshing a few times a second sees a steady figure.

Exchange delay: for full-mode ticks, the receipt time minus the packet's exchange timestamp,
counted in whole seconds (the timestamp has 1 s resolution; one tick per frame is sampled).

Event-loop lag: a probe in the feed asks to wake every ``LOOP_PROBE_S`` and records how late it
woke; anything that holds the loop (a slow consumer, a big format, a long collection) shows here.
:class:`LoopLagMeter` keeps the samples as a histogram of 0.1 ms bins, since the start and for the
last ``window_s`` seconds.

Owns: the counter table (``Counts``, ``Counter``, ``COUNTERS``), ``ConnectionCounters``,
``RateMeter``, ``LoopLagMeter``, the snapshot types and their JSON form. Must not import
asyncio, websockets, rich or typer.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import FrozenInstanceError, dataclass, field, fields, replace
from typing import Any, Literal

from kitefan.events import ConnState, Gap, KeyState

__all__ = [
    "COUNTERS",
    "ConnectionCounters",
    "ConnectionStats",
    "Counter",
    "Counts",
    "FeedStats",
    "KeyStats",
    "LoopLag",
    "LoopLagMeter",
    "PublishStats",
    "RateMeter",
    "RecordStats",
    "RedundancyStats",
    "Totals",
    "View",
    "key_state",
    "percentile_of_counts",
]


class RateMeter:
    """A rate over a sliding window, from samples of a growing counter.

    Args:
        window_s: how far back the rate looks.
        min_interval_s: samples closer together than this are not kept.
    """

    def __init__(self, window_s: float = 5.0, min_interval_s: float = 0.2) -> None:
        self.window_s = window_s
        self.min_interval_s = min_interval_s
        self._samples: deque[tuple[float, int]] = deque()

    def rate(self, now: float, count: int) -> float:
        """Record ``count`` at ``now`` and return the rate per second over the window."""
        samples = self._samples
        if not samples or now - samples[-1][0] >= self.min_interval_s:
            samples.append((now, count))
        while len(samples) > 2 and now - samples[1][0] >= self.window_s:
            samples.popleft()
        first_t, first_count = samples[0]
        if now - first_t <= 0:
            return 0.0
        return (count - first_count) / (now - first_t)


def percentile_of_counts(counts: Mapping[int, int], fraction: float) -> int | None:
    """The value at ``fraction`` (0-1) of a histogram given as value -> count."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    return max(counts)


#: How often the feed's loop-lag probe asks to wake.
LOOP_PROBE_S = 0.02


def _bin_ms(counts: Mapping[int, int], fraction: float) -> float | None:
    value = percentile_of_counts(counts, fraction)
    return None if value is None else value / 10


@dataclass(frozen=True, slots=True)
class LoopLag:
    """How late the event loop woke the probe: since the start, and over the last ``window_s``.

    Milliseconds, to 0.1 ms. ``None`` before the first sample.
    """

    samples: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    window_s: float
    recent_p99_ms: float | None
    recent_max_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "window_s": self.window_s,
            "recent_p99_ms": self.recent_p99_ms,
            "recent_max_ms": self.recent_max_ms,
        }


class LoopLagMeter:
    """Samples of event-loop lag, as histograms of 0.1 ms bins.

    Args:
        window_s: how far back the recent figures look (whole seconds of samples are kept).
    """

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._counts: dict[int, int] = {}
        self._samples = 0
        self._max_bin = -1
        # (second, its histogram, its largest bin), oldest first.
        self._recent: deque[tuple[int, dict[int, int], int]] = deque()

    def add(self, lag_s: float, now: float) -> None:
        """Record that the probe woke ``lag_s`` seconds late at ``now`` (seconds, any clock)."""
        bin_ = max(0, round(lag_s * 10_000))
        counts = self._counts
        counts[bin_] = counts.get(bin_, 0) + 1
        self._samples += 1
        if bin_ > self._max_bin:
            self._max_bin = bin_
        second = int(now)
        recent = self._recent
        if not recent or recent[-1][0] != second:
            recent.append((second, {}, -1))
            while recent and recent[0][0] <= second - self.window_s:
                recent.popleft()
        _, histogram, top = recent[-1]
        histogram[bin_] = histogram.get(bin_, 0) + 1
        if bin_ > top:
            recent[-1] = (second, histogram, bin_)

    def snapshot(self, now: float) -> LoopLag:
        """The figures at ``now`` (same clock as :meth:`add`)."""
        window: dict[int, int] = {}
        top = -1
        for second, histogram, largest in self._recent:
            if second > now - self.window_s:
                for bin_, count in histogram.items():
                    window[bin_] = window.get(bin_, 0) + count
                top = max(top, largest)
        return LoopLag(
            samples=self._samples,
            p50_ms=_bin_ms(self._counts, 0.5),
            p99_ms=_bin_ms(self._counts, 0.99),
            max_ms=self._max_bin / 10 if self._max_bin >= 0 else None,
            window_s=self.window_s,
            recent_p99_ms=_bin_ms(window, 0.99),
            recent_max_ms=top / 10 if top >= 0 else None,
        )


#: The stats tables a counter can be a column of (``kitefan stats``).
View = Literal["traffic", "health"]


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter, as the table (:class:`Counts`) declares it; everything else follows.

    Attributes:
        name: the attribute (of ``ConnectionCounters``, ``ConnectionStats``, ``KeyStats`` and
            ``Totals``) and the key in every JSON document.
        help: what it counts: the Prometheus help text.
        metric: the Prometheus family (the exposition adds ``_total``).
        column: its header in the stats tables; None: not a column.
        view: the stats table the column is in.
        unit: ``count`` (shown as ``1,234``) or ``bytes`` (``1.2 kB``).
        per_key: the key counts it once itself (an order update comes on every connection of
            the key): ``KeyStats`` takes it as an argument instead of summing its connections,
            and the metric is labelled ``key`` alone. Otherwise each connection counts it, the
            key and the totals sum, and the metric is labelled ``key`` and ``connection``.
    """

    name: str
    help: str
    metric: str
    column: str | None = None
    view: View | None = None
    unit: Literal["count", "bytes"] = "count"
    per_key: bool = False


_COUNTER = "kitefan.counter"


def _counter(
    metric: str,
    help: str,
    *,
    column: str | None = None,
    view: View | None = None,
    unit: Literal["count", "bytes"] = "count",
    per_key: bool = False,
) -> int:
    """A field of :class:`Counts`: an integer from 0, and its :class:`Counter` (named later)."""
    spec = Counter("", help, metric, column, view, unit, per_key)
    return field(default=0, metadata={_COUNTER: spec})


@dataclass(slots=True, kw_only=True)
class Counts:
    """The counter table: one line per counter.

    Every counter is a plain integer attribute of the hot path's :class:`ConnectionCounters` and
    of the snapshots (:class:`ConnectionStats`, :class:`KeyStats`, :class:`Totals`), which all
    derive from this class; the per-key and total sums, the JSON documents, the Prometheus
    families (:mod:`kitefan.metrics`) and the stats tables' columns (:mod:`kitefan.render.stats`)
    are read from it (:data:`COUNTERS`). A new counter is one line here, plus the line of the
    hot path that counts it.
    """

    ticks: int = _counter(
        "kitefan_ticks", "Ticks received (packets decoded).", column="ticks", view="traffic"
    )
    frames: int = _counter(
        "kitefan_frames",
        "WebSocket frames received, heartbeats and texts included.",
        column="frames",
        view="traffic",
    )
    bytes: int = _counter(
        "kitefan_bytes", "Payload bytes received.", column="bytes", view="traffic", unit="bytes"
    )
    heartbeats: int = _counter("kitefan_heartbeats", "1-byte heartbeat frames received.")
    skipped_packets: int = _counter("kitefan_skipped_packets", "Packets of unknown length skipped.")
    reconnects: int = _counter(
        "kitefan_reconnects",
        "Times the connection was opened again after being lost.",
        column="reconnects",
        view="health",
    )
    decode_errors: int = _counter(
        "kitefan_decode_errors",
        "Frames or texts that did not decode (skipped).",
        column="decode errors",
        view="health",
    )
    server_errors: int = _counter(
        "kitefan_server_errors",
        "Error texts sent by the server.",
        column="server errors",
        view="health",
    )
    #: Times a bug in kitefan ended the connection (it was restarted; see the manager).
    internal_errors: int = _counter(
        "kitefan_internal_errors",
        "Times a bug in kitefan ended the connection (it was restarted).",
    )
    drops: int = _counter(
        "kitefan_dropped_ticks",
        "Ticks dropped because a consumer fell behind.",
        column="drops",
        view="traffic",
    )
    orders: int = _counter(
        "kitefan_order_updates", "Order updates delivered (once per key).", per_key=True
    )

    def counts(self) -> dict[str, int]:
        """Every counter's value, in the table's order (the JSON documents' order)."""
        return {counter.name: getattr(self, counter.name) for counter in COUNTERS}


#: The counter table, in its order.
COUNTERS: tuple[Counter, ...] = tuple(
    replace(f.metadata[_COUNTER], name=f.name) for f in fields(Counts)
)


@dataclass(slots=True)
class ConnectionCounters(Counts):
    """What one connection has done so far. Mutated in place by the connection: the counters
    (:class:`Counts`) are plain slot attributes, and so are these."""

    last_frame_at: float | None = None
    connected_at: float | None = None
    last_gap: Gap | None = None
    delay_counts: dict[int, int] = field(default_factory=dict)
    meter: RateMeter = field(default_factory=RateMeter)


class _Snapshot:
    """Frozen once built: each attribute is set once (by the constructor), never again.

    (A dataclass cannot be ``frozen`` over the mutable :class:`Counts`, so this holds at run time
    only; no code assigns to a snapshot.)
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        try:
            object.__getattribute__(self, name)
        except AttributeError:
            object.__setattr__(self, name, value)
            return
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


@dataclass(slots=True, unsafe_hash=True)
class ConnectionStats(_Snapshot, Counts):
    """One connection, at one moment (its counters: :class:`Counts`, keyword-only, 0 unless
    given)."""

    index: int
    state: ConnState
    symbols: int
    symbols_by_mode: Mapping[str, int]
    ticks_per_s: float
    last_gap: Gap | None
    last_frame_age_s: float | None
    uptime_s: float | None
    never_ticked: int
    exchange_delay_p50_s: int | None
    exchange_delay_p99_s: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "state": self.state.value,
            "symbols": self.symbols,
            "symbols_by_mode": dict(self.symbols_by_mode),
            "ticks_per_s": round(self.ticks_per_s, 1),
            **self.counts(),
            "last_gap": _gap_dict(self.last_gap),
            "last_frame_age_s": _round(self.last_frame_age_s),
            "uptime_s": _round(self.uptime_s),
            "never_ticked": self.never_ticked,
            "exchange_delay_p50_s": self.exchange_delay_p50_s,
            "exchange_delay_p99_s": self.exchange_delay_p99_s,
        }


@dataclass(slots=True, init=False, unsafe_hash=True)
class KeyStats(_Snapshot, Counts):
    """One key and its connections, at one moment.

    ``key_id`` is the key's config id, as in :class:`~kitefan.planner.KeyPlan` and every event
    (``id`` is its deprecated old name). The JSON form keeps ``"id"``, as documented.

    Its counters (:class:`Counts`) are its connections' sums, but for those the key counts
    once itself (``orders``: each order update once, however many connections carry it).
    """

    key_id: str
    state: KeyState
    connections: tuple[ConnectionStats, ...]
    message: str

    def __init__(
        self,
        key_id: str,
        state: KeyState,
        connections: tuple[ConnectionStats, ...],
        orders: int,
        message: str = "",
    ) -> None:
        self.key_id = key_id
        self.state = state
        self.connections = connections
        self.message = message
        for counter in COUNTERS:
            if counter.per_key:
                value = orders
            else:
                value = sum(getattr(c, counter.name) for c in connections)
            setattr(self, counter.name, value)

    @property
    def id(self) -> str:
        """Deprecated: the old name of :attr:`key_id`."""
        warnings.warn(
            "KeyStats.id is deprecated: use KeyStats.key_id", DeprecationWarning, stacklevel=2
        )
        return self.key_id

    @property
    def symbols(self) -> int:
        return sum(c.symbols for c in self.connections)

    @property
    def ticks_per_s(self) -> float:
        return sum(c.ticks_per_s for c in self.connections)

    @property
    def never_ticked(self) -> int:
        return sum(c.never_ticked for c in self.connections)

    @property
    def connections_up(self) -> int:
        return sum(1 for c in self.connections if c.state is ConnState.CONNECTED)

    @property
    def last_frame_age_s(self) -> float | None:
        ages = [c.last_frame_age_s for c in self.connections if c.last_frame_age_s is not None]
        return min(ages) if ages else None

    @property
    def last_gap(self) -> Gap | None:
        gaps = [c.last_gap for c in self.connections if c.last_gap is not None]
        return max(gaps, key=lambda g: g.end) if gaps else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "state": self.state.value,
            "message": self.message,
            "symbols": self.symbols,
            "ticks_per_s": round(self.ticks_per_s, 1),
            **self.counts(),
            "last_gap": _gap_dict(self.last_gap),
            "never_ticked": self.never_ticked,
            "connections_up": self.connections_up,
            "last_frame_age_s": _round(self.last_frame_age_s),
            "connections": [c.as_dict() for c in self.connections],
        }


@dataclass(slots=True, unsafe_hash=True)
class Totals(_Snapshot, Counts):
    """Sums over every key (its counters: :class:`Counts`, the keys' sums)."""

    symbols: int
    ticks_per_s: float
    connections_up: int
    connections: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbols": self.symbols,
            "ticks_per_s": round(self.ticks_per_s, 1),
            **self.counts(),
            "connections_up": self.connections_up,
            "connections": self.connections,
        }


@dataclass(frozen=True, slots=True)
class PublishStats:
    """What ``kitefan stream --publish`` has done: entries to Redis, and what it dropped.

    ``url`` is shown with its password masked. ``state`` is ``connecting``, ``connected`` or
    ``down``. Dropped ticks and events did not reach Redis: shed from a full buffer while Redis
    was slow or down, or in flight when the connection failed.
    """

    url: str
    stream: str
    state: str
    published_entries: int
    published_ticks: int
    dropped_ticks: int
    dropped_events: int
    buffered_entries: int
    buffered_bytes: int
    reconnects: int
    last_error: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "stream": self.stream,
            "state": self.state,
            "published_entries": self.published_entries,
            "published_ticks": self.published_ticks,
            "dropped_ticks": self.dropped_ticks,
            "dropped_events": self.dropped_events,
            "buffered_entries": self.buffered_entries,
            "buffered_bytes": self.buffered_bytes,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class RecordStats:
    """A recorder's figures (``kitefan stream --record``). ``dropped_ticks`` counts what never
    reached the file: shed by the feed's queue for the recorder, by the recorder's own queue, or
    lost to a failed write. ``bytes_written`` is compressed bytes appended, ``chunks`` the chunks
    written whole, ``files`` the files opened (one per IST day with a directory)."""

    path: str
    files: int
    chunks: int
    bytes_written: int
    frames: int
    ticks: int
    events: int
    dropped_ticks: int
    dropped_events: int
    write_errors: int
    last_error: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "files": self.files,
            "chunks": self.chunks,
            "bytes_written": self.bytes_written,
            "frames": self.frames,
            "ticks": self.ticks,
            "events": self.events,
            "dropped_ticks": self.dropped_ticks,
            "dropped_events": self.dropped_events,
            "write_errors": self.write_errors,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class RedundancyStats:
    """What the merge of redundant keys did (``redundancy = 2``; see :mod:`kitefan.merge`).

    ``delivered`` snapshots reached the streams once each; ``duplicates[key]`` are the key's
    copies dropped because another key's came first; ``missed[key]`` the snapshots of its
    symbols that only another key delivered (what redundancy saved); ``pending`` the snapshots
    whose second copy may still come (not counted as missed yet).
    """

    redundancy: int
    delivered: int
    duplicates: Mapping[str, int]
    missed: Mapping[str, int]
    pending: int

    @property
    def one_sided(self) -> int:
        """Snapshots only one key delivered."""
        return sum(self.missed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "redundancy": self.redundancy,
            "delivered": self.delivered,
            "duplicates": dict(self.duplicates),
            "missed": dict(self.missed),
            "one_sided": self.one_sided,
            "pending": self.pending,
        }


@dataclass(frozen=True, slots=True)
class FeedStats:
    """Every key of a feed, at one moment (``updated_at`` is Unix time); ``publish`` is there
    while the feed publishes to Redis, ``record`` while it records, ``redundancy`` while it
    merges redundant keys."""

    keys: tuple[KeyStats, ...]
    updated_at: float
    uptime_s: float
    loop_lag: LoopLag | None = None
    publish: PublishStats | None = None
    record: RecordStats | None = None
    redundancy: RedundancyStats | None = None

    def key(self, key_id: str) -> KeyStats:
        for key in self.keys:
            if key.key_id == key_id:
                return key
        raise KeyError(key_id)

    @property
    def totals(self) -> Totals:
        keys = self.keys
        sums = {c.name: sum(getattr(k, c.name) for k in keys) for c in COUNTERS}
        return Totals(
            symbols=sum(k.symbols for k in keys),
            ticks_per_s=sum(k.ticks_per_s for k in keys),
            connections_up=sum(k.connections_up for k in keys),
            connections=sum(len(k.connections) for k in keys),
            **sums,
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON form ``kitefan stats --format json`` prints; scripts rely on its shape
        (``publish`` is there only while the feed publishes, ``record`` while it records)."""
        document = {
            "keys": [k.as_dict() for k in self.keys],
            "totals": self.totals.as_dict(),
            "updated_at": self.updated_at,
            "uptime_s": round(self.uptime_s, 1),
            "loop_lag": None if self.loop_lag is None else self.loop_lag.as_dict(),
        }
        if self.publish is not None:
            document["publish"] = self.publish.as_dict()
        if self.record is not None:
            document["record"] = self.record.as_dict()
        if self.redundancy is not None:
            document["redundancy"] = self.redundancy.as_dict()
        return document


def key_state(states: Sequence[ConnState], *, auth_failed: bool, slot_limited: bool) -> KeyState:
    """A key's state from its connections' states and its flags."""
    if auth_failed:
        return KeyState.AUTH_FAILED
    if not states:
        return KeyState.IDLE
    if all(s is ConnState.CLOSED for s in states):
        return KeyState.CLOSED
    if any(s is ConnState.RECONNECTING for s in states):
        return KeyState.RECONNECTING
    if any(s is ConnState.CONNECTING for s in states):
        return KeyState.CONNECTING
    if slot_limited:
        return KeyState.SLOT_LIMITED
    return KeyState.CONNECTED


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _gap_dict(gap: Gap | None) -> dict[str, Any] | None:
    if gap is None:
        return None
    return {
        "start": gap.start,
        "end": gap.end,
        "seconds": round(gap.seconds, 3),
        "symbols": len(gap.tokens),
        "reason": gap.reason,
    }
