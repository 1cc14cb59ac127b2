"""The simulator's market: a seeded, reproducible random walk per instrument, kept as wire packets.

Every instrument token is accepted. Its segment (the token's low byte) decides the price divisor
(docs/protocol.md §4), the tick size, believable price ranges (equities hundreds to thousands of
rupees, indices tens of thousands, currency pairs around 83, options a few to hundreds), lot sizes,
and whether it carries open interest (derivative segments 2, 5 and 7). An instruments dump may
seed starting prices, tick and lot sizes (:class:`InstrumentSeed`).

The walk of token ``T`` under seed ``S`` depends on nothing else: each instrument draws from its own
generator (splitmix64 seeded from ``S`` and ``T``), so the same calls give the same values whatever
else is subscribed. The market never reads the clock: callers pass ``now_s`` (Unix seconds), which
becomes the exchange timestamp and the last trade time.

Each :class:`Instrument` holds its current state already encoded, once, as the longest packet it
can be sent as (184 bytes for a tradable instrument, 32 for an index), laid out with the codec's
``LAYOUTS`` (built from the packet-field table, :mod:`kitefan.packets`, which also gives the
offsets of the fields a bouncing trade rewrites in place). The shorter packets are prefixes of
that one (8-byte LTP and 44-byte quote packets start the 184-byte full packet; the 28-byte index
quote starts the 32-byte index full packet), so a packet in any mode is a memoryview of the same
buffer, made once per instrument: building a frame costs one ``bytes.join`` and no per-tick
object.

Two ways to move an instrument:

* :meth:`Instrument.step` is one market event, as the rate-limited feed uses it: nothing happens
  (``Change.NONE``), only the depth moves (``Change.FULL``: visible to full mode only), a trade at
  the same price (``Change.QUOTE``: visible to quote and full), or a trade at a new price
  (``Change.LTP``: visible to every mode). A packet is only sent when its mode can see the change.
* :meth:`Instrument.trade` is the cheap path of the maximum-rate feed: once per wall-clock second it
  takes a full step with a guaranteed price move, and in between it prints trades bouncing around
  that price inside the spread (best bid <= last <= best offer), rewriting only the last price,
  quantity, average price and volume (and high or low when a bounce makes a new one).

Owns: :class:`Market`, :class:`Instrument`, :class:`InstrumentSeed`, :class:`Change`, frame
assembly from cached packets (:func:`assemble_frames`). Pure: must not import asyncio, websockets,
rich or typer, and does no I/O.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from kitefan.codec import LAYOUTS
from kitefan.models import Mode, PacketKind, Tick, divisor_for, segment_of
from kitefan.packets import DEPTH_LEVELS, PACKETS

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_FRAME_PACKETS",
    "Change",
    "Instrument",
    "InstrumentSeed",
    "Market",
    "assemble_frames",
    "packet_kind",
    "visible",
]

#: A frame holds at most this many packets (its count is a u16).
MAX_FRAME_PACKETS = 0xFFFF
#: Frames are cut at about this size, well under the 1 MiB a websockets client accepts by default.
MAX_FRAME_BYTES = 256 * 1024


class Change(IntEnum):
    """What one market event changed, ordered by how many modes can see it."""

    NONE = 0
    #: only full-mode fields (depth, open interest, timestamps)
    FULL = 1
    #: quote fields too (a trade at an unchanged price: volume, quantities, average price)
    QUOTE = 2
    #: the last price (every mode sees it)
    LTP = 3


_THRESHOLD: Mapping[Mode, Change] = {
    Mode.LTP: Change.LTP,
    Mode.QUOTE: Change.QUOTE,
    Mode.FULL: Change.FULL,
}


def visible(change: Change | int, mode: Mode) -> bool:
    """Whether a subscriber in ``mode`` gets a packet for this change."""
    return change >= _THRESHOLD[mode]


def packet_kind(instrument_token: int, mode: Mode) -> PacketKind:
    """The packet a token is sent as in a mode: index tokens never get 44- or 184-byte packets."""
    if segment_of(instrument_token) == _INDICES:
        return _INDEX_KINDS[mode]
    return _TRADABLE_KINDS[mode]


@dataclass(frozen=True, slots=True)
class InstrumentSeed:
    """What an instruments dump says about a token: a starting price and its trading units.

    Attributes:
        last_price: the dump's last price in rupees (or the segment's unit); 0 means unknown.
        tick_size: the price step; 0 means the segment's default.
        lot_size: the trading lot; 0 means the segment's default.
    """

    last_price: float = 0.0
    tick_size: float = 0.0
    lot_size: int = 0


# Segments, profiles and layouts -------------------------------------------------------------

_INDICES = 9
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_LCG_MULTIPLIER = 6364136223846793005  # Knuth's MMIX constants
_LCG_INCREMENT = 1442695040888963407
_MAX_VOLUME = 2_000_000_000  # a new session starts before a u32 could overflow

_INDEX_KINDS: Mapping[Mode, PacketKind] = {
    Mode.LTP: PacketKind.LTP,
    Mode.QUOTE: PacketKind.INDEX_QUOTE,
    Mode.FULL: PacketKind.INDEX_FULL,
}
_TRADABLE_KINDS: Mapping[Mode, PacketKind] = {
    Mode.LTP: PacketKind.LTP,
    Mode.QUOTE: PacketKind.QUOTE,
    Mode.FULL: PacketKind.FULL,
}

_PACK_FULL = LAYOUTS[PacketKind.FULL].pack_into
_PACK_INDEX = LAYOUTS[PacketKind.INDEX_FULL].pack_into


def _run(kind: PacketKind, names: tuple[str, ...]) -> tuple[int, struct.Struct]:
    """Where the fields ``names`` start in packets of ``kind``, and a struct that writes them
    there, from the packet-field table; they must follow each other in it.

    Raises:
        ValueError: they do not follow each other (the table changed under the market).
    """
    packet = PACKETS[kind]
    fields = [packet.values[packet.index_of(name)] for name in names]
    for before, after in itertools.pairwise(fields):
        if before.offset + before.size != after.offset:
            raise ValueError(f"{after.name} does not follow {before.name} in {kind.name} packets")
    return fields[0].offset, struct.Struct(">" + "".join(f.code for f in fields))


# The fields a bouncing trade rewrites in place, where the table puts them: last,
# last_traded_quantity, average_traded_price, volume_traded, then high and low of a full packet;
# last, high and low, and the signed change of an index packet. test_simulator_market checks every
# mutated packet against a fresh encoding of the instrument's values.
_TRADE_AT, _TRADE = _run(
    PacketKind.FULL,
    ("last_price", "last_traded_quantity", "average_traded_price", "volume_traded"),
)
_HIGH_LOW_AT, _HIGH_LOW = _run(PacketKind.FULL, ("high", "low"))
_INDEX_LAST_AT, _INDEX_LAST = _run(PacketKind.INDEX_FULL, ("last_price",))
_INDEX_HIGH_LOW_AT, _INDEX_HIGH_LOW = _run(PacketKind.INDEX_FULL, ("high", "low"))
_INDEX_CHANGE_AT, _INDEX_CHANGE = _run(PacketKind.INDEX_FULL, ("index_change",))
_PACK_TRADE = _TRADE.pack_into
_PACK_HIGH_LOW = _HIGH_LOW.pack_into
_PACK_INDEX_LAST = _INDEX_LAST.pack_into
_PACK_INDEX_HIGH_LOW = _INDEX_HIGH_LOW.pack_into
_PACK_INDEX_CHANGE = _INDEX_CHANGE.pack_into


@dataclass(frozen=True, slots=True)
class _Profile:
    low: float  # price range in the segment's unit (rupees)
    high: float
    tick: float
    lots: tuple[int, ...]
    depth_scale: int  # depth quantities are lot * (1..64) * depth_scale
    oi: bool


_EQUITY = _Profile(50.0, 5_000.0, 0.05, (1,), 10, False)
_PROFILES: Mapping[int, _Profile] = {
    1: _EQUITY,  # NSE
    2: _Profile(2.0, 500.0, 0.05, (15, 25, 50, 75), 1, True),  # NFO: option-like premiums
    3: _Profile(82.5, 84.0, 0.0025, (1,), 5, False),  # CDS: USDINR-like, divisor 1e7
    4: _EQUITY,  # BSE
    5: _Profile(2.0, 500.0, 0.05, (10, 15, 20), 1, True),  # BFO
    6: _Profile(82.5, 84.0, 0.0025, (1,), 5, False),  # BCD: divisor 1e4
    7: _Profile(1_000.0, 75_000.0, 1.0, (1, 10, 100), 1, True),  # MCX
    8: _EQUITY,  # MCX-SX
    9: _Profile(10_000.0, 80_000.0, 0.05, (1,), 1, False),  # indices
    12: _Profile(500.0, 8_000.0, 0.01, (1, 10), 1, False),  # NCO: divisor 1e4
}

_BOUNCE = (1, 0, -1, 0)  # a trade at the offer, mid, bid, mid: never twice the same price in a row


def _mix(z: int) -> int:
    """The splitmix64 finaliser: a well-spread 64-bit value from any 64-bit value."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class Instrument:
    """One instrument's state, and its current packet encoded once in a reusable buffer.

    Prices are integers in the segment's wire units (rupees times the divisor). Create instruments
    through :meth:`Market.instrument`.
    """

    __slots__ = (
        "_bounce",
        "_buy",
        "_center",
        "_close",
        "_depth",
        "_high",
        "_lot",
        "_lots",
        "_low",
        "_ltq",
        "_ltt",
        "_n",
        "_oi",
        "_oi_high",
        "_oi_low",
        "_open",
        "_rng",
        "_scale",
        "_sell",
        "_stamp",
        "_step_ticks",
        "_tick",
        "_ts",
        "_turnover",
        "_volume",
        "buffer",
        "index",
        "last",
        "parts",
        "segment",
        "token",
    )

    token: int
    segment: int
    index: bool
    last: int
    buffer: bytearray
    parts: dict[Mode, tuple[bytes, memoryview]]

    def __init__(self, token: int, seed: int, now_s: int, hint: InstrumentSeed | None) -> None:
        if not 0 <= token <= 0xFFFFFFFF:
            raise ValueError(f"an instrument token is an unsigned 32-bit integer, not {token}")
        self.token = token
        self.segment = segment = segment_of(token)
        self.index = segment == _INDICES
        self._rng = _mix(((seed & _MASK64) * _GOLDEN + token) & _MASK64)
        profile = _PROFILES.get(segment, _EQUITY)
        divisor = divisor_for(token)
        hint = hint or InstrumentSeed()

        tick = round(hint.tick_size * divisor) if hint.tick_size > 0 else 0
        self._tick = tick = tick if tick >= 1 else max(1, round(profile.tick * divisor))
        if hint.last_price > 0:
            base = round(hint.last_price * divisor / tick) * tick
        else:
            u = self._draw() / 2.0**64
            rupees = profile.low * math.exp(u * math.log(profile.high / profile.low))
            base = round(rupees * divisor / tick) * tick
        base = max(base, 40 * tick)
        self._step_ticks = max(1, round(base * 0.0003 / tick))
        r = self._draw()
        spread = max(1, base // (100 * tick))  # about 1% of the price, in ticks
        self._close = base
        self._open = open_ = max(20 * tick, base + tick * (r % (2 * spread + 1) - spread))
        r >>= 16
        self.last = last = max(20 * tick, open_ + tick * (r % (2 * spread + 1) - spread))
        r >>= 16
        self._high = max(open_, last) + tick * (r % (spread + 1))
        r >>= 16
        self._low = max(tick, min(open_, last) - tick * (r % (spread + 1)))
        self._center = last
        self._stamp = -1
        self._n = 0
        self._ts = now_s

        r = self._draw()
        lot = hint.lot_size if hint.lot_size > 0 else profile.lots[r % len(profile.lots)]
        self._lot = lot
        self._scale = lot * profile.depth_scale
        r >>= 8
        self._volume = volume = lot * (500 + r % 50_000)
        r >>= 16
        self._turnover = volume * ((self._high + self._low) // 2)
        self._ltq = lot * (1 + r % 10)
        r >>= 4
        self._buy = lot * profile.depth_scale * (100 + r % 20_000)
        r >>= 15
        self._sell = lot * profile.depth_scale * (100 + r % 20_000)
        r = self._draw()
        if profile.oi:
            self._oi = lot * (1_000 + r % 100_000)
            self._oi_high = self._oi + lot * ((r >> 17) % 500)
            self._oi_low = max(0, self._oi - lot * ((r >> 26) % 500))
        else:
            self._oi = self._oi_high = self._oi_low = 0
        self._ltt = now_s
        self._bounce = tuple(tick * b for b in _BOUNCE)
        self._lots = tuple(lot * (1 + i) for i in range(8))
        self._depth = [0] * 30
        self._set_depth()

        length = PacketKind.INDEX_FULL if self.index else PacketKind.FULL
        self.buffer = bytearray(length)
        view = memoryview(self.buffer)
        kinds = _INDEX_KINDS if self.index else _TRADABLE_KINDS
        self.parts = {
            mode: (int(kind).to_bytes(2, "big"), view[: int(kind)]) for mode, kind in kinds.items()
        }
        self._pack()

    # Inspection ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Instrument(token={self.token}, segment={self.segment}, last={self.last})"

    def kind(self, mode: Mode) -> PacketKind:
        """The packet this instrument is sent as in ``mode``."""
        return packet_kind(self.token, mode)

    def packet(self, mode: Mode) -> bytes:
        """A copy of the current packet in ``mode``."""
        return bytes(self.parts[mode][1])

    def tick(self, mode: Mode) -> Tick:
        """The current packet in ``mode``, as the tick a client decodes from it."""
        kind = self.kind(mode)
        return Tick(int(kind), LAYOUTS[kind].unpack_from(self.buffer))

    def fields(self) -> dict[str, int]:
        """The fields of the longest packet by their names in the packet-field table."""
        if self.index:
            return {
                "instrument_token": self.token,
                "last_price": self.last,
                "high": self._high,
                "low": self._low,
                "open": self._open,
                "close": self._close,
                "index_change": self.last - self._close,
                "exchange_timestamp": self._ts,
            }
        named = {
            "instrument_token": self.token,
            "last_price": self.last,
            "last_traded_quantity": self._ltq,
            "average_traded_price": self._turnover // self._volume,
            "volume_traded": self._volume,
            "total_buy_quantity": self._buy,
            "total_sell_quantity": self._sell,
            "open": self._open,
            "high": self._high,
            "low": self._low,
            "close": self._close,
            "last_trade_time": self._ltt,
            "oi": self._oi,
            "oi_day_high": self._oi_high,
            "oi_day_low": self._oi_low,
            "exchange_timestamp": self._ts,
        }
        depth = self._depth
        for number, side in enumerate(("bid", "ask")):
            for level in range(DEPTH_LEVELS):
                at = 3 * (DEPTH_LEVELS * number + level)
                n = level + 1
                named[f"{side}_quantity_{n}"] = depth[at]
                named[f"{side}_price_{n}"] = depth[at + 1]
                named[f"{side}_orders_{n}"] = depth[at + 2]
        return named

    def values(self) -> tuple[int, ...]:
        """The fields of the longest packet in wire order (the table's), for re-encoding checks."""
        kind = PacketKind.INDEX_FULL if self.index else PacketKind.FULL
        return PACKETS[kind].pack_values(self.fields())

    @property
    def tick_size(self) -> int:
        """The price step in wire units."""
        return self._tick

    # Moving -------------------------------------------------------------------------------

    def step(self, now_s: int) -> Change:
        """One market event at ``now_s``; returns what changed (and rewrites the packet if any).

        Of every 128 events about 13 change nothing, and for a tradable instrument about 32 move
        only the depth, 26 are a trade at the same price and 57 a trade at a new price (an index
        moves on every event that changes anything). One 64-bit draw decides the event.
        """
        r = self._draw()
        roll = r & 127
        if roll < 13:
            return Change.NONE
        if self.index:
            self._move(r, now_s)
            return Change.LTP
        if roll < 45:
            self._refresh_depth()
            self._ts = now_s
            self._pack()
            return Change.FULL
        if roll < 71:
            self._trade_at(self.last, r, now_s)
            return Change.QUOTE
        self._move(r, now_s)
        return Change.LTP

    def trade(self, now_s: int) -> Change:
        """The maximum-rate feed's cheap move: always a new last price, so always ``Change.LTP``.

        The first call in each wall-clock second takes a full step with a price move (new depth,
        totals, timestamps); the others print a trade at the offer, the mid or the bid of that
        step's book in turn, rewriting only the fields a trade changes.
        """
        if now_s != self._stamp:
            self._stamp = now_s
            self._move(self._draw(), now_s)
            self._n |= 1  # the next bounce leaves the mid
            return Change.LTP
        n = self._n + 1
        self._n = n
        last = self._center + self._bounce[n & 3]
        self.last = last
        if self.index:
            _PACK_INDEX_LAST(self.buffer, _INDEX_LAST_AT, last)
            _PACK_INDEX_CHANGE(self.buffer, _INDEX_CHANGE_AT, last - self._close)
            if last > self._high or last < self._low:
                self._high = max(self._high, last)
                self._low = min(self._low, last)
                _PACK_INDEX_HIGH_LOW(self.buffer, _INDEX_HIGH_LOW_AT, self._high, self._low)
            return Change.LTP
        ltq = self._lots[n >> 2 & 7]
        volume = self._volume + ltq
        if volume > _MAX_VOLUME:
            self._new_session(now_s)
            return Change.LTP
        self._ltq = ltq
        self._volume = volume
        turnover = self._turnover + last * ltq
        self._turnover = turnover
        _PACK_TRADE(self.buffer, _TRADE_AT, last, ltq, turnover // volume, volume)
        if last > self._high or last < self._low:
            self._high = max(self._high, last)
            self._low = min(self._low, last)
            _PACK_HIGH_LOW(self.buffer, _HIGH_LOW_AT, self._high, self._low)
        return Change.LTP

    # Internals ----------------------------------------------------------------------------

    def _draw(self) -> int:
        """64 random bits: a 64-bit LCG, its high bits folded onto the low ones (PCG's idea)."""
        state = (self._rng * _LCG_MULTIPLIER + _LCG_INCREMENT) & _MASK64
        self._rng = state
        return state ^ (state >> 29)

    def _move(self, r: int, now_s: int) -> None:
        """A trade at a new price (bits 7-32 of ``r``), pulled back towards the open, so that the
        walk stays within a few per cent of it."""
        tick = self._tick
        last = self.last
        size = (1 + (r >> 7 & 0xFFFF) % self._step_ticks) * tick
        deviation = (last - self._open) * 1000 // self._open  # per mille
        p_up = min(922, max(102, 512 - 30 * deviation))  # out of 1024
        new = last + size if (r >> 23 & 1023) < p_up else last - size
        if new < 20 * tick:
            new = last + size
        self.last = self._center = new
        if self.index:
            if new > self._high:
                self._high = new
            elif new < self._low:
                self._low = new
            self._ts = now_s
            self._pack()
            return
        self._price_depth(new)
        self._trade_at(new, r, now_s)

    def _trade_at(self, price: int, r: int, now_s: int) -> None:
        """A trade at ``price``; bits 33-56 of ``r`` decide its size and the totals' moves."""
        lot = self._lot
        ltq = lot * (1 + (r >> 33 & 31) % 20)
        volume = self._volume + ltq
        if volume > _MAX_VOLUME:
            self._new_session(now_s)
            return
        self._ltq = ltq
        self._volume = volume
        self._turnover += price * ltq
        if price > self._high:
            self._high = price
        elif price < self._low:
            self._low = price
        scale = self._scale
        self._buy = max(scale, self._buy + scale * ((r >> 38 & 63) % 41 - 20))
        self._sell = max(scale, self._sell + scale * ((r >> 44 & 63) % 41 - 20))
        if self._oi and r >> 50 & 3 == 0:
            self._oi = oi = max(0, self._oi + lot * ((r >> 52 & 31) % 21 - 10))
            if oi > self._oi_high:
                self._oi_high = oi
            elif oi < self._oi_low:
                self._oi_low = oi
        self._ltt = self._ts = now_s
        self._refresh_depth()
        self._pack()

    def _new_session(self, now_s: int) -> None:
        """Roll over to a new trading session before volume could overflow its u32."""
        last = self.last
        self._close = self._open = self._high = self._low = self._center = last
        self._ltq = self._lot
        self._volume = self._lot
        self._turnover = last * self._lot
        self._ltt = self._ts = now_s
        self._set_depth()
        self._pack()

    def _set_depth(self) -> None:
        """Five bids below and five offers above the last price, a tick apart, fresh sizes."""
        if self.index:
            return
        self._price_depth(self.last)
        depth = self._depth
        quantities = self._draw()
        orders = self._draw()
        scale = self._scale
        for level in range(10):
            q = 1 + (quantities >> (6 * level) & 63)
            depth[3 * level] = scale * q
            depth[3 * level + 2] = 1 + (orders >> (6 * level) & 63) % min(q, 16)

    def _price_depth(self, center: int) -> None:
        """Bids 1-5 ticks below ``center``, offers 1-5 ticks above (unrolled: the hot path)."""
        depth = self._depth
        t = self._tick
        depth[1] = center - t
        depth[4] = center - 2 * t
        depth[7] = center - 3 * t
        depth[10] = center - 4 * t
        depth[13] = center - 5 * t
        depth[16] = center + t
        depth[19] = center + 2 * t
        depth[22] = center + 3 * t
        depth[25] = center + 4 * t
        depth[28] = center + 5 * t

    def _refresh_depth(self) -> None:
        """New sizes at two levels of the book (its prices follow the last price elsewhere)."""
        d = self._draw()
        depth = self._depth
        scale = self._scale
        at = 3 * ((d & 15) % 10)
        q = 1 + (d >> 4 & 63)
        orders = 1 + (d >> 10 & 15)
        depth[at] = scale * q
        depth[at + 2] = orders if orders <= q else q
        at = 3 * ((d >> 16 & 15) % 10)
        q = 1 + (d >> 20 & 63)
        orders = 1 + (d >> 26 & 15)
        depth[at] = scale * q
        depth[at + 2] = orders if orders <= q else q

    def _pack(self) -> None:
        # The fields are spelled out again, in the table's wire order, rather than packed from
        # values(): at the maximum rate this runs once per tick, and building the tuple first
        # costs 40 % more. test_simulator_market checks these bytes against values() (named
        # fields put in order by the table) after every kind of move.
        if self.index:
            _PACK_INDEX(
                self.buffer,
                0,
                self.token,
                self.last,
                self._high,
                self._low,
                self._open,
                self._close,
                self.last - self._close,
                self._ts,
            )
            return
        _PACK_FULL(
            self.buffer,
            0,
            self.token,
            self.last,
            self._ltq,
            self._turnover // self._volume,
            self._volume,
            self._buy,
            self._sell,
            self._open,
            self._high,
            self._low,
            self._close,
            self._ltt,
            self._oi,
            self._oi_high,
            self._oi_low,
            self._ts,
            *self._depth,
        )


class Market:
    """Every instrument anyone subscribed to, created on first use from the seed.

    Args:
        seed: the seed of every walk; the same seed gives the same values for the same calls.
        seeds: starting prices, tick and lot sizes by token (from an instruments dump).
    """

    def __init__(self, seed: int = 0, seeds: Mapping[int, InstrumentSeed] | None = None) -> None:
        self._seed = seed
        self._seeds: Mapping[int, InstrumentSeed] = seeds or {}
        self._instruments: dict[int, Instrument] = {}

    @property
    def seed(self) -> int:
        """The seed of every walk."""
        return self._seed

    def __len__(self) -> int:
        return len(self._instruments)

    def __contains__(self, token: object) -> bool:
        return token in self._instruments

    def instrument(self, token: int, now_s: int) -> Instrument:
        """The instrument of ``token``, created (with ``now_s`` as its timestamps) if new."""
        found = self._instruments.get(token)
        if found is None:
            found = Instrument(token, self._seed, now_s, self._seeds.get(token))
            self._instruments[token] = found
        return found

    def get(self, token: int) -> Instrument | None:
        """The instrument of ``token`` if it exists."""
        return self._instruments.get(token)

    def step(self, token: int, now_s: int) -> Change:
        """One market event for ``token`` (created if new)."""
        return self.instrument(token, now_s).step(now_s)

    def trade(self, token: int, now_s: int) -> Change:
        """One maximum-rate move for ``token`` (created if new)."""
        return self.instrument(token, now_s).trade(now_s)

    def packet(self, token: int, mode: Mode, now_s: int) -> bytes:
        """A copy of ``token``'s current packet in ``mode`` (created if new)."""
        return self.instrument(token, now_s).packet(mode)

    def tick(self, token: int, mode: Mode, now_s: int) -> Tick:
        """``token``'s current packet in ``mode`` as a decoded tick (created if new)."""
        return self.instrument(token, now_s).tick(mode)


def assemble_frames(
    parts: Sequence[tuple[bytes, memoryview]],
    *,
    max_bytes: int = MAX_FRAME_BYTES,
    max_packets: int = MAX_FRAME_PACKETS,
) -> list[tuple[bytes, int]]:
    """Frame cached packets: the same bytes as ``codec.frame_of_packets``, cut into several frames.

    Args:
        parts: ``(length prefix, packet)`` pairs, as :attr:`Instrument.parts` holds them.
        max_bytes: a frame is cut before it would exceed this many bytes (one packet always fits).
        max_packets: and before it would hold more packets than this.

    Returns:
        ``(frame, packet count)`` pairs, in order.
    """
    frames: list[tuple[bytes, int]] = []
    chunk: list[bytes | memoryview] = [b""]
    size = 2
    for prefix, packet in parts:
        length = 2 + len(packet)
        if len(chunk) > 1 and (size + length > max_bytes or len(chunk) // 2 >= max_packets):
            count = len(chunk) // 2
            chunk[0] = count.to_bytes(2, "big")
            frames.append((b"".join(chunk), count))
            chunk = [b""]
            size = 2
        chunk.append(prefix)
        chunk.append(packet)
        size += length
    if len(chunk) > 1:
        count = len(chunk) // 2
        chunk[0] = count.to_bytes(2, "big")
        frames.append((b"".join(chunk), count))
    return frames
