"""The packet-field table: every field of the five binary packet kinds, declared once.

A packet's kind is its length (docs/protocol.md §3.3). Each row of :data:`FIELDS` says where one
field sits and how to read it: its name, its byte offset, its ``struct`` code (``I`` u32, ``i``
i32, ``H`` u16, ``2x`` two bytes of padding), its unit (a price is divided by the segment's
divisor; see :class:`Unit`) and the packet kinds that carry it at that offset. A name may have
two rows when two families of packets carry it at different offsets (``open`` is at 28 in quote
and full packets, at 16 in the index packets).

Everything else follows from the table, at import time:

* :data:`PACKETS`: each kind's fields in wire order and its ``struct`` format (``>`` then the
  codes); ``kitefan.codec`` builds its ``struct.Struct`` objects from these formats once, and
  ``Tick.values`` is the tuple they unpack: one value per field that is not padding, in wire order
  (:meth:`Packet.index` says where a named field is);
* the ``Tick`` accessors and ``Tick.as_dict()`` (``kitefan.models``), the simulator's encoder
  (``kitefan.simulator.market``) and the columns of ``kitefan.columnar`` read positions and offsets
  from here instead of spelling them out.

The compiled record writer (``kitefan/_records.c``) cannot import Python: tests/test_packets.py
decodes frames built from this table with it and checks every value it writes by name.

Owns: the packet kinds (:class:`PacketKind`), their fields, offsets, wire types and units, and the
mode each kind is sent in. Pure: must not import any other kitefan module, asyncio, websockets,
rich or typer; does no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

__all__ = [
    "DEPTH_LEVELS",
    "DEPTH_OFFSET",
    "FIELDS",
    "INDEX_KINDS",
    "PACKETS",
    "TRADABLE_KINDS",
    "Field",
    "Packet",
    "PacketKind",
    "Unit",
]


class PacketKind(IntEnum):
    """The five packet kinds, named by what they carry; the value is the packet's byte length."""

    LTP = 8
    INDEX_QUOTE = 28
    INDEX_FULL = 32
    QUOTE = 44
    FULL = 184


class Unit(StrEnum):
    """What a field's integer is, and so how a reader converts it."""

    #: the instrument token (its low byte is the segment)
    TOKEN = "token"  # noqa: S105 - not a secret: the instrument token
    #: a price in the segment's integer units: divide by the segment's divisor
    PRICE = "price"
    #: a quantity, a volume, an open interest or an order count: never divided
    COUNT = "count"
    #: Unix seconds
    TIME = "time"
    #: padding, not a value (the encoder writes zeros)
    PAD = "pad"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of the packet kinds in :attr:`kinds`, at :attr:`offset` in each of them."""

    name: str
    offset: int
    code: str
    unit: Unit
    kinds: frozenset[PacketKind]

    @property
    def size(self) -> int:
        """Its size in bytes."""
        return struct.calcsize(">" + self.code)

    @property
    def price(self) -> bool:
        """Whether it is divided by the segment's divisor."""
        return self.unit is Unit.PRICE


_ALL = frozenset(PacketKind)
_INDEX = frozenset((PacketKind.INDEX_QUOTE, PacketKind.INDEX_FULL))
_TRADABLE = frozenset((PacketKind.QUOTE, PacketKind.FULL))
_FULL = frozenset((PacketKind.FULL,))

#: Depth levels per side of a full packet (five bids, then five offers, best first).
DEPTH_LEVELS = 5
#: Where the depth starts in a full packet.
DEPTH_OFFSET = 64
#: The bytes of one depth level.
_LEVEL = 12


def _depth() -> list[Field]:
    rows: list[Field] = []
    for number, side in enumerate(("bid", "ask")):
        for level in range(DEPTH_LEVELS):
            at = DEPTH_OFFSET + _LEVEL * (DEPTH_LEVELS * number + level)
            n = level + 1
            rows += [
                Field(f"{side}_quantity_{n}", at, "I", Unit.COUNT, _FULL),
                Field(f"{side}_price_{n}", at + 4, "I", Unit.PRICE, _FULL),
                Field(f"{side}_orders_{n}", at + 8, "H", Unit.COUNT, _FULL),
                Field(f"{side}_pad_{n}", at + 10, "2x", Unit.PAD, _FULL),
            ]
    return rows


#: Every field of every packet kind (docs/protocol.md §3.4-§3.7). Every 4-byte field is unsigned
#: but the index packets' change, the server's own absolute change, which is negative at times.
FIELDS: tuple[Field, ...] = (
    Field("instrument_token", 0, "I", Unit.TOKEN, _ALL),
    Field("last_price", 4, "I", Unit.PRICE, _ALL),
    # index quote (28) and index full (32)
    Field("high", 8, "I", Unit.PRICE, _INDEX),
    Field("low", 12, "I", Unit.PRICE, _INDEX),
    Field("open", 16, "I", Unit.PRICE, _INDEX),
    Field("close", 20, "I", Unit.PRICE, _INDEX),
    Field("index_change", 24, "i", Unit.PRICE, _INDEX),
    Field("exchange_timestamp", 28, "I", Unit.TIME, frozenset((PacketKind.INDEX_FULL,))),
    # quote (44) and full (184)
    Field("last_traded_quantity", 8, "I", Unit.COUNT, _TRADABLE),
    Field("average_traded_price", 12, "I", Unit.PRICE, _TRADABLE),
    Field("volume_traded", 16, "I", Unit.COUNT, _TRADABLE),
    Field("total_buy_quantity", 20, "I", Unit.COUNT, _TRADABLE),
    Field("total_sell_quantity", 24, "I", Unit.COUNT, _TRADABLE),
    Field("open", 28, "I", Unit.PRICE, _TRADABLE),
    Field("high", 32, "I", Unit.PRICE, _TRADABLE),
    Field("low", 36, "I", Unit.PRICE, _TRADABLE),
    Field("close", 40, "I", Unit.PRICE, _TRADABLE),
    # full (184) only
    Field("last_trade_time", 44, "I", Unit.TIME, _FULL),
    Field("oi", 48, "I", Unit.COUNT, _FULL),
    Field("oi_day_high", 52, "I", Unit.COUNT, _FULL),
    Field("oi_day_low", 56, "I", Unit.COUNT, _FULL),
    Field("exchange_timestamp", 60, "I", Unit.TIME, _FULL),
    *_depth(),
)


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet kind: its fields in wire order, its ``struct`` format and its mode."""

    kind: PacketKind
    #: the official clients' mode string of this kind (``ltp``, ``quote`` or ``full``)
    mode: str
    #: whether it is an index's packet (the index packets are laid out differently)
    index: bool
    #: every field, padding included, in offset order
    fields: tuple[Field, ...]
    #: the fields that are values (not padding), in wire order: what ``Tick.values`` holds
    values: tuple[Field, ...] = field(init=False)
    #: ``>`` and every field's code, runs of one code counted (``>11I``): the ``struct``
    #: format of the whole packet
    format: str = field(init=False)
    _positions: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = tuple(f for f in self.fields if f.unit is not Unit.PAD)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "format", _format(self.fields))
        object.__setattr__(self, "_positions", {f.name: i for i, f in enumerate(values)})

    @property
    def head(self) -> tuple[Field, ...]:
        """The values before the depth (all of them for a kind without depth), in wire order."""
        return tuple(f for f in self.values if f.offset < DEPTH_OFFSET)

    @property
    def names(self) -> tuple[str, ...]:
        """The names of :attr:`values`, in wire order."""
        return tuple(f.name for f in self.values)

    def index_of(self, name: str) -> int:
        """Where the field ``name`` is in this kind's values (``Tick.values``).

        Raises:
            KeyError: this kind does not carry it.
        """
        return self._positions[name]

    def offset_of(self, name: str) -> int:
        """The byte offset of the field ``name`` in this kind's packets.

        Raises:
            KeyError: this kind does not carry it.
        """
        return self.values[self._positions[name]].offset

    def has(self, name: str) -> bool:
        """Whether this kind carries the field ``name``."""
        return name in self._positions

    def indexes_of(self, *names: str) -> tuple[int, ...]:
        """:meth:`index_of` of each name, in the order given.

        Raises:
            KeyError: this kind does not carry one of them.
        """
        return tuple(self._positions[name] for name in names)

    def reader(self, names: tuple[str, ...], *, before: int = 0) -> struct.Struct:
        """A struct over ``before`` bytes and one packet of this kind that reads only the fields
        ``names``, which must be in wire order, and skips the rest: ``before=2`` steps over a
        frame's length prefix, so that ``iter_unpack`` walks a run of these packets.

        Raises:
            KeyError: this kind does not carry one of them.
            ValueError: they are not in wire order.
        """
        layout, position = f">{before}x" if before else ">", 0
        for name in names:
            f = self.values[self._positions[name]]
            if f.offset < position:
                raise ValueError(f"{name} is not after the fields before it in {self.kind.name}")
            gap = f.offset - position
            layout += (f"{gap}x" if gap else "") + f.code
            position = f.offset + f.size
        rest = int(self.kind) - position
        return struct.Struct(layout + (f"{rest}x" if rest else ""))

    def pack_values(self, named: Mapping[str, int]) -> tuple[int, ...]:
        """The values of a packet of this kind from its fields by name, in wire order.

        Raises:
            KeyError: a field of this kind is missing from ``named``.
        """
        return tuple(named[f.name] for f in self.values)


def _format(fields: tuple[Field, ...]) -> str:
    """The big-endian ``struct`` format of fields in offset order, a run of one code as one."""
    out = ">"
    run, code = 0, ""
    for f in fields:
        if f.code == code and f.unit is not Unit.PAD:
            run += 1
            continue
        out += (str(run) if run > 1 else "") + code
        run, code = 1, f.code
    return out + (str(run) if run > 1 else "") + code


_MODES: Mapping[PacketKind, str] = {
    PacketKind.LTP: "ltp",
    PacketKind.INDEX_QUOTE: "quote",
    PacketKind.INDEX_FULL: "full",
    PacketKind.QUOTE: "quote",
    PacketKind.FULL: "full",
}

#: Every packet kind by its length (plain ints: the keys the codec's dicts are looked up by).
PACKETS: Mapping[int, Packet] = {
    int(kind): Packet(
        kind,
        _MODES[kind],
        kind in _INDEX,
        tuple(sorted((f for f in FIELDS if kind in f.kinds), key=lambda f: f.offset)),
    )
    for kind in PacketKind
}

#: The kinds of an index's packets in quote and full mode, and of a tradable instrument's.
INDEX_KINDS = tuple(sorted(_INDEX))
TRADABLE_KINDS = tuple(sorted(_TRADABLE))
