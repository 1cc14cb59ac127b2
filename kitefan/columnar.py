"""Tick frames as columns: numpy arrays and Arrow tables, read straight from the frame bytes.

Pure: no asyncio, no I/O. This module imports numpy, so ``import kitefan`` never imports it:
:meth:`kitefan.events.TickBatch.to_numpy` and :meth:`~kitefan.events.TickBatch.to_arrow` import
it when called. numpy comes with the ``columnar`` extra (``pip install 'kitefan[columnar]'``),
pyarrow with ``parquet`` (``pip install 'kitefan[parquet]'``); pyarrow is imported only by the
``*_arrow`` functions.

How: every packet layout is a row of big-endian 4-byte words (a depth level's ``orders:u16 pad``
is the high half of one), so the packets of a frame whose packets are all one length (a
connection in one mode) are one strided numpy view over its bytes, 2-byte length prefixes stepped
over, found with no Python per packet; one copy, in cache-sized blocks, turns the packets of one
length from every frame into native words, one contiguous array per field. That copy is C
(``kitefan._records.fields``, in the optional compiled extension) where it was built, which
also divides the prices and cuts the order counts as it copies (their words never become rows
of their own); numpy where not (a strided big-endian view, transposed, then the division): the
same columns either way, and the compiled copy about twice as fast (:data:`COMPILED` says
which). A mixed frame's packet
offsets depend on each other, so they are found by one pass over its 2-byte length fields; then
numpy gathers its packets by length and reads every field of every packet. No
:class:`~kitefan.models.Tick` is built.

The table: one row per tick, in frame order, then packet order; packets of a length no layout has
are skipped, as :func:`kitefan.codec.decode_packets` skips them. The columns, in this order
(:data:`TAG_COLUMNS` then :data:`TICK_COLUMNS`; the tag columns appear only when given):

=======================  ============  =============================  ========================
column                   numpy         Arrow                          present in
=======================  ============  =============================  ========================
key                      str (``U``)   dictionary<int32, string>      (tag)
connection               uint8         uint8                          (tag)
received_at              float64       float64                        (tag: perf_counter s)
received_wall            M8[us]        timestamp[us, Asia/Kolkata]    (tag)
tradable                 bool          bool                           every packet
mode                     str (``U5``)  dictionary<int8, string>       every packet
kind                     uint8         uint8                          every packet
instrument_token         uint32        uint32                         every packet
last_price               float64       float64                        every packet
last_traded_quantity     int64         uint32                         quote, full
average_traded_price     float64       float64                        quote, full
volume_traded            int64         uint32                         quote, full
total_buy_quantity       int64         uint32                         quote, full
total_sell_quantity      int64         uint32                         quote, full
open, high, low, close   float64       float64                        all but LTP
change                   float64       float64                        all but LTP
last_trade_time          M8[s]         timestamp[s, Asia/Kolkata]     full
oi, oi_day_high,         int64         uint32                         full
oi_day_low
exchange_timestamp       M8[s]         timestamp[s, Asia/Kolkata]     full, index full
bid_quantity_N           int64         uint32                         full (N = 1..5, then
bid_price_N              float64       float64                        the same for ask_*)
bid_orders_N             int64         uint16                         full
=======================  ============  =============================  ========================

Values are exactly :meth:`kitefan.models.Tick.as_dict`'s (the official client's dict), flattened:
``ohlc`` becomes ``open`` .. ``close``, ``depth`` becomes ``bid_*_N`` (``buy``) and ``ask_*_N``
(``sell``), best first. Prices are divided by the segment's divisor (CDS 1e7, BCD and NCO 1e4,
else 100), ``change`` is ``(last_price - close) * 100 / close`` (0 when close is 0), ``tradable``
is ``segment != 9``. ``mode`` is the official client's string (``ltp``, ``quote``, ``full``);
``kind`` the packet length, which alone tells an index quote (28) from a quote (44).

Where a packet kind lacks a field: Arrow has a null. numpy has ``NaN`` in float columns, ``NaT``
in datetime columns and ``-1`` in integer columns (every wire value is at least 0, so
``column >= 0`` is the validity mask; integers that can be missing are ``int64`` for that reason).

Timestamps: numpy has no time zones, so its ``datetime64`` values are UTC instants (the wire's
Unix seconds); Arrow's carry ``Asia/Kolkata`` (IST, as ``as_dict()`` gives them), the same
instants.

To polars and pandas (neither is a dependency of kitefan)::

    table = batches_to_arrow(batches)   # or batch.to_arrow()
    frame = polars.from_arrow(table)    # key and mode become Categorical, timestamps [ms]
    frame = table.to_pandas()           # datetime64[s, Asia/Kolkata]; nulls become NaN / NaT
    pyarrow.parquet.write_table(table, "ticks.parquet")   # timestamps stored as [ms]

Owns: the columnar schema and its vectorised reader. Must not import asyncio, websockets, rich or
typer.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from kitefan.codec import LAYOUTS, scan_frame
from kitefan.errors import CodecError
from kitefan.models import INDICES_SEGMENT, divisor_for
from kitefan.packets import PACKETS, PacketKind, Unit

if TYPE_CHECKING:
    from kitefan.events import TickBatch

_compiled: ModuleType | None
try:
    # By name: the compiled extension has no Python source, and the layer check would read
    # ``from kitefan import _records`` as importing the package's front door, which reaches this
    # module (through kitefan.events).
    _compiled = importlib.import_module("kitefan._records")
except ImportError:  # not built: numpy copies the words
    _compiled = None
if not hasattr(_compiled, "fields"):  # built before it had the copy
    _compiled = None

#: Whether the compiled copy (``kitefan._records.fields``) turns packets into columns; without
#: it numpy does, slower, with the same result.
COMPILED = _compiled is not None

__all__ = [
    "COMPILED",
    "TAG_COLUMNS",
    "TICK_COLUMNS",
    "TIMEZONE",
    "batches_to_arrow",
    "batches_to_numpy",
    "frames_to_arrow",
    "frames_to_numpy",
]

#: The zone of the Arrow timestamp columns.
TIMEZONE = "Asia/Kolkata"

Buffer = bytes | bytearray | memoryview
Array = npt.NDArray[Any]

# Column types: how a column is stored while the table is built (``store``), its numpy type, and
# what absent values become there.
_INT = "int"  # a u32 (u16 for orders) on the wire; numpy int64 with -1 where absent
_PRICE = "price"  # float64, NaN where absent
_TIME = "time"  # u32 Unix seconds on the wire; numpy M8[s] with NaT where absent


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    type: str
    # word index of the field in each packet kind that has it
    words: dict[int, int]


def _fields() -> tuple[_Field, ...]:
    """The columns read from the packets, from the packet-field table: the full packet's fields
    in its wire order (the fullest kind), each read from every kind the table puts it in. The
    token and the last price, which every packet has, are columns of their own; the index
    packets' own change is no column (``as_dict()`` has no such key)."""
    types = {Unit.PRICE: _PRICE, Unit.TIME: _TIME, Unit.COUNT: _INT}
    return tuple(
        _Field(
            f.name,
            types[f.unit],
            {
                kind: packet.offset_of(f.name) // 4  # an order count is its word's high half
                for kind, packet in PACKETS.items()
                if packet.has(f.name)
            },
        )
        for f in PACKETS[PacketKind.FULL].values
        if f.name not in ("instrument_token", "last_price")
    )


_FIELDS = _fields()
_ORDERS = frozenset(f.name for f in PACKETS[PacketKind.FULL].values if f.code == "H")

#: The tag columns, in table order; each appears only when given.
TAG_COLUMNS = ("key", "connection", "received_at", "received_wall")

#: The tick columns, in table order.
TICK_COLUMNS: tuple[str, ...] = (
    "tradable",
    "mode",
    "kind",
    "instrument_token",
    "last_price",
    *(name for f in _FIELDS for name in ((f.name, "change") if f.name == "close" else (f.name,))),
)

_KINDS = tuple(sorted(LAYOUTS))
_MODES = ("ltp", "quote", "full")
_MODE_CODE = {8: 0, 28: 1, 44: 1, 32: 2, 184: 2}
_HAS_CLOSE = frozenset((28, 32, 44, 184))
_DIVISOR_BY_SEGMENT = np.array([divisor_for(segment) for segment in range(256)], dtype=np.float64)


# Finding the packets --------------------------------------------------------------------------

#: Packets per transposing copy: a block of them stays in the CPU's cache while it is copied.
_BLOCK = 512


@dataclass(slots=True)
class _Group:
    """Where the packets of one length are, and the rows their ticks take in the table.

    ``runs`` are the uniform frames of that length: (frame, count, first row). ``starts`` and
    ``rows`` are the packets of that length in mixed frames, gathered from their joined buffer:
    the offset of each one's length prefix there, and its row.
    """

    runs: list[tuple[Buffer, int, int]]
    starts: Array | None = None
    rows: Array | None = None

    @property
    def count(self) -> int:
        return sum(run[1] for run in self.runs) + (0 if self.starts is None else len(self.starts))


def _frame_layout(data: Buffer, offsets: list[int]) -> tuple[int, int] | None:
    """``(count, length)`` of a frame whose packets all have one length (``(0, 0)`` for a
    heartbeat or an empty frame); or None for a mixed frame, after appending the offset of each
    of its packets' length prefixes to ``offsets``.

    Raises:
        CodecError: the frame is malformed, exactly as :func:`kitefan.codec.decode_packets`.
    """
    size = len(data)
    if size < 2:
        return 0, 0
    count = data[0] << 8 | data[1]
    if count == 0 or size < 4:
        if size != 2 or count:
            scan_frame(data)  # raises
        return 0, 0
    length = data[2] << 8 | data[3]
    step = length + 2
    # As scan_frame does: the length fields of a uniform frame sit every step bytes.
    if (
        size == 2 + count * step
        and data[2::step] == bytes((length >> 8,)) * count
        and data[3::step] == bytes((length & 0xFF,)) * count
    ):
        return count, length
    # A mixed frame: each packet's offset depends on the lengths before it. Only the 2-byte
    # length fields are read here; numpy reads the packets.
    append = offsets.append
    offset = 2
    try:
        for _ in range(count):
            append(offset)
            offset += 2 + (data[offset] << 8 | data[offset + 1])
    except IndexError:
        offset = -1
    if offset != size:
        scan_frame(data)  # raises, saying exactly where and what
        raise CodecError(offset, "malformed frame")  # pragma: no cover - scan_frame raised
    return None


def _exclusive_cumsum(values: Array) -> Array:
    out = np.cumsum(values)
    out -= values
    return out


def _locate(frames: Sequence[Buffer]) -> tuple[dict[int, _Group], bytes, list[int]]:
    """The packets of each known length, the joined buffer of the mixed frames, and each frame's
    tick count."""
    ticks = [0] * len(frames)
    uniform: list[tuple[int, int, int]] = []  # (frame index, count, length)
    mixed: list[int] = []  # frame indices
    packets: list[int] = []  # packets of each mixed frame
    offsets: list[int] = []  # every packet of the mixed frames, frame-local
    for index, frame in enumerate(frames):
        before = len(offsets)
        layout = _frame_layout(frame, offsets)
        if layout is None:
            mixed.append(index)
            packets.append(len(offsets) - before)
        elif layout[0] and layout[1] in LAYOUTS:
            uniform.append((index, *layout))
            ticks[index] = layout[0]
    joined = b""
    if mixed:
        views = [memoryview(frames[i])[2:] for i in mixed]
        sizes = np.fromiter(map(len, views), dtype=np.int64, count=len(views))
        joined = b"".join(views)
        per_frame = np.asarray(packets, dtype=np.int64)
        # frame-local offsets -> offsets in the joined buffer (which has no 2-byte counts)
        off = np.asarray(offsets, dtype=np.int64)
        off += np.repeat(_exclusive_cumsum(sizes) - 2, per_frame)
        data = np.frombuffer(joined, dtype=np.uint8)
        lengths = data[off].astype(np.int64) << 8 | data[off + 1]
        known = np.isin(lengths, _KINDS)
        frame_of = np.repeat(np.arange(len(mixed)), per_frame)[known]
        known_per_frame = np.bincount(frame_of, minlength=len(mixed))
        for index, n in zip(mixed, known_per_frame.tolist(), strict=True):
            ticks[index] = n
    first_rows = _exclusive_cumsum(np.asarray(ticks, dtype=np.int64))
    groups: dict[int, _Group] = {}
    for index, count, length in uniform:
        group = groups.get(length)
        if group is None:
            group = groups[length] = _Group([])
        group.runs.append((frames[index], count, int(first_rows[index])))
    if mixed:
        off, lengths = off[known], lengths[known]
        within = np.arange(len(off), dtype=np.int64) - np.repeat(
            _exclusive_cumsum(known_per_frame), known_per_frame
        )
        rows = first_rows[np.asarray(mixed, dtype=np.int64)][frame_of] + within
        for length in np.unique(lengths).tolist():
            chosen = lengths == length
            group = groups.get(length)
            if group is None:
                group = groups[length] = _Group([])
            group.starts = off[chosen]
            group.rows = rows[chosen]
    return groups, joined, ticks


def _expand(firsts: list[int], counts: list[int], step: int) -> Array:
    """``first + i * step`` for i in range(count), for every (first, count), concatenated."""
    starts = np.asarray(firsts, dtype=np.int64)
    sizes = np.asarray(counts, dtype=np.int64)
    flat = np.arange(int(sizes.sum()), dtype=np.int64) * step
    return np.repeat(starts - _exclusive_cumsum(sizes) * step, sizes) + flat


@dataclass(slots=True)
class _Words:
    """The packets of one length, a row per word (u32), or, where the compiled copy made them,
    the prices already divided (float64) and the order counts already cut (u16) in rows of
    their own, their word rows left unwritten."""

    words: Array
    prices: Array | None = None
    orders: Array | None = None


def _numpy_copy_words(
    words: Array, column: int, source: Any, offset: int, count: int, length: int
) -> None:
    """Copy ``count`` packets of ``length`` bytes, each after its 2-byte length prefix, the
    first at ``offset`` of ``source``, into ``words[:, column:]`` as native u32 words: a strided
    big-endian view, copied in cache-sized blocks."""
    view = np.ndarray(
        shape=(count, length // 4),
        dtype=">u4",
        buffer=source,
        offset=offset,
        strides=(length + 2, 4),
    )
    for first in range(0, count, _BLOCK):
        last = min(first + _BLOCK, count)
        np.copyto(words[:, column + first : column + last], view[first:last].T)


def _words(group: _Group, length: int, joined: bytes) -> _Words:
    """The packets of one length, shape (words per packet, packets): runs first, in frame
    order, then the gathered packets."""
    total = group.count
    out = _Words(np.empty((length // 4, total), dtype=np.uint32))
    copy: Any
    if _compiled is None:

        def copy(source: Any, offset: int, count: int) -> None:
            _numpy_copy_words(out.words, column, source, offset, count, length)

    else:
        fields = _KIND_FIELDS[length]
        out.prices = np.empty((len(fields.prices[0]), total), dtype=np.float64)
        out.orders = np.empty((len(fields.orders[0]), total), dtype=np.uint16)
        plan, fields_of = _PLANS[length], _compiled.fields
        words, prices, orders = out.words, out.prices, out.orders

        def copy(source: Any, offset: int, count: int) -> None:
            fields_of(
                words,
                prices,
                orders,
                total,
                column,
                source,
                offset,
                count,
                length + 2,
                plan,
                _DIVISOR_BY_SEGMENT,
            )

    column = 0
    for frame, count, _ in group.runs:
        copy(frame, 4, count)
        column += count
    if group.starts is not None:
        # A view of every byte of the joined buffer as the start of a packet record (stride 1),
        # indexed by the real starts: one contiguous copy of the records.
        step = length + 2
        window = np.ndarray(
            shape=(len(joined) - step + 1,),
            dtype=np.dtype((np.void, step)),
            buffer=joined,
            strides=(1,),
        )
        records = window[group.starts]
        copy(records, 2, len(records))
    return out


# Building the columns -------------------------------------------------------------------------


@dataclass(slots=True)
class _Column:
    """One column while the table is built: wire-typed values, and where the field is absent."""

    type: str
    values: Array
    absent: Array | None


@dataclass(frozen=True, slots=True)
class _KindFields:
    """The fields one packet kind has, by how they are read: names and word indexes."""

    prices: tuple[tuple[str, ...], Array]
    orders: tuple[tuple[str, ...], Array]
    plain: tuple[tuple[str, int], ...]  # integers and timestamps, as they are on the wire


def _kind_fields(length: int) -> _KindFields:
    fields = [f for f in _FIELDS if length in f.words]
    prices = [f for f in fields if f.type == _PRICE]
    orders = [f for f in fields if f.name in _ORDERS]
    return _KindFields(
        (tuple(f.name for f in prices), np.array([f.words[length] for f in prices], np.intp)),
        (tuple(f.name for f in orders), np.array([f.words[length] for f in orders], np.intp)),
        tuple((f.name, f.words[length]) for f in fields if f not in prices and f not in orders),
    )


_KIND_FIELDS = {length: _kind_fields(length) for length in LAYOUTS}


def _plan(length: int) -> bytes:
    """Where the compiled copy puts each word of a packet kind: 0 its row of words, ``p > 0``
    row ``p - 1`` of the prices, ``p < 0`` row ``-p - 1`` of the order counts (signed bytes)."""
    code = [0] * (length // 4)
    fields = _KIND_FIELDS[length]
    for row, word in enumerate(fields.prices[1].tolist()):
        code[word] = row + 1
    for row, word in enumerate(fields.orders[1].tolist()):
        code[word] = -(row + 1)
    return bytes(c & 0xFF for c in code)


_PLANS = {length: _plan(length) for length in LAYOUTS}
_LITTLE_ENDIAN = sys.byteorder == "little"


def _group_columns(length: int, words: _Words) -> dict[str, Array]:
    """The columns one packet kind has, from its words (ints as wire u32, prices divided)."""
    w = words.words
    token = w[0]
    segment = token & 0xFF
    divisor: Any = _DIVISOR_BY_SEGMENT[segment]
    if (divisor == divisor[0]).all():
        divisor = divisor[0]  # one segment (the usual frame): divide by a scalar, same result
    last_price = w[1] / divisor
    out: dict[str, Array] = {
        "tradable": segment != INDICES_SEGMENT,
        "mode": np.full(len(token), _MODE_CODE[length], dtype=np.int8),
        "kind": np.full(len(token), length, dtype=np.uint8),
        "instrument_token": token,
        "last_price": last_price,
    }
    fields = _KIND_FIELDS[length]
    names, indexes = fields.prices
    if names:
        prices = words.prices
        if prices is None:
            # one block of rows, one per field, each divided straight from its row of words
            prices = np.empty((len(names), len(token)), dtype=np.float64)
            for row, word in zip(prices, indexes.tolist(), strict=True):
                np.divide(w[word], divisor, out=row)
        out.update(zip(names, prices, strict=True))
    names, indexes = fields.orders
    if names:
        orders = words.orders
        if orders is None and _LITTLE_ENDIAN:  # the high half of each native word
            orders = w.view(np.uint16)[indexes, 1::2]
        elif orders is None:  # pragma: no cover - no big-endian machine runs the tests
            orders = (w[indexes] >> 16).astype(np.uint16)
        out.update(zip(names, orders, strict=True))
    for name, word in fields.plain:
        out[name] = w[word]
    if length in _HAS_CLOSE:
        close = out["close"]
        change = np.zeros(len(close), dtype=np.float64)
        np.divide((last_price - close) * 100, close, out=change, where=close != 0)
        out["change"] = change
    return out


_STORE = {_INT: np.uint32, _PRICE: np.float64, _TIME: np.uint32}
_TYPES: dict[str, str] = {f.name: f.type for f in _FIELDS} | {"change": _PRICE}
_ALWAYS = {
    "tradable": np.bool_,
    "mode": np.int8,
    "kind": np.uint8,
    "instrument_token": np.uint32,
    "last_price": np.float64,
}


def _columns(frames: Sequence[Buffer]) -> tuple[dict[str, _Column], list[int]]:
    """Every tick column of the frames, and each frame's tick count."""
    groups, joined, ticks = _locate(frames)
    total = sum(ticks)
    parts: list[tuple[Array | None, dict[str, Array]]] = []
    for length in _KINDS:
        group = groups.get(length)
        if group is None:
            continue
        rows: Array | None = None
        if group.starts is not None or group.count != total:
            run_rows = _expand([r[2] for r in group.runs], [r[1] for r in group.runs], 1)
            rows = run_rows if group.rows is None else np.concatenate((run_rows, group.rows))
        parts.append((rows, _group_columns(length, _words(group, length, joined))))
    out: dict[str, _Column] = {}
    # Fields present in the same packet kinds share one mask (so Arrow builds one bitmap each).
    masks: dict[tuple[int, ...], Array | None] = {}
    for name in TICK_COLUMNS:
        kind = _TYPES.get(name, "")
        having = [(rows, cols[name]) for rows, cols in parts if name in cols]
        if len(having) == 1 and having[0][0] is None:
            out[name] = _Column(kind, having[0][1], None)
            continue
        store = np.uint16 if name in _ORDERS else _ALWAYS.get(name) or _STORE[kind]
        values: Array = np.full(total, np.nan if kind == _PRICE else 0, dtype=store)
        for rows, column in having:
            values[slice(None) if rows is None else rows] = column
        signature = tuple(i for i, (_, cols) in enumerate(parts) if name in cols)
        if signature not in masks:
            absent: Array | None = None
            if sum(len(v) for _, v in having) != total:
                absent = np.ones(total, dtype=np.bool_)
                for rows, _ in having:
                    absent[slice(None) if rows is None else rows] = False
            masks[signature] = absent
        out[name] = _Column(kind, values, masks[signature])
    return out, ticks


@dataclass(frozen=True, slots=True)
class _Tags:
    """Per-frame tags, each a sequence with one value per frame, or None when not given."""

    key: Sequence[str] | None
    connection: Sequence[int] | None
    received_at: Sequence[float] | None
    received_wall: Sequence[float] | None


def _per_frame(value: Any, frames: int, name: str) -> Sequence[Any] | None:
    if value is None:
        return None
    if isinstance(value, str | int | float):
        return [value] * frames
    values = list(value)
    if len(values) != frames:
        raise ValueError(f"{name} has {len(values)} values for {frames} frames; give one per frame")
    return values


def _normalise(
    frames: Buffer | Sequence[Buffer],
    key: str | Sequence[str] | None,
    connection: int | Sequence[int] | None,
    received_at: float | Sequence[float] | None,
    received_wall: float | Sequence[float] | None,
) -> tuple[Sequence[Buffer], _Tags]:
    if isinstance(frames, bytes | bytearray | memoryview):
        frames = [frames]
    n = len(frames)
    return frames, _Tags(
        _per_frame(key, n, "key"),
        _per_frame(connection, n, "connection"),
        _per_frame(received_at, n, "received_at"),
        _per_frame(received_wall, n, "received_wall"),
    )


def _wall_us(received_wall: Sequence[float]) -> Array:
    return np.round(np.asarray(received_wall, dtype=np.float64) * 1e6).astype(np.int64)


# numpy ----------------------------------------------------------------------------------------


def _numpy(frames: Sequence[Buffer], tags: _Tags) -> dict[str, Array]:
    columns, ticks = _columns(frames)
    counts = np.asarray(ticks, dtype=np.int64)
    out: dict[str, Array] = {}
    if tags.key is not None:
        out["key"] = np.repeat(np.asarray(tags.key, dtype=np.str_), counts)
    if tags.connection is not None:
        out["connection"] = np.repeat(np.asarray(tags.connection, dtype=np.uint8), counts)
    if tags.received_at is not None:
        out["received_at"] = np.repeat(np.asarray(tags.received_at, dtype=np.float64), counts)
    if tags.received_wall is not None:
        out["received_wall"] = np.repeat(_wall_us(tags.received_wall), counts).view("M8[us]")
    modes = np.asarray(_MODES, dtype=np.str_)
    for name, column in columns.items():
        values = column.values
        if name == "mode":
            out[name] = modes[values]
        elif column.type == _INT:
            ints = values.astype(np.int64)
            if column.absent is not None:
                ints[column.absent] = -1
            out[name] = ints
        elif column.type == _TIME:
            times = values.astype(np.int64).view("M8[s]")
            if column.absent is not None:
                times[column.absent] = np.datetime64("NaT")
            out[name] = times
        else:
            out[name] = values
    return out


def frames_to_numpy(
    frames: Buffer | Sequence[Buffer],
    *,
    key: str | Sequence[str] | None = None,
    connection: int | Sequence[int] | None = None,
    received_at: float | Sequence[float] | None = None,
    received_wall: float | Sequence[float] | None = None,
) -> dict[str, Array]:
    """The ticks of one frame or many as numpy columns (the schema in the module docstring).

    Args:
        frames: a binary WebSocket message, or a sequence of them; heartbeats and empty frames
            give no rows.
        key, connection, received_at, received_wall: tag columns, each either one value for
            every frame or a sequence of one per frame; a column appears only when given.
            ``received_wall`` is Unix seconds and becomes ``datetime64[us]``.

    Returns:
        Column name to a 1-D array, every array as long as there are ticks, in column order.

    Raises:
        CodecError: a frame is malformed (exactly as :func:`kitefan.codec.decode_packets`).
        ValueError: a tag sequence's length is not the number of frames.
    """
    return _numpy(*_normalise(frames, key, connection, received_at, received_wall))


def batches_to_numpy(batches: Iterable[TickBatch]) -> dict[str, Array]:
    """The ticks of many :class:`~kitefan.events.TickBatch` as one set of numpy columns, tagged
    with each batch's ``key``, ``connection``, ``received_at`` and ``received_wall``."""
    frames, tags = _batch_tags(batches)
    return _numpy(frames, tags)


def _batch_tags(batches: Iterable[TickBatch]) -> tuple[list[bytes], _Tags]:
    batches = list(batches)
    return [b.frame for b in batches], _Tags(
        [b.key for b in batches],
        [b.connection for b in batches],
        [b.received_at for b in batches],
        [b.received_wall for b in batches],
    )


# Arrow ----------------------------------------------------------------------------------------


def _arrow(frames: Sequence[Buffer], tags: _Tags) -> Any:
    try:
        import pyarrow as pa
    except ImportError as exc:  # pragma: no cover - the parquet extra is installed for tests
        raise ImportError(
            "to_arrow needs pyarrow: pip install 'kitefan[parquet]'",
        ) from exc
    columns, ticks = _columns(frames)
    counts = np.asarray(ticks, dtype=np.int64)
    names: list[str] = []
    arrays: list[Any] = []
    if tags.key is not None:
        keys = list(dict.fromkeys(tags.key))
        index = {k: i for i, k in enumerate(keys)}
        codes = np.repeat(np.asarray([index[k] for k in tags.key], dtype=np.int32), counts)
        names.append("key")
        arrays.append(pa.DictionaryArray.from_arrays(codes, pa.array(keys, pa.string())))
    if tags.connection is not None:
        names.append("connection")
        conns = np.repeat(np.asarray(tags.connection, dtype=np.uint8), counts)
        arrays.append(pa.array(conns, pa.uint8()))
    if tags.received_at is not None:
        names.append("received_at")
        at = np.repeat(np.asarray(tags.received_at, dtype=np.float64), counts)
        arrays.append(pa.array(at, pa.float64()))
    if tags.received_wall is not None:
        names.append("received_wall")
        wall = np.repeat(_wall_us(tags.received_wall), counts)
        arrays.append(pa.array(wall, pa.int64()).cast(pa.timestamp("us", tz=TIMEZONE)))
    modes = pa.array(_MODES, pa.string())
    bitmaps: dict[int, tuple[Any, int]] = {}  # id(absent) -> (validity bitmap, null count)
    for name, column in columns.items():
        values, absent = column.values, column.absent
        names.append(name)
        if name == "mode":
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(values, pa.int8()), modes))
            continue
        if column.type == _TIME:
            values = values.astype(np.int64)
            type_ = pa.timestamp("s", tz=TIMEZONE)
        else:
            type_ = pa.from_numpy_dtype(values.dtype)
        if absent is None:
            arrays.append(pa.array(values, type_))
            continue
        validity = bitmaps.get(id(absent))
        if validity is None:
            bits = pa.py_buffer(np.packbits(~absent, bitorder="little"))
            validity = bitmaps[id(absent)] = (bits, int(np.count_nonzero(absent)))
        arrays.append(
            pa.Array.from_buffers(
                type_, len(values), [validity[0], pa.py_buffer(values)], null_count=validity[1]
            )
        )
    return pa.Table.from_arrays(arrays, names=names)


def frames_to_arrow(
    frames: Buffer | Sequence[Buffer],
    *,
    key: str | Sequence[str] | None = None,
    connection: int | Sequence[int] | None = None,
    received_at: float | Sequence[float] | None = None,
    received_wall: float | Sequence[float] | None = None,
) -> Any:
    """The ticks of one frame or many as a ``pyarrow.Table`` (the schema in the module
    docstring): nulls where a packet kind lacks a field, timestamps in ``Asia/Kolkata``.

    Takes the arguments of :func:`frames_to_numpy`. ``polars.from_arrow(table)`` and
    ``table.to_pandas()`` take it on from there.

    Raises:
        CodecError: a frame is malformed.
        ValueError: a tag sequence's length is not the number of frames.
        ImportError: pyarrow is not installed (``pip install 'kitefan[parquet]'``).
    """
    return _arrow(*_normalise(frames, key, connection, received_at, received_wall))


def batches_to_arrow(batches: Iterable[TickBatch]) -> Any:
    """The ticks of many :class:`~kitefan.events.TickBatch` as one ``pyarrow.Table``, tagged
    with each batch's ``key``, ``connection``, ``received_at`` and ``received_wall``: what a
    recorder or an export writes (``pyarrow.parquet.write_table(table, path)``)."""
    frames, tags = _batch_tags(batches)
    return _arrow(frames, tags)
