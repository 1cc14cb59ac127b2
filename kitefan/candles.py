"""Candles: OHLC bars built from ticks, aligned to the session, closed after a grace.

Pure: no I/O, no asyncio, and no clock of its own. :class:`CandleBuilder` takes tick batches
(:class:`~kitefan.events.TickBatch`, as ``feed.ticks()``, a Redis tail or a recording give them)
or :class:`~kitefan.models.Tick` objects, and hands back the bars that have closed. What time it
is comes from the ``clock`` it is given (``time.time`` for a live feed), or, with ``clock=None``,
from the receive time of the batches themselves (a replay: the same bars every time).

The rules (docs/behaviour.md, "Candles"):

* **Alignment.** A bar of an interval starts at the session anchor of the symbol's exchange plus a
  whole number of intervals (negative before the anchor), counted on the tick's own day in IST:
  09:15:00 for NSE, NFO, BSE, BFO, CDS, BCD and MCXSX; 09:00:00 for MCX and NCO
  (:data:`DEFAULT_ANCHORS`; ``anchors`` changes them). No bar spans midnight IST: the day's last
  bar ends at midnight and the next day's first starts there (it only matters for intervals that
  do not divide the day from the anchor, such as ``1h`` from 09:15). ``1d`` is the IST calendar
  day, as the historical API's day candles are.
* **Bar time.** A tick's time is its exchange timestamp where the packet has one (full mode, and
  index packets in full mode), else the receive time of its frame; a bar says which
  (``time_source``: ``exchange``, ``receive``, or ``mixed`` when its ticks had both).
* **Closing.** A bar ``[start, end)`` closes when the clock reaches ``end + grace`` (default 1 s).
  A tick that arrives before that lands in its own bar, even after a later bar has started; one
  that arrives later is *late*: counted (:attr:`CandleBuilder.late`, per symbol in
  :attr:`CandleBuilder.late_by_token`), never put in another bar.
* **Values.** ``open``/``close`` are the first and last tick's price to land in the bar, in
  arrival order; ``high``/``low`` the extremes. ``volume`` is the increase of the cumulative day
  volume (``volume_traded``) over the bar: the bar's last value minus the symbol's last value
  before the bar (its first tick's, for the first bar the symbol has); a value lower than that
  means a new session, counted from 0. ``None`` for symbols whose packets carry no volume (LTP
  mode, indices). ``oi`` is the last tick's open interest (full mode only, else ``None``);
  ``ticks`` how many ticks landed.
* **Empty bars.** An interval in which a symbol did not tick has no bar, unless ``fill=True``:
  then, after the symbol's first bar, every interval has one, flat at the previous close, volume
  0 (``None`` where there is none), ``ticks`` 0.

The hot path works from the frame's bytes: the fields a bar needs are gathered per run of packets
of one length at C speed (:func:`kitefan.codec.run_rows`), no :class:`Tick` is built, and a
tick that lands in its symbol's current bar costs a dict lookup and a few comparisons.

Owns: ``CandleBuilder``, ``Candle``, ``parse_interval``, ``format_interval``, ``parse_anchor``,
``bar_bounds``, the anchors and the segment-to-exchange map. Must not import asyncio,
websockets, rich or typer.
"""

from __future__ import annotations

import heapq
import importlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from kitefan.codec import packet_runs, run_rows
from kitefan.events import TickBatch
from kitefan.models import Tick, divisor_for, segment_of
from kitefan.packets import PACKETS, PacketKind

__all__ = [
    "DAY_S",
    "DEFAULT_ANCHORS",
    "DEFAULT_GRACE_S",
    "EXCHANGE_OF_SEGMENT",
    "IST_OFFSET_S",
    "Candle",
    "CandleBuilder",
    "bar_bounds",
    "exchange_of_name",
    "format_interval",
    "parse_anchor",
    "parse_interval",
]

DAY_S = 86_400
#: IST is UTC+05:30, with no daylight saving.
IST_OFFSET_S = 19_800
DEFAULT_GRACE_S = 1.0

_915 = 9 * 3600 + 15 * 60
_900 = 9 * 3600
#: Seconds after midnight IST at which each exchange's bars are anchored.
DEFAULT_ANCHORS: Mapping[str, int] = {
    "NSE": _915,
    "NFO": _915,
    "BSE": _915,
    "BFO": _915,
    "CDS": _915,
    "BCD": _915,
    "MCXSX": _915,
    "MCX": _900,
    "NCO": _900,
}

#: The exchange of a token's segment (its low byte). Segment 9 holds every exchange's indices:
#: a name (``BSE:SENSEX``) tells which; without one, NSE.
EXCHANGE_OF_SEGMENT: Mapping[int, str] = {
    1: "NSE",
    2: "NFO",
    3: "CDS",
    4: "BSE",
    5: "BFO",
    6: "BCD",
    7: "MCX",
    8: "MCXSX",
    9: "NSE",
    12: "NCO",
}

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY_S}
_INTERVAL = re.compile(r"^\s*([0-9]+)\s*([smhd])\s*$")
_ANCHOR = re.compile(r"^\s*([A-Za-z]+)\s*=\s*([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?\s*$")


def parse_interval(text: str) -> int:
    """``5s``, ``1m``, ``15m``, ``1h``, ``1d`` (a whole number and a unit) to seconds.

    Raises:
        ValueError: not of that form, or not between 1 s and 1 d.
    """
    match = _INTERVAL.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not an interval: give a whole number and a unit, like 5s, 1m, 15m, 1h "
            "or 1d"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= DAY_S:
        raise ValueError(f"{text!r} is not between 1s and 1d")
    return seconds


def format_interval(seconds: int) -> str:
    """The shortest label of an interval: ``60`` is ``1m``, ``90`` is ``90s``, ``86400`` is
    ``1d``."""
    for unit, size in (("d", DAY_S), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_anchor(text: str) -> tuple[str, int]:
    """``MCX=09:00`` (or ``09:00:30``) to the exchange and its anchor in seconds after midnight.

    Raises:
        ValueError: not ``EXCHANGE=HH:MM[:SS]``, or not a time of day.
    """
    match = _ANCHOR.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not EXCHANGE=HH:MM (like MCX=09:00)")
    hours, minutes, seconds = int(match.group(2)), int(match.group(3)), int(match.group(4) or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a time of day")
    return match.group(1).upper(), hours * 3600 + minutes * 60 + seconds


def exchange_of_name(name: str) -> str | None:
    """The exchange of an ``EXCHANGE:TRADINGSYMBOL`` name, or ``None`` for a bare token."""
    head, colon, _ = name.partition(":")
    return head.upper() if colon and head else None


def bar_bounds(t: float, interval: int, anchor: int) -> tuple[int, int]:
    """The bar ``[start, end)`` (Unix seconds) of an interval that holds the time ``t``.

    ``anchor`` is seconds after midnight IST. Bars start at the anchor of ``t``'s IST day plus a
    whole number of intervals and are cut at midnight IST; ``1d`` is the IST day.
    """
    day_start = int((t + IST_OFFSET_S) // DAY_S) * DAY_S - IST_OFFSET_S
    if interval >= DAY_S:
        return day_start, day_start + DAY_S
    first = day_start + anchor
    start = first + int((t - first) // interval) * interval
    end = start + interval
    if start < day_start:
        start = day_start
    day_end = day_start + DAY_S
    if end > day_end:
        end = day_end
    return start, end


class Candle(NamedTuple):
    """One bar of one symbol.

    ``start`` and ``end`` are Unix seconds (``[start, end)``); prices are in rupees (or the
    segment's unit). ``partial`` marks a bar handed back before it closed
    (:meth:`CandleBuilder.flush`, :meth:`CandleBuilder.forming`).
    """

    instrument_token: int
    interval: int
    start: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: int | None
    oi: int | None
    ticks: int
    time_source: str
    partial: bool = False


# A forming bar is a list, updated in place on the hot path:
_START, _END, _OPEN, _HIGH, _LOW, _CLOSE, _TICKS, _FIRST_VOL, _LAST_VOL, _OI, _SOURCE = range(11)
_EXCHANGE, _RECEIVE = 1, 2
_SOURCES = {_EXCHANGE: "exchange", _RECEIVE: "receive", _EXCHANGE | _RECEIVE: "mixed"}
_SOURCE_FLAGS = {name: flag for flag, name in _SOURCES.items()}

#: The fields of each packet length a bar needs (indexes into its layout, from the packet-field
#: table): token, last price, then volume, oi and the exchange timestamp where it has them (read
#: with codec.run_rows).
_FULL_FIELDS = PACKETS[PacketKind.FULL].indexes_of(
    "instrument_token", "last_price", "volume_traded", "oi", "exchange_timestamp"
)
_QUOTE_FIELDS = PACKETS[PacketKind.QUOTE].indexes_of(
    "instrument_token", "last_price", "volume_traded"
)
_PLAIN_FIELDS = PACKETS[PacketKind.LTP].indexes_of("instrument_token", "last_price")
#: The same fields as word indexes, for the compiled fold (kitefan._records.fold).
_FULL_WORDS = bytes(_FULL_FIELDS)
_FULL_LENGTH = int(PacketKind.FULL)
_FULL_STEP = _FULL_LENGTH + 2


def _compiled_fold() -> Callable[..., bool] | None:
    try:
        # By name, as kitefan.columnar imports it (the compiled module has no Python source).
        compiled = importlib.import_module("kitefan._records")
    except ImportError:  # not built: the hot path runs in Python, with the same result
        return None
    return getattr(compiled, "fold", None)


#: The compiled hot path for full packets (the same updates as _take_full, at C speed), or None.
_FOLD = _compiled_fold()

#: An index packet in full mode, after its length prefix: token, last price, and its exchange
#: timestamp (after the signed change field, so not a field codec.run_rows reads).
_INDEX_FULL = PACKETS[PacketKind.INDEX_FULL].reader(
    ("instrument_token", "last_price", "exchange_timestamp"), before=2
)


class CandleBuilder:
    """Ticks in, closed bars out.

    Args:
        interval: the bar length in seconds (1 to 86400; :func:`parse_interval` reads ``1m``).
        clock: what time it is (Unix seconds), read once per call; ``None``: the receive time of
            the batches given (a replay), and whatever :meth:`close_due` is told.
        grace: seconds after a bar's end before it closes.
        fill: give every interval a bar after a symbol's first, flat when it did not tick.
        anchors: seconds after midnight IST, by exchange (default :data:`DEFAULT_ANCHORS`; an
            exchange missing from it is anchored at 09:15).
        exchange_of: a token's exchange (default: by its segment, :data:`EXCHANGE_OF_SEGMENT`).

    :meth:`add` and :meth:`add_ticks` return the bars that closed by the clock's time, in order of
    end, then start, then token; :meth:`close_due` the same without ticks (call it on a timer, so
    that bars close when no tick comes); :meth:`flush` closes what it can and hands back the
    forming bars too, marked partial.
    """

    def __init__(
        self,
        interval: int,
        *,
        clock: Callable[[], float] | None,
        grace: float = DEFAULT_GRACE_S,
        fill: bool = False,
        anchors: Mapping[str, int] | None = None,
        exchange_of: Callable[[int], str] | None = None,
    ) -> None:
        if not 1 <= interval <= DAY_S or int(interval) != interval:
            raise ValueError(f"interval must be whole seconds from 1 to {DAY_S}, not {interval}")
        if grace < 0:
            raise ValueError(f"grace must be 0 or more seconds, not {grace}")
        self.interval = int(interval)
        self.grace = float(grace)
        self.fill = fill
        self.anchors = dict(DEFAULT_ANCHORS if anchors is None else anchors)
        self._clock = clock
        self._exchange_of = exchange_of or _exchange_of_segment
        self._anchor: dict[int, int] = {}
        #: Every forming bar, by token then start.
        self._bars: dict[int, dict[int, list[Any]]] = {}
        #: Each token's latest forming bar, by lane: ticks timed by the exchange (full mode), by
        #: their receipt with a day volume (quote), without one (LTP). The hot path's: a tick of
        #: another lane takes the slow path, which marks the bar with its time source and its
        #: first volume.
        self._current_exchange: dict[int, list[Any]] = {}
        self._current_receive: dict[int, list[Any]] = {}
        self._current_plain: dict[int, list[Any]] = {}
        self._lanes = (self._current_exchange, self._current_receive, self._current_plain)
        #: What each token's last closed bar left (see _remember).
        self._last: dict[int, tuple[int, int, int | None, int | None, int, bool]] = {}
        #: The forming bars by end, and their ends as a heap: what a close pass takes.
        self._ends: dict[int, list[tuple[int, list[Any]]]] = {}
        self._end_heap: list[int] = []
        #: When the next bar closes (forming, or with fill the next flat one).
        self._next_end: float = float("inf")
        self._fill_next: float = float("inf")
        self.now = float("-inf")
        #: Ticks taken, late ticks, bars closed (flat ones included), flat bars.
        self.ticks = 0
        self.late = 0
        self.closed = 0
        self.filled = 0
        self.late_by_token: Counter[int] = Counter()
        self._wall = 0.0  # the receive time of the frame being taken

    # Ticks in

    def add(self, batch: TickBatch) -> list[Candle]:
        """Take one frame's ticks; the bars closed by now."""
        out = self._advance(batch.received_wall)
        wall = batch.received_wall
        frame = batch.frame
        if _FOLD is not None and len(frame) > 4 and frame[2] == 0 and frame[3] == _FULL_LENGTH:
            # A frame of full packets alone (the usual one): folded whole, its length fields
            # checked in C, without finding its runs first.
            count = frame[0] << 8 | frame[1]
            if len(frame) == 2 + count * _FULL_STEP:
                self._wall = wall
                if _FOLD(frame, 4, count, _FULL_STEP, _FULL_WORDS, self._current_exchange,
                         self._miss_full, True):  # fmt: skip
                    self.ticks += count
                    return out
        for run in packet_runs(frame):
            length = run[1]
            if length == 184 and _FOLD is not None:
                self._wall = wall
                _FOLD(frame, run[0], run[2], _FULL_STEP, _FULL_WORDS, self._current_exchange,
                      self._miss_full)  # fmt: skip
            elif length == 184:
                self._take_full(run_rows(frame, run, _FULL_FIELDS), wall)
            elif length == 44:
                self._take_quote(run_rows(frame, run, _QUOTE_FIELDS), wall)
            elif length in (8, 28):
                self._take_plain(run_rows(frame, run, _PLAIN_FIELDS), wall)
            elif length == 32:
                offset, _, count = run
                view = memoryview(frame)[offset - 2 : offset - 2 + 34 * count]
                for token, price, ts in _INDEX_FULL.iter_unpack(view):
                    self._take_one(token, price, None, None, ts, wall)
            else:
                continue  # skipped, as decoding skips it
            self.ticks += run[2]
        return out

    def add_ticks(self, ticks: Iterable[Tick], received_wall: float) -> list[Candle]:
        """Take ticks that arrived at ``received_wall`` (Unix seconds); the bars closed by now."""
        out = self._advance(received_wall)
        for tick in ticks:
            v = tick.values
            kind = tick.kind
            self._take_one(
                v[0],
                v[1],
                # the quote packet is the full packet's prefix (tests/test_packets.py)
                v[_FULL_FIELDS[2]] if kind in (44, 184) else None,
                v[_FULL_FIELDS[3]] if kind == 184 else None,
                tick.exchange_epoch_s,
                received_wall,
            )
            self.ticks += 1
        return out

    # The hot path: each tick into its symbol's current bar (of its time source), or placed.

    def _take_full(self, rows: Iterable[tuple[int, ...]], wall: float) -> None:
        get = self._current_exchange.get
        for token, price, vol, oi, t in rows:
            bar = get(token)
            if bar is not None and bar[0] <= t < bar[1]:
                if price > bar[3]:
                    bar[3] = price
                elif price < bar[4]:
                    bar[4] = price
                bar[5] = price
                bar[6] += 1
                bar[8] = vol
                bar[9] = oi
            elif t:
                self._place(token, price, vol, oi, t, _EXCHANGE, self._current_exchange)
            else:  # no exchange timestamp in this packet: the receive time stands in
                self._place(token, price, vol, oi, wall, _RECEIVE, self._current_receive)

    def _miss_full(self, token: int, price: int, vol: int, oi: int, t: int) -> None:
        """A full packet the compiled fold did not take: _take_full's other two branches."""
        if t:
            self._place(token, price, vol, oi, t, _EXCHANGE, self._current_exchange)
        else:  # no exchange timestamp in this packet: the receive time stands in
            self._place(token, price, vol, oi, self._wall, _RECEIVE, self._current_receive)

    def _take_quote(self, rows: Iterable[tuple[int, ...]], wall: float) -> None:
        get = self._current_receive.get
        for token, price, vol in rows:
            bar = get(token)
            if bar is not None and bar[0] <= wall < bar[1]:
                if price > bar[3]:
                    bar[3] = price
                elif price < bar[4]:
                    bar[4] = price
                bar[5] = price
                bar[6] += 1
                bar[8] = vol
                bar[9] = None
            else:
                self._place(token, price, vol, None, wall, _RECEIVE, self._current_receive)

    def _take_plain(self, rows: Iterable[tuple[int, ...]], wall: float) -> None:
        get = self._current_plain.get
        for token, price in rows:
            bar = get(token)
            if bar is not None and bar[0] <= wall < bar[1]:
                if price > bar[3]:
                    bar[3] = price
                elif price < bar[4]:
                    bar[4] = price
                bar[5] = price
                bar[6] += 1
                bar[9] = None
            else:
                self._place(token, price, None, None, wall, _RECEIVE, self._current_plain)

    def _take_one(
        self,
        token: int,
        price: int,
        vol: int | None,
        oi: int | None,
        exchange_ts: int | None,
        wall: float,
    ) -> None:
        if exchange_ts:
            self._place(token, price, vol, oi, exchange_ts, _EXCHANGE, None)
        else:
            self._place(token, price, vol, oi, wall, _RECEIVE, None)

    def _place(
        self,
        token: int,
        price: int,
        vol: int | None,
        oi: int | None,
        t: float,
        flag: int,
        lane: dict[int, list[Any]] | None,
    ) -> None:
        """A tick into the bar of its time (made if new), unless that bar has closed (late); the
        bar becomes the token's current one in ``lane`` when it is the latest."""
        anchor = self._anchor.get(token)
        if anchor is None:
            anchor = self._anchor[token] = self.anchors.get(self._exchange_of(token), _915)
        start, end = bar_bounds(t, self.interval, anchor)
        if end + self.grace <= self.now:
            self.late += 1
            self.late_by_token[token] += 1
            return
        bars = self._bars.get(token)
        if bars is None:
            bars = self._bars[token] = {}
        bar = bars.get(start)
        if bar is None:
            bar = [start, end, price, price, price, price, 1, vol, vol, oi, flag]
            bars[start] = bar
            closing = self._ends.get(end)
            if closing is None:
                self._ends[end] = [(token, bar)]
                heapq.heappush(self._end_heap, end)
                if end < self._next_end:
                    self._next_end = end
            else:
                closing.append((token, bar))
        else:
            if price > bar[_HIGH]:
                bar[_HIGH] = price
            elif price < bar[_LOW]:
                bar[_LOW] = price
            bar[_CLOSE] = price
            bar[_TICKS] += 1
            if vol is not None:
                if bar[_FIRST_VOL] is None:
                    bar[_FIRST_VOL] = vol
                bar[_LAST_VOL] = vol
            bar[_OI] = oi
            bar[_SOURCE] |= flag
        if lane is not None:
            latest = lane.get(token)
            if latest is None or start >= latest[_START]:
                lane[token] = bar

    # Bars out

    def close_due(self, now: float | None = None) -> list[Candle]:
        """The bars closed by ``now`` (default: the clock's time) that were not handed back yet."""
        if now is None:
            now = self._clock() if self._clock is not None else self.now
        if now > self.now:
            self.now = now
        return self._close() if self.now - self.grace >= self._next_end else []

    def flush(self) -> list[Candle]:
        """Close what is due, then hand back every forming bar, marked partial, and forget them
        (at a stop). A tick for them afterwards starts a new bar."""
        out = self.close_due()
        partial = []
        for token, bars in self._bars.items():
            for _, bar in sorted(bars.items()):
                partial.append(self._candle(token, bar, partial=True))
                self._remember(token, bar)  # the next bar's volume counts from this one's last
        self._bars.clear()
        self._ends.clear()
        self._end_heap.clear()
        for lane in self._lanes:
            lane.clear()
        self._next_end = self._fill_next
        return out + sorted(partial, key=_order)

    def forming(self, token: int) -> Candle | None:
        """The latest forming bar of ``token`` (marked partial), or ``None``."""
        bars = self._bars.get(token)
        return None if not bars else self._candle(token, bars[max(bars)], partial=True)

    @property
    def forming_bars(self) -> int:
        """How many bars are forming."""
        return sum(len(bars) for bars in self._bars.values())

    @property
    def forming_ticks(self) -> int:
        """How many ticks the forming bars hold."""
        return sum(bar[_TICKS] for bars in self._bars.values() for bar in bars.values())

    # Internals

    def _advance(self, received_wall: float) -> list[Candle]:
        now = self._clock() if self._clock is not None else received_wall
        if now > self.now:
            self.now = now
        if self.now - self.grace >= self._next_end:
            return self._close()
        return []

    def _close(self) -> list[Candle]:
        """Hand back every bar (and, with fill, every flat one) that ended by now - grace: the
        bars are kept by end, so a pass touches only those that close."""
        mark = self.now - self.grace
        out: list[Candle] = []
        heap = self._end_heap
        ends = self._ends
        all_bars = self._bars
        fill = self.fill
        while heap and heap[0] <= mark:
            for token, bar in ends.pop(heapq.heappop(heap)):
                bars = all_bars[token]
                del bars[bar[_START]]
                if not bars:
                    del all_bars[token]
                if fill:
                    out += self._flat(token, bar[_START])
                out.append(self._candle(token, bar))
                self._remember(token, bar)
                for lane in self._lanes:
                    if lane.get(token) is bar:
                        del lane[token]  # its next tick finds its bar the slow way
        if fill:
            upcoming = float("inf")
            for token in self._last:
                forming = all_bars.get(token)
                out += self._flat(token, min(forming) if forming else None)
                end = bar_bounds(self._last[token][0], self.interval, self._anchor[token])[1]
                if end < upcoming:
                    upcoming = end
            self._fill_next = upcoming
        self._next_end = min(heap[0] if heap else float("inf"), self._fill_next)
        self.closed += len(out)
        out.sort(key=_order)
        return out

    def _remember(self, token: int, bar: list[Any]) -> None:
        """What a closed bar leaves for the next: its end and close, the last day volume known
        (a bar of LTP ticks knows none, and keeps the one before), its oi and time source, and
        whether it had a volume (a flat bar after it has 0, else none)."""
        last = self._last.get(token)
        volume = bar[_LAST_VOL]
        known = volume if volume is not None or last is None else last[2]
        self._last[token] = (
            bar[_END],
            bar[_CLOSE],
            known,
            bar[_OI],
            bar[_SOURCE],
            volume is not None,
        )

    def _flat(self, token: int, before: int | None) -> list[Candle]:
        """Flat bars for ``token`` from its last closed bar's end, up to ``before`` (a forming
        bar's start) or as far as now - grace."""
        last = self._last.get(token)
        if last is None:
            return []
        mark = self.now - self.grace
        out = []
        end, close, vol, oi, source, traded = last
        anchor = self._anchor[token]
        price = close / divisor_for(token)
        name = _SOURCES[source]
        volume = 0 if traded else None
        while True:
            start, stop = bar_bounds(end, self.interval, anchor)
            if stop > mark or (before is not None and start >= before):
                break
            out.append(
                Candle(
                    token,
                    self.interval,
                    start,
                    stop,
                    price,
                    price,
                    price,
                    price,
                    volume,
                    oi,
                    0,
                    name,
                )
            )
            end = stop
        if out:
            self._last[token] = (end, close, vol, oi, source, traded)
            self.filled += len(out)
        return out

    def _candle(self, token: int, bar: list[Any], *, partial: bool = False) -> Candle:
        divisor = divisor_for(token)
        last_vol: int | None = bar[_LAST_VOL]
        volume: int | None = None
        if last_vol is not None:
            last = self._last.get(token)
            base = last[2] if last is not None and last[2] is not None else bar[_FIRST_VOL]
            volume = last_vol - base if last_vol >= base else last_vol
        return Candle(
            token,
            self.interval,
            bar[_START],
            bar[_END],
            bar[_OPEN] / divisor,
            bar[_HIGH] / divisor,
            bar[_LOW] / divisor,
            bar[_CLOSE] / divisor,
            volume,
            bar[_OI],
            bar[_TICKS],
            _SOURCES[bar[_SOURCE]],
            partial,
        )


def _order(candle: Candle) -> tuple[int, int, int]:
    return candle.end, candle.start, candle.instrument_token


def _exchange_of_segment(token: int) -> str:
    return EXCHANGE_OF_SEGMENT.get(segment_of(token), "NSE")
