"""The values kitefan passes around: modes, segments, ticks and server messages.

A :class:`Tick` keeps the integers of one wire packet exactly as they were sent (prices in the
segment's integer units, timestamps in Unix seconds) and converts on access: ``last_price`` divides
by the segment's divisor, ``exchange_timestamp`` builds a timezone-aware datetime. Decoding is the
hot path of the product, so a tick costs one ``struct`` unpack and one small object; nothing is
converted that nobody reads. ``Tick.as_dict()`` returns exactly the dict the official Python client
(``kiteconnect`` 5.2.2, ``KiteTicker._parse_binary``) builds for the same bytes, except that its
datetimes are timezone-aware (Indian Standard Time, UTC+05:30, which has no daylight saving).

Where each field sits in ``Tick.values`` is not written here: the accessors read their positions
from the packet-field table (:mod:`kitefan.packets`, which also owns ``PacketKind``; it is
re-exported here), once, at import.

Owns: ``Mode``, segment ids and price divisors, ``Tick``, ``DepthLevel``, ``OHLC``, and the
decoded server text messages. Must not import asyncio, websockets, rich or typer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, NamedTuple, NewType

from kitefan.packets import DEPTH_LEVELS, INDEX_KINDS, PACKETS, TRADABLE_KINDS, PacketKind

__all__ = [
    "IST",
    "MODE_RANK",
    "OHLC",
    "SEGMENT_NAMES",
    "DepthLevel",
    "InstrumentToken",
    "Mode",
    "OrderUpdate",
    "PacketKind",
    "ServerError",
    "ServerMessage",
    "ServerNotice",
    "Tick",
    "UnknownText",
    "divisor_for",
    "segment_of",
]

InstrumentToken = NewType("InstrumentToken", int)

#: Indian Standard Time; exchange timestamps are shown in it (India keeps no daylight saving).
IST = timezone(timedelta(hours=5, minutes=30), "IST")


class Mode(StrEnum):
    """A subscription mode; the values are the exact strings of the wire protocol."""

    LTP = "ltp"
    QUOTE = "quote"
    FULL = "full"


#: full > quote > ltp: a symbol asked for twice keeps the higher mode.
MODE_RANK: Mapping[Mode, int] = {Mode.LTP: 0, Mode.QUOTE: 1, Mode.FULL: 2}


#: Segment id (the low byte of an instrument token) to the official client's name for it.
SEGMENT_NAMES: Mapping[int, str] = {
    1: "nse",
    2: "nfo",
    3: "cds",
    4: "bse",
    5: "bfo",
    6: "bcd",
    7: "mcx",
    8: "mcxsx",
    9: "indices",
    12: "nco",
}

INDICES_SEGMENT = 9
_DIVISORS: dict[int, float] = {3: 10_000_000.0, 6: 10_000.0, 12: 10_000.0}
_MODE_OF_KIND: dict[int, Mode] = {length: Mode(packet.mode) for length, packet in PACKETS.items()}


# Where the fields are in Tick.values, from the packet-field table. The accessors below serve the
# kinds of one family with one position: the quote packet is the full packet's prefix, the index
# quote the index full's; _position refuses (at import) a table where that stopped being true.


def _position(name: str, kinds: Sequence[int]) -> int:
    positions = {PACKETS[kind].index_of(name) for kind in kinds}
    if len(positions) != 1:
        raise ValueError(f"{name} is not at one position in the packets {tuple(kinds)}")
    return positions.pop()


def _positions(name: str) -> dict[int, int]:
    """The position of ``name`` in each kind that carries it."""
    return {kind: p.index_of(name) for kind, p in PACKETS.items() if p.has(name)}


_ALL = tuple(PACKETS)
_TOKEN = _position("instrument_token", _ALL)
_LAST = _position("last_price", _ALL)
# quote and full
_LTQ = _position("last_traded_quantity", TRADABLE_KINDS)
_ATP = _position("average_traded_price", TRADABLE_KINDS)
_VOLUME = _position("volume_traded", TRADABLE_KINDS)
_BUY = _position("total_buy_quantity", TRADABLE_KINDS)
_SELL = _position("total_sell_quantity", TRADABLE_KINDS)
_OPEN = _position("open", TRADABLE_KINDS)
_HIGH = _position("high", TRADABLE_KINDS)
_LOW = _position("low", TRADABLE_KINDS)
_CLOSE = _position("close", TRADABLE_KINDS)
# the index packets
_I_HIGH = _position("high", INDEX_KINDS)
_I_LOW = _position("low", INDEX_KINDS)
_I_OPEN = _position("open", INDEX_KINDS)
_I_CLOSE = _position("close", INDEX_KINDS)
_I_CHANGE = _position("index_change", INDEX_KINDS)
_I_STAMP = _position("exchange_timestamp", (PacketKind.INDEX_FULL,))
# full only
_LTT = _position("last_trade_time", (PacketKind.FULL,))
_OI = _position("oi", (PacketKind.FULL,))
_OI_HIGH = _position("oi_day_high", (PacketKind.FULL,))
_OI_LOW = _position("oi_day_low", (PacketKind.FULL,))
_STAMP = _position("exchange_timestamp", (PacketKind.FULL,))
#: (quantity, price, orders) of each depth level, five bids then five offers, best first.
_LEVELS = tuple(
    tuple(
        PACKETS[PacketKind.FULL].index_of(f"{side}_{part}_{n}")
        for part in ("quantity", "price", "orders")
    )
    for side in ("bid", "ask")
    for n in range(1, DEPTH_LEVELS + 1)
)
_EXCHANGE_STAMP = _positions("exchange_timestamp")
# The kinds as plain ints: a tick's kind is the int the codec read.
_LTP_KIND = int(PacketKind.LTP)
_INDEX_FULL_KIND = int(PacketKind.INDEX_FULL)
_FULL_KIND = int(PacketKind.FULL)
_TRADABLE = tuple(int(kind) for kind in TRADABLE_KINDS)
_INDEX = tuple(int(kind) for kind in INDEX_KINDS)


def segment_of(instrument_token: int) -> int:
    """The exchange segment of a token: its low byte (``exchange_token << 8 | segment``)."""
    return instrument_token & 0xFF


def divisor_for(instrument_token: int) -> float:
    """The price divisor of a token's segment: CDS 1e7; BCD and NCO 1e4; everything else 100."""
    return _DIVISORS.get(instrument_token & 0xFF, 100.0)


class OHLC(NamedTuple):
    """Open, high, low and close (the previous day's close) in rupees (or the segment's unit)."""

    open: float
    high: float
    low: float
    close: float


class DepthLevel(NamedTuple):
    """One level of market depth."""

    quantity: int
    price: float
    orders: int


class Depth(NamedTuple):
    """Five bids (best first) and five offers (best first)."""

    buy: tuple[DepthLevel, ...]
    sell: tuple[DepthLevel, ...]


_DATETIMES: dict[int, datetime | None] = {}
_NAIVE_DATETIMES: dict[int, datetime | None] = {}


def _naive_datetime_of(epoch_s: int) -> datetime | None:
    """The official client's datetime: naive, in the machine's local time."""
    if epoch_s in _NAIVE_DATETIMES:
        return _NAIVE_DATETIMES[epoch_s]
    try:
        value: datetime | None = datetime.fromtimestamp(epoch_s)
    except (OverflowError, OSError, ValueError):
        value = None
    if len(_NAIVE_DATETIMES) >= 4096:
        _NAIVE_DATETIMES.clear()
    _NAIVE_DATETIMES[epoch_s] = value
    return value


def _datetime_of(epoch_s: int) -> datetime | None:
    # Ticks of one frame mostly share their second: datetimes are immutable, so reuse them.
    if epoch_s in _DATETIMES:
        return _DATETIMES[epoch_s]
    try:
        value: datetime | None = datetime.fromtimestamp(epoch_s, tz=IST)
    except (OverflowError, OSError, ValueError):
        value = None
    if len(_DATETIMES) >= 4096:
        _DATETIMES.clear()
    _DATETIMES[epoch_s] = value
    return value


class Tick:
    """One decoded packet: a market update for one instrument.

    ``kind`` is the packet length (a :class:`PacketKind` value) and ``values`` the packet's integers
    in wire order, as ``struct`` unpacked them (see ``kitefan.codec`` for the layouts). Fields a
    packet kind does not carry read as ``None``.
    """

    __slots__ = ("kind", "values")

    kind: int
    values: tuple[int, ...]

    def __init__(self, kind: int, values: tuple[int, ...]) -> None:
        # kitefan.codec.decode_packets sets these two slots itself, without calling __init__
        # (it is the hot path): a Tick must stay exactly these two slots.
        self.kind = kind
        self.values = values

    # Identity and comparison

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tick):
            return NotImplemented
        return self.kind == other.kind and self.values == other.values

    def __hash__(self) -> int:
        return hash((self.kind, self.values))

    def __repr__(self) -> str:
        return (
            f"Tick(mode={self.mode.value}, instrument_token={self.instrument_token}, "
            f"last_price={self.last_price})"
        )

    # Fields every packet carries

    @property
    def instrument_token(self) -> int:
        return self.values[_TOKEN]

    @property
    def segment(self) -> int:
        return self.values[_TOKEN] & 0xFF

    @property
    def divisor(self) -> float:
        return _DIVISORS.get(self.values[_TOKEN] & 0xFF, 100.0)

    @property
    def tradable(self) -> bool:
        return self.values[_TOKEN] & 0xFF != INDICES_SEGMENT

    @property
    def mode(self) -> Mode:
        """The mode this packet is in, inferred from its length as every official client does."""
        return _MODE_OF_KIND[self.kind]

    @property
    def last_price(self) -> float:
        return self.values[_LAST] / _DIVISORS.get(self.values[_TOKEN] & 0xFF, 100.0)

    # Quote and full (tradable) fields

    @property
    def last_traded_quantity(self) -> int | None:
        return self.values[_LTQ] if self.kind in _TRADABLE else None

    @property
    def average_traded_price(self) -> float | None:
        return self.values[_ATP] / self.divisor if self.kind in _TRADABLE else None

    @property
    def volume_traded(self) -> int | None:
        return self.values[_VOLUME] if self.kind in _TRADABLE else None

    @property
    def total_buy_quantity(self) -> int | None:
        return self.values[_BUY] if self.kind in _TRADABLE else None

    @property
    def total_sell_quantity(self) -> int | None:
        return self.values[_SELL] if self.kind in _TRADABLE else None

    # OHLC and change (quote, full, index quote, index full)

    @property
    def ohlc(self) -> OHLC | None:
        v = self.values
        d = self.divisor
        if self.kind in _TRADABLE:
            return OHLC(v[_OPEN] / d, v[_HIGH] / d, v[_LOW] / d, v[_CLOSE] / d)
        if self.kind in _INDEX:
            return OHLC(v[_I_OPEN] / d, v[_I_HIGH] / d, v[_I_LOW] / d, v[_I_CLOSE] / d)
        return None

    @property
    def _close_raw(self) -> int | None:
        if self.kind in _TRADABLE:
            return self.values[_CLOSE]
        if self.kind in _INDEX:
            return self.values[_I_CLOSE]
        return None

    @property
    def change(self) -> float | None:
        """Percentage change from the previous close, as the official Python client computes it.

        ``(last_price - close) * 100 / close``, or 0 when close is 0; ``None`` for LTP packets.
        """
        close_raw = self._close_raw
        if close_raw is None:
            return None
        if close_raw == 0:
            return 0
        d = self.divisor
        close = close_raw / d
        return (self.values[_LAST] / d - close) * 100 / close

    @property
    def net_change(self) -> float | None:
        """Absolute change from the previous close (``last_price - close``); ``None`` for LTP."""
        close_raw = self._close_raw
        if close_raw is None:
            return None
        d = self.divisor
        return self.values[_LAST] / d - close_raw / d

    @property
    def index_change(self) -> float | None:
        """The server's own signed change field of index packets (offset 24), in price units."""
        return self.values[_I_CHANGE] / self.divisor if self.kind in _INDEX else None

    # Full-mode fields

    @property
    def last_trade_time(self) -> datetime | None:
        return _datetime_of(self.values[_LTT]) if self.kind == _FULL_KIND else None

    @property
    def oi(self) -> int | None:
        return self.values[_OI] if self.kind == _FULL_KIND else None

    @property
    def oi_day_high(self) -> int | None:
        return self.values[_OI_HIGH] if self.kind == _FULL_KIND else None

    @property
    def oi_day_low(self) -> int | None:
        return self.values[_OI_LOW] if self.kind == _FULL_KIND else None

    @property
    def exchange_epoch_s(self) -> int | None:
        """The exchange timestamp in Unix seconds (full and index-full packets only)."""
        position = _EXCHANGE_STAMP.get(self.kind)
        return None if position is None else self.values[position]

    @property
    def exchange_timestamp(self) -> datetime | None:
        epoch_s = self.exchange_epoch_s
        return None if epoch_s is None else _datetime_of(epoch_s)

    @property
    def depth(self) -> Depth | None:
        """Five bids then five offers, best first (full packets of tradable instruments only)."""
        if self.kind != _FULL_KIND:
            return None
        v = self.values
        d = self.divisor
        levels = tuple(DepthLevel(v[q], v[p] / d, v[o]) for q, p, o in _LEVELS)
        return Depth(levels[:DEPTH_LEVELS], levels[DEPTH_LEVELS:])

    # The official client's dict

    def as_dict(self) -> dict[str, Any]:
        """The dict ``kiteconnect.KiteTicker._parse_binary`` builds for the same packet.

        Same keys in the same order, same values (``change`` is the percentage), except that the
        datetimes are timezone-aware instead of naive local time.
        """
        v = self.values
        kind = self.kind
        d = _DIVISORS.get(v[_TOKEN] & 0xFF, 100.0)
        out: dict[str, Any] = {
            "tradable": v[_TOKEN] & 0xFF != INDICES_SEGMENT,
            "mode": _MODE_OF_KIND[kind].value,
            "instrument_token": v[_TOKEN],
            "last_price": v[_LAST] / d,
        }
        if kind == _LTP_KIND:
            return out
        if kind in _INDEX:
            close = v[_I_CLOSE] / d
            out["ohlc"] = {
                "high": v[_I_HIGH] / d,
                "low": v[_I_LOW] / d,
                "open": v[_I_OPEN] / d,
                "close": close,
            }
            out["change"] = (out["last_price"] - close) * 100 / close if close != 0 else 0
            if kind == _INDEX_FULL_KIND:
                out["exchange_timestamp"] = _datetime_of(v[_I_STAMP])
            return out
        close = v[_CLOSE] / d
        out["last_traded_quantity"] = v[_LTQ]
        out["average_traded_price"] = v[_ATP] / d
        out["volume_traded"] = v[_VOLUME]
        out["total_buy_quantity"] = v[_BUY]
        out["total_sell_quantity"] = v[_SELL]
        out["ohlc"] = {
            "open": v[_OPEN] / d,
            "high": v[_HIGH] / d,
            "low": v[_LOW] / d,
            "close": close,
        }
        out["change"] = (out["last_price"] - close) * 100 / close if close != 0 else 0
        if kind == _FULL_KIND:
            out["last_trade_time"] = _datetime_of(v[_LTT])
            out["oi"] = v[_OI]
            out["oi_day_high"] = v[_OI_HIGH]
            out["oi_day_low"] = v[_OI_LOW]
            out["exchange_timestamp"] = _datetime_of(v[_STAMP])
            levels = [{"quantity": v[q], "price": v[p] / d, "orders": v[o]} for q, p, o in _LEVELS]
            out["depth"] = {"buy": levels[:DEPTH_LEVELS], "sell": levels[DEPTH_LEVELS:]}
        return out

    def as_local_dict(self) -> dict[str, Any]:
        """:meth:`as_dict` with the official client's naive local datetimes
        (``datetime.fromtimestamp``, ``None`` where that fails): exactly its dict."""
        out = self.as_dict()
        kind, v = self.kind, self.values
        if kind == _INDEX_FULL_KIND:
            out["exchange_timestamp"] = _naive_datetime_of(v[_I_STAMP])
        elif kind == _FULL_KIND:
            out["last_trade_time"] = _naive_datetime_of(v[_LTT])
            out["exchange_timestamp"] = _naive_datetime_of(v[_STAMP])
        return out

    # Constructors from named fields (prices in the segment's integer units), in the order of the
    # packet-field table

    @classmethod
    def ltp(cls, instrument_token: int, last_price: int) -> Tick:
        """An 8-byte LTP packet's tick."""
        named = {"instrument_token": instrument_token, "last_price": last_price}
        return cls(_LTP_KIND, PACKETS[PacketKind.LTP].pack_values(named))

    @classmethod
    def index(
        cls,
        instrument_token: int,
        *,
        last_price: int,
        high: int,
        low: int,
        open: int,
        close: int,
        change: int,
        exchange_timestamp: int | None = None,
    ) -> Tick:
        """An index packet's tick: 28 bytes (quote), or 32 (full) when a timestamp is given."""
        named = {
            "instrument_token": instrument_token,
            "last_price": last_price,
            "high": high,
            "low": low,
            "open": open,
            "close": close,
            "index_change": change,
        }
        if exchange_timestamp is None:
            kind = PacketKind.INDEX_QUOTE
        else:
            kind = PacketKind.INDEX_FULL
            named["exchange_timestamp"] = exchange_timestamp
        return cls(int(kind), PACKETS[kind].pack_values(named))

    @classmethod
    def quote(
        cls,
        instrument_token: int,
        *,
        last_price: int,
        last_traded_quantity: int,
        average_traded_price: int,
        volume_traded: int,
        total_buy_quantity: int,
        total_sell_quantity: int,
        open: int,
        high: int,
        low: int,
        close: int,
    ) -> Tick:
        """A 44-byte quote packet's tick."""
        named = {
            "instrument_token": instrument_token,
            "last_price": last_price,
            "last_traded_quantity": last_traded_quantity,
            "average_traded_price": average_traded_price,
            "volume_traded": volume_traded,
            "total_buy_quantity": total_buy_quantity,
            "total_sell_quantity": total_sell_quantity,
            "open": open,
            "high": high,
            "low": low,
            "close": close,
        }
        return cls(int(PacketKind.QUOTE), PACKETS[PacketKind.QUOTE].pack_values(named))

    @classmethod
    def full(
        cls,
        quote: Tick,
        *,
        last_trade_time: int,
        oi: int,
        oi_day_high: int,
        oi_day_low: int,
        exchange_timestamp: int,
        depth: Sequence[tuple[int, int, int]],
    ) -> Tick:
        """A 184-byte full packet's tick: a quote tick's fields plus these, and ten depth levels
        given as (quantity, price, orders), five bids then five offers."""
        if quote.kind != PacketKind.QUOTE:
            raise ValueError("Tick.full needs a quote tick for its first eleven fields")
        if len(depth) != 2 * DEPTH_LEVELS:
            raise ValueError(f"Tick.full needs {2 * DEPTH_LEVELS} depth levels, got {len(depth)}")
        named = dict(zip(PACKETS[PacketKind.QUOTE].names, quote.values, strict=True))
        named.update(
            last_trade_time=last_trade_time,
            oi=oi,
            oi_day_high=oi_day_high,
            oi_day_low=oi_day_low,
            exchange_timestamp=exchange_timestamp,
        )
        for number, side in enumerate(("bid", "ask")):
            for level in range(DEPTH_LEVELS):
                quantity, price, orders = depth[DEPTH_LEVELS * number + level]
                n = level + 1
                named[f"{side}_quantity_{n}"] = quantity
                named[f"{side}_price_{n}"] = price
                named[f"{side}_orders_{n}"] = orders
        return cls(_FULL_KIND, PACKETS[PacketKind.FULL].pack_values(named))


# Server text messages ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order postback pushed on the socket (``{"type": "order", "data": {...}}``)."""

    data: Mapping[str, Any]

    @property
    def order_id(self) -> str | None:
        value = self.data.get("order_id")
        return None if value is None else str(value)

    @property
    def dedup_key(self) -> str:
        """What makes two deliveries the same update: the order, its status and its times.

        Kite pushes each update to every open connection of a key; an order moving through
        ``OPEN`` -> ``UPDATE`` -> ``COMPLETE`` gives distinct updates, each once. The key is the
        canonical JSON of those fields, so it is hashable whatever JSON values they hold.
        """
        d = self.data
        return _canonical([d.get(name) for name in _DEDUP_FIELDS])


_DEDUP_FIELDS = (
    "order_id",
    "status",
    "exchange_update_timestamp",
    "filled_quantity",
    "pending_quantity",
    "cancelled_quantity",
    "average_price",
    "quantity",
    "price",
    "trigger_price",
    "checksum",
)

_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
).encode


@dataclass(frozen=True, slots=True)
class ServerError:
    """An error text from the server (``{"type": "error", "data": "..."}``)."""

    text: str


@dataclass(frozen=True, slots=True)
class ServerNotice:
    """A broadcast message from the broker (``{"type": "message", "data": "..."}``)."""

    text: str


@dataclass(frozen=True, slots=True)
class UnknownText:
    """A well-formed text message of a type kitefan does not know; kept, not dropped."""

    type: str
    data: Any


ServerMessage = OrderUpdate | ServerError | ServerNotice | UnknownText
