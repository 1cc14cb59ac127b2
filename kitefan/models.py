"""The values kitefan passes around: modes, segments, ticks and server messages.

A :class:`Tick` keeps the integers of one wire packet exactly as they were sent (prices in the
segment's integer units, timestamps in Unix seconds) and converts on access: ``last_price`` divides
by the segment's divisor, ``exchange_timestamp`` builds a timezone-aware datetime. Decoding is the
hot path of the product, so a tick costs one ``struct`` unpack and one small object; nothing is
converted that nobody reads. ``Tick.as_dict()`` returns exactly the dict the official Python client
(``kiteconnect`` 5.2.2, ``KiteTicker._parse_binary``) builds for the same bytes, except that its
datetimes are timezone-aware (Indian Standard Time, UTC+05:30, which has no daylight saving).

Owns: ``Mode``, ``PacketKind``, segment ids and price divisors, ``Tick``, ``DepthLevel``, ``OHLC``,
and the decoded server text messages. Must not import asyncio, websockets, rich or typer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import IntEnum, StrEnum
from typing import Any, NamedTuple, NewType

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


class PacketKind(IntEnum):
    """The five packet kinds, named by what they carry; the value is the packet's byte length."""

    LTP = 8
    INDEX_QUOTE = 28
    INDEX_FULL = 32
    QUOTE = 44
    FULL = 184


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
_MODE_OF_KIND: dict[int, Mode] = {
    8: Mode.LTP,
    28: Mode.QUOTE,
    32: Mode.FULL,
    44: Mode.QUOTE,
    184: Mode.FULL,
}


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
        return self.values[0]

    @property
    def segment(self) -> int:
        return self.values[0] & 0xFF

    @property
    def divisor(self) -> float:
        return _DIVISORS.get(self.values[0] & 0xFF, 100.0)

    @property
    def tradable(self) -> bool:
        return self.values[0] & 0xFF != INDICES_SEGMENT

    @property
    def mode(self) -> Mode:
        """The mode this packet is in, inferred from its length as every official client does."""
        return _MODE_OF_KIND[self.kind]

    @property
    def last_price(self) -> float:
        return self.values[1] / _DIVISORS.get(self.values[0] & 0xFF, 100.0)

    # Quote and full (tradable) fields

    @property
    def last_traded_quantity(self) -> int | None:
        return self.values[2] if self.kind in (44, 184) else None

    @property
    def average_traded_price(self) -> float | None:
        return self.values[3] / self.divisor if self.kind in (44, 184) else None

    @property
    def volume_traded(self) -> int | None:
        return self.values[4] if self.kind in (44, 184) else None

    @property
    def total_buy_quantity(self) -> int | None:
        return self.values[5] if self.kind in (44, 184) else None

    @property
    def total_sell_quantity(self) -> int | None:
        return self.values[6] if self.kind in (44, 184) else None

    # OHLC and change (quote, full, index quote, index full)

    @property
    def ohlc(self) -> OHLC | None:
        v = self.values
        d = self.divisor
        if self.kind in (44, 184):
            return OHLC(v[7] / d, v[8] / d, v[9] / d, v[10] / d)
        if self.kind in (28, 32):
            return OHLC(v[4] / d, v[2] / d, v[3] / d, v[5] / d)
        return None

    @property
    def _close_raw(self) -> int | None:
        if self.kind in (44, 184):
            return self.values[10]
        if self.kind in (28, 32):
            return self.values[5]
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
        return (self.values[1] / d - close) * 100 / close

    @property
    def net_change(self) -> float | None:
        """Absolute change from the previous close (``last_price - close``); ``None`` for LTP."""
        close_raw = self._close_raw
        if close_raw is None:
            return None
        d = self.divisor
        return self.values[1] / d - close_raw / d

    @property
    def index_change(self) -> float | None:
        """The server's own signed change field of index packets (offset 24), in price units."""
        return self.values[6] / self.divisor if self.kind in (28, 32) else None

    # Full-mode fields

    @property
    def last_trade_time(self) -> datetime | None:
        return _datetime_of(self.values[11]) if self.kind == 184 else None

    @property
    def oi(self) -> int | None:
        return self.values[12] if self.kind == 184 else None

    @property
    def oi_day_high(self) -> int | None:
        return self.values[13] if self.kind == 184 else None

    @property
    def oi_day_low(self) -> int | None:
        return self.values[14] if self.kind == 184 else None

    @property
    def exchange_epoch_s(self) -> int | None:
        """The exchange timestamp in Unix seconds (full and index-full packets only)."""
        if self.kind == 184:
            return self.values[15]
        if self.kind == 32:
            return self.values[7]
        return None

    @property
    def exchange_timestamp(self) -> datetime | None:
        epoch_s = self.exchange_epoch_s
        return None if epoch_s is None else _datetime_of(epoch_s)

    @property
    def depth(self) -> Depth | None:
        """Five bids then five offers, best first (full packets of tradable instruments only)."""
        if self.kind != 184:
            return None
        v = self.values
        d = self.divisor
        levels = tuple(DepthLevel(v[i], v[i + 1] / d, v[i + 2]) for i in range(16, 46, 3))
        return Depth(levels[:5], levels[5:])

    # The official client's dict

    def as_dict(self) -> dict[str, Any]:
        """The dict ``kiteconnect.KiteTicker._parse_binary`` builds for the same packet.

        Same keys in the same order, same values (``change`` is the percentage), except that the
        datetimes are timezone-aware instead of naive local time.
        """
        v = self.values
        kind = self.kind
        d = _DIVISORS.get(v[0] & 0xFF, 100.0)
        out: dict[str, Any] = {
            "tradable": v[0] & 0xFF != INDICES_SEGMENT,
            "mode": _MODE_OF_KIND[kind].value,
            "instrument_token": v[0],
            "last_price": v[1] / d,
        }
        if kind == 8:
            return out
        if kind in (28, 32):
            close = v[5] / d
            out["ohlc"] = {"high": v[2] / d, "low": v[3] / d, "open": v[4] / d, "close": close}
            out["change"] = (out["last_price"] - close) * 100 / close if close != 0 else 0
            if kind == 32:
                out["exchange_timestamp"] = _datetime_of(v[7])
            return out
        close = v[10] / d
        out["last_traded_quantity"] = v[2]
        out["average_traded_price"] = v[3] / d
        out["volume_traded"] = v[4]
        out["total_buy_quantity"] = v[5]
        out["total_sell_quantity"] = v[6]
        out["ohlc"] = {"open": v[7] / d, "high": v[8] / d, "low": v[9] / d, "close": close}
        out["change"] = (out["last_price"] - close) * 100 / close if close != 0 else 0
        if kind == 184:
            out["last_trade_time"] = _datetime_of(v[11])
            out["oi"] = v[12]
            out["oi_day_high"] = v[13]
            out["oi_day_low"] = v[14]
            out["exchange_timestamp"] = _datetime_of(v[15])
            levels = [
                {"quantity": v[i], "price": v[i + 1] / d, "orders": v[i + 2]}
                for i in range(16, 46, 3)
            ]
            out["depth"] = {"buy": levels[:5], "sell": levels[5:]}
        return out

    def as_local_dict(self) -> dict[str, Any]:
        """:meth:`as_dict` with the official client's naive local datetimes
        (``datetime.fromtimestamp``, ``None`` where that fails): exactly its dict."""
        out = self.as_dict()
        kind, v = self.kind, self.values
        if kind == 32:
            out["exchange_timestamp"] = _naive_datetime_of(v[7])
        elif kind == 184:
            out["last_trade_time"] = _naive_datetime_of(v[11])
            out["exchange_timestamp"] = _naive_datetime_of(v[15])
        return out

    # Constructors from named fields (prices in the segment's integer units)

    @classmethod
    def ltp(cls, instrument_token: int, last_price: int) -> Tick:
        """An 8-byte LTP packet's tick."""
        return cls(8, (instrument_token, last_price))

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
        values = (instrument_token, last_price, high, low, open, close, change)
        if exchange_timestamp is None:
            return cls(28, values)
        return cls(32, (*values, exchange_timestamp))

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
        return cls(
            44,
            (
                instrument_token,
                last_price,
                last_traded_quantity,
                average_traded_price,
                volume_traded,
                total_buy_quantity,
                total_sell_quantity,
                open,
                high,
                low,
                close,
            ),
        )

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
        if quote.kind != 44:
            raise ValueError("Tick.full needs a quote tick for its first eleven fields")
        if len(depth) != 10:
            raise ValueError(f"Tick.full needs 10 depth levels, got {len(depth)}")
        flat = tuple(x for level in depth for x in level)
        return cls(
            184,
            (
                *quote.values,
                last_trade_time,
                oi,
                oi_day_high,
                oi_day_low,
                exchange_timestamp,
                *flat,
            ),
        )


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
