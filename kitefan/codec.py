"""The Kite ticker wire codec: binary tick frames and JSON text messages, both directions.

Pure: no asyncio, no websockets, no I/O. Follows docs/protocol.md §2-§7.

Binary frames (server to client)::

    frame   = count:u16  { length:u16  packet[length] } * count        (big-endian)
    packet  = one of five layouts, told apart only by length:

    LTP           8   token last
    INDEX_QUOTE  28   token last high low open close index_change:i32
    INDEX_FULL   32   INDEX_QUOTE + exchange_timestamp
    QUOTE        44   token last ltq atp volume buy_qty sell_qty open high low close
    FULL        184   QUOTE + last_trade_time oi oi_day_high oi_day_low exchange_timestamp
                      + 10 x (quantity price orders:u16 pad:u16), 5 bids then 5 offers

The layouts are not written here: every field's offset, wire type and unit is a row of the table
in :mod:`kitefan.packets`, and :data:`LAYOUTS` is built from it at import.
A message of 0 or 1 byte is a heartbeat and holds no ticks; ``00 00`` is a frame of no packets.
Every 4-byte field is unsigned except the index packets' change at offset 24, which is signed.

Malformed input raises :class:`~kitefan.errors.CodecError` carrying the byte offset: a frame cut
anywhere, a packet running past the end, a packet count that does not match the bytes. A packet of
a length no layout has is skipped and counted (:func:`decode_packets` returns the count), never
fatal, as the official Python client skips it.

Text messages: the client's requests ``{"a": "subscribe"|"unsubscribe"|"mode", "v": ...}``
(:func:`subscribe_message` and friends build them; :func:`parse_request` reads them, as the server
and the simulator do), and the server's ``{"type": "order"|"error"|"message", "data": ...}``
(:func:`order_message`, :func:`error_message`, :func:`notice_message` build them;
:func:`decode_text` reads them).

Owns: the packet layouts' ``struct`` objects (from :mod:`kitefan.packets`), framing, text message
shapes. Must not import asyncio, websockets, rich,
typer, and never logs payloads.
"""

from __future__ import annotations

import functools
import importlib
import json
import struct
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType
from typing import Any

from kitefan.errors import CodecError
from kitefan.models import (
    Mode,
    OrderUpdate,
    ServerError,
    ServerMessage,
    ServerNotice,
    Tick,
    UnknownText,
)
from kitefan.packets import PACKETS, Unit

_compiled: ModuleType | None
try:
    # By name: the extension has no Python source, and the layer check would read ``from
    # kitefan import _records`` as importing the package's front door.
    _compiled = importlib.import_module("kitefan._records")
except ImportError:  # no compiler where it was installed: scan_frame counts in Python
    _compiled = None

__all__ = [
    "ERROR_BAD_TOKENS",
    "ERROR_TOO_MANY",
    "HEARTBEAT",
    "LAYOUTS",
    "MAX_TEXT_DEPTH",
    "Action",
    "Request",
    "RequestError",
    "decode_frame",
    "decode_packets",
    "decode_text",
    "encode_frame",
    "encode_packet",
    "error_message",
    "frame_of_packets",
    "frame_tokens",
    "is_heartbeat",
    "mode_message",
    "notice_message",
    "order_message",
    "packet_at",
    "packet_runs",
    "parse_request",
    "run_columns",
    "run_rows",
    "scan_frame",
    "subscribe_message",
    "unsubscribe_message",
]

#: The struct layout of each packet kind, keyed by packet length (kitefan.packets' formats).
LAYOUTS: Mapping[int, struct.Struct] = {
    length: struct.Struct(packet.format) for length, packet in PACKETS.items()
}
_UNPACK = {length: layout.unpack_from for length, layout in LAYOUTS.items()}
_PACK = {length: layout.pack for length, layout in LAYOUTS.items()}
_FIELDS = {length: len(packet.values) for length, packet in PACKETS.items()}
_U16 = struct.Struct(">H")


def _leading_words(length: int) -> int:
    """How many leading fields of a layout, before any depth, are unsigned 4-byte words at
    offsets 0, 4, 8, ... (the fields run_columns can read)."""
    words = 0
    for field in PACKETS[length].head:
        if field.code != "I" or field.offset != 4 * words or field.unit is Unit.PAD:
            break
        words += 1
    return words


#: How many leading fields of each layout are unsigned 4-byte words (see run_columns).
_UINT32_FIELDS = {length: _leading_words(length) for length in PACKETS}
_HOST_BYTE = (3, 2, 1, 0) if sys.byteorder == "little" else (0, 1, 2, 3)

#: What the server sends on an idle connection, about once a second.
HEARTBEAT = b"\x00"

#: The server's error texts kitefan and its simulator know by heart (docs/protocol.md §2, §8).
ERROR_TOO_MANY = "Can't subscribe to more than 3000 instruments."
ERROR_BAD_TOKENS = "Error parsing instrument tokens"


# Binary frames ------------------------------------------------------------------------------


def is_heartbeat(data: bytes | bytearray | memoryview) -> bool:
    """Whether a binary message is a heartbeat (a message of fewer than 2 bytes)."""
    return len(data) < 2


def decode_packets(data: bytes | bytearray | memoryview) -> tuple[list[Tick], int]:
    """Decode one binary WebSocket message into its ticks, and count the packets skipped.

    Args:
        data: the whole binary message.

    Returns:
        The ticks in frame order, and how many packets had a length no layout has (skipped).

    Raises:
        CodecError: the frame is cut short, a packet runs past its end, or bytes remain after the
            last packet the count announced. ``offset`` says where.
    """
    size = len(data)
    if size < 2:
        return [], 0
    # The hot path of the product. Well-formed frames take this loop, which leaves the bounds
    # checks to indexing and ``unpack_from`` (every layout's size is its packet length) and
    # builds each Tick by setting its two slots, as Tick.__init__ does, without the call. Any
    # anomaly sends the frame to _decode_checked, which finds and reports it exactly.
    count = data[0] << 8 | data[1]
    ticks: list[Tick] = []
    append = ticks.append
    unpacker = _UNPACK.get
    new = object.__new__
    skipped = 0
    offset = 2
    try:
        for _ in range(count):
            length = data[offset] << 8 | data[offset + 1]
            offset += 2
            unpack = unpacker(length)
            if unpack is None:
                if offset + length > size:
                    return _decode_checked(data)
                skipped += 1
            else:
                tick = new(Tick)
                tick.kind = length
                tick.values = unpack(data, offset)
                append(tick)
            offset += length
    except (IndexError, struct.error):
        return _decode_checked(data)
    if offset != size:
        return _decode_checked(data)
    return ticks, skipped


def _decode_checked(data: bytes | bytearray | memoryview) -> tuple[list[Tick], int]:
    """:func:`decode_packets` with every bound checked in order, raising at the first fault."""
    size = len(data)
    count = data[0] << 8 | data[1]
    ticks: list[Tick] = []
    skipped = 0
    offset = 2
    for index in range(count):
        if offset + 2 > size:
            raise CodecError(
                offset,
                f"frame ends before the length of packet {index + 1} of {count}",
            )
        length = data[offset] << 8 | data[offset + 1]
        offset += 2
        end = offset + length
        if end > size:
            raise CodecError(
                offset,
                f"packet {index + 1} of {count} is {length} bytes but only {size - offset} remain",
            )
        unpack = _UNPACK.get(length)
        if unpack is None:
            skipped += 1
        else:
            ticks.append(Tick(length, unpack(data, offset)))
        offset = end
    if offset != size:
        raise CodecError(
            offset,
            f"{size - offset} bytes follow the {count} packets the frame announced",
        )
    return ticks, skipped


def scan_frame(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """Check a frame's structure and count its packets, without decoding them.

    Returns:
        How many ticks :func:`decode_packets` would give, and how many packets it would skip
        (a length no layout has). A heartbeat gives ``(0, 0)``.

    Raises:
        CodecError: exactly when :func:`decode_packets` would, with the same offset and reason.
    """
    if _compiled is not None:
        # One pass in C (a frame of equities and indices is thousands of packets in runs of
        # tens); a frame it refuses goes on to the Python path, which says what is wrong.
        counted: tuple[int, int] | None = _compiled.scan(data)
        if counted is not None:
            return counted
    size = len(data)
    if size < 2:
        return 0, 0
    count = data[0] << 8 | data[1]
    if count and size >= 4:
        # Most frames hold packets of one length: their length fields sit every length + 2
        # bytes, which two strided slices compare at C speed.
        length = data[2] << 8 | data[3]
        step = length + 2
        if (
            size == 2 + count * step
            and data[2::step] == bytes((length >> 8,)) * count
            and data[3::step] == bytes((length & 0xFF,)) * count
        ):
            return (count, 0) if length in _FIELDS else (0, count)
    ticks = 0
    offset = 2
    for _ in range(count):
        if offset + 2 > size:
            offset = -1  # cut inside the length field
            break
        length = data[offset] << 8 | data[offset + 1]
        offset += 2 + length
        if length in _FIELDS:
            ticks += 1
    if offset != size:
        _decode_checked(data)  # raises, saying exactly where and what
        raise CodecError(offset, "malformed frame")  # pragma: no cover - _decode_checked raised
    return ticks, count - ticks


def frame_tokens(data: bytes | bytearray | memoryview) -> list[int]:
    """The instrument token of every decodable packet of a well-formed frame, in frame order.

    Cheaper than decoding: only each packet's first four bytes are read. Call it on frames
    :func:`scan_frame` accepted.
    """
    size = len(data)
    if size < 2:
        return []
    count = data[0] << 8 | data[1]
    out: list[int] = []
    offset = 2
    for _ in range(count):
        if offset + 2 > size:
            break
        length = data[offset] << 8 | data[offset + 1]
        offset += 2
        if length in _FIELDS and offset + 4 <= size:
            out.append(int.from_bytes(data[offset : offset + 4], "big"))
        offset += length
    return out


def packet_runs(data: bytes | bytearray) -> list[tuple[int, int, int]]:
    """A frame's packets as runs of one length, found at C speed: ``(offset, length, count)``.

    ``offset`` is where the first packet of the run starts (its first byte, after its length
    field); the run's packets follow every ``length + 2`` bytes. A frame of one mode is one run;
    an index among equities splits it. For frames :func:`scan_frame` accepted; a heartbeat or an
    empty frame has none.
    """
    size = len(data)
    if size < 4:
        return []
    left = data[0] << 8 | data[1]
    runs: list[tuple[int, int, int]] = []
    offset = 2
    while left > 0 and offset + 2 <= size:
        high, low = data[offset], data[offset + 1]
        step = (high << 8 | low) + 2
        # The length fields of a run sit every `step` bytes: count how many in a row match.
        end = offset + step * left
        highs = data[offset:end:step]
        lows = data[offset + 1 : end : step]
        same = min(
            len(highs) - len(highs.lstrip(bytes((high,)))),
            len(lows) - len(lows.lstrip(bytes((low,)))),
        )
        runs.append((offset + 2, step - 2, same))
        offset += step * same
        left -= same
    return runs


def run_columns(
    data: bytes | bytearray, run: tuple[int, int, int], fields: Sequence[int]
) -> list[list[int]]:
    """Some fields of every packet of one run of :func:`packet_runs`, without decoding them.

    For the consumers that must keep up with every tick but read only a few fields of each (the
    dashboard's latest tick per symbol): one list per field, in packet order, read at C speed
    with a ``struct`` that skips the other bytes (short runs: an index among equities splits a
    frame into runs of about twenty) or with strided slices (long runs: a frame of one mode).
    ``fields`` are indexes into the layout of the run's length, in packet order; each must be
    one of its leading unsigned 4-byte fields (any field of LTP and QUOTE, 0-5 of the index
    packets, 0-15 of FULL).

    Raises:
        ValueError: a field is not a leading unsigned 4-byte field of that layout.
    """
    offset, length, count = run
    record = _records(length, tuple(fields))  # checks the fields, once per length and fields
    if count == 1:
        return [[value] for value in record.unpack_from(data, offset - 2)]
    step = length + 2
    end = offset + step * count
    if count < _STRIDED_FROM:
        rows = record.iter_unpack(memoryview(data)[offset - 2 : end - 2])
        return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in fields]
    columns: list[list[int]] = []
    for field in fields:
        start = offset + 4 * field
        gathered = bytearray(4 * count)
        for byte in range(4):
            # Big-endian on the wire; the host's order for the cast below.
            gathered[_HOST_BYTE[byte] :: 4] = data[start + byte : end : step]
        columns.append(memoryview(gathered).cast("I").tolist())
    return columns


#: From how many packets a run is read with strided slices rather than a record struct.
_STRIDED_FROM = 64


def run_rows(
    data: bytes | bytearray, run: tuple[int, int, int], fields: Sequence[int]
) -> Iterator[tuple[int, ...]]:
    """:func:`run_columns`' row-wise twin: the same fields, one tuple per packet, in packet order,
    unpacked at C speed as they are iterated (for a consumer that loops over the packets anyway,
    this is cheaper than gathering columns first).

    Raises:
        ValueError: a field is not a leading unsigned 4-byte field of that layout.
    """
    offset, length, count = run
    record = _records(length, tuple(fields))
    return record.iter_unpack(memoryview(data)[offset - 2 : offset - 2 + (length + 2) * count])


@functools.cache
def _records(length: int, fields: tuple[int, ...]) -> struct.Struct:
    """A struct over one length field and packet that reads ``fields`` (in that order) only."""
    words = _UINT32_FIELDS.get(length, 0)
    for field in fields:
        if not 0 <= field < words:
            raise ValueError(
                f"field {field} is not an unsigned 4-byte field of {length}-byte packets"
            )
    if list(fields) != sorted(set(fields)):
        raise ValueError(f"fields must be distinct and in packet order, not {fields}")
    layout, position = ">2x", 0
    for field in fields:
        layout += f"{4 * field - position}xI"
        position = 4 * field + 4
    return struct.Struct(layout + f"{length - position}x")


def packet_at(data: bytes | bytearray | memoryview, offset: int) -> Tick:
    """The tick of the packet starting at ``offset`` (as :func:`packet_runs` gives them).

    Raises:
        CodecError: no layout has the length of the packet there.
    """
    length = data[offset - 2] << 8 | data[offset - 1]
    unpack = _UNPACK.get(length)
    if unpack is None:
        raise CodecError(offset, f"no packet layout is {length} bytes long")
    return Tick(length, unpack(data, offset))


def decode_frame(data: bytes | bytearray | memoryview) -> list[Tick]:
    """Decode one binary WebSocket message into its ticks.

    Heartbeats (fewer than 2 bytes) and empty frames give no ticks. Packets of unknown length are
    skipped; use :func:`decode_packets` to count them.

    Raises:
        CodecError: the frame is malformed; ``offset`` says where.
    """
    return decode_packets(data)[0]


def encode_packet(tick: Tick) -> bytes:
    """The packet bytes of one tick (without the 2-byte length that precedes it in a frame)."""
    pack = _PACK.get(tick.kind)
    if pack is None:
        raise CodecError(-1, f"no packet layout is {tick.kind} bytes long")
    if len(tick.values) != _FIELDS[tick.kind]:
        raise CodecError(
            -1,
            f"a {tick.kind}-byte packet has {_FIELDS[tick.kind]} fields, "
            f"the tick has {len(tick.values)}",
        )
    try:
        return pack(*tick.values)
    except struct.error as exc:
        raise CodecError(-1, f"a field does not fit its wire type: {exc}") from None


def frame_of_packets(packets: Sequence[bytes]) -> bytes:
    """Frame already-encoded packets: the count, then each packet preceded by its length."""
    if len(packets) > 0xFFFF:
        raise CodecError(-1, f"a frame holds at most 65535 packets, not {len(packets)}")
    parts = [_U16.pack(len(packets))]
    for packet in packets:
        parts.append(_U16.pack(len(packet)))
        parts.append(packet)
    return b"".join(parts)


def encode_frame(ticks: Iterable[Tick]) -> bytes:
    """Encode ticks as one binary WebSocket message; the exact inverse of :func:`decode_frame`."""
    return frame_of_packets([encode_packet(tick) for tick in ticks])


# Client requests ---------------------------------------------------------------------------


class Action(StrEnum):
    """The actions a client can request; the values are the wire strings."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    MODE = "mode"


def _compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def subscribe_message(tokens: Iterable[int]) -> str:
    """``{"a":"subscribe","v":[...]}``."""
    return _compact({"a": "subscribe", "v": list(tokens)})


def unsubscribe_message(tokens: Iterable[int]) -> str:
    """``{"a":"unsubscribe","v":[...]}``."""
    return _compact({"a": "unsubscribe", "v": list(tokens)})


def mode_message(mode: Mode, tokens: Iterable[int]) -> str:
    """``{"a":"mode","v":["full",[...]]}``."""
    return _compact({"a": "mode", "v": [mode.value, list(tokens)]})


@dataclass(frozen=True, slots=True)
class Request:
    """A client request as the server reads it."""

    action: Action
    tokens: tuple[int, ...]
    mode: Mode | None = None


class RequestError(CodecError):
    """A client request the server cannot act on. ``reason`` is the text the server answers with."""

    def __init__(self, reason: str) -> None:
        super().__init__(-1, reason)


def _tokens(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise RequestError(ERROR_BAD_TOKENS)
    for token in value:
        # bool is an int in Python but not in JSON; strings are refused by the real server.
        if type(token) is not int or not 0 <= token <= 0xFFFFFFFF:
            raise RequestError(ERROR_BAD_TOKENS)
    return tuple(value)


def parse_request(text: str | bytes) -> Request:
    """Read a client request, tolerant of whitespace and key order as the server must be.

    Raises:
        RequestError: with the text the server answers: ``Error parsing instrument tokens`` for
            tokens that are not unsigned 32-bit JSON integers; ``Invalid message: ...`` for
            malformed JSON, an unknown action or an unknown mode (the real server's wording for
            these is undocumented; docs/protocol.md §12).
    """
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("Invalid message: not valid JSON") from None
    if not isinstance(message, dict) or "a" not in message or "v" not in message:
        raise RequestError('Invalid message: expected an object with "a" and "v"')
    action_text = message["a"]
    try:
        action = Action(action_text)
    except ValueError:
        raise RequestError(f"Invalid message: unknown action {action_text!r}") from None
    value = message["v"]
    if action is not Action.MODE:
        return Request(action, _tokens(value))
    if not isinstance(value, list) or len(value) != 2:
        raise RequestError('Invalid message: mode takes ["<mode>", [tokens]]')
    try:
        mode = Mode(value[0])
    except ValueError:
        raise RequestError(f"Invalid message: unknown mode {value[0]!r}") from None
    return Request(action, _tokens(value[1]), mode)


# Server texts --------------------------------------------------------------------------------


def order_message(data: Mapping[str, Any]) -> str:
    """``{"type":"order","data":{...}}``: an order postback pushed on the socket."""
    return _compact({"type": "order", "data": dict(data)})


def error_message(text: str) -> str:
    """``{"type":"error","data":"..."}``."""
    return _compact({"type": "error", "data": text})


def notice_message(text: str) -> str:
    """``{"type":"message","data":"..."}``: a broadcast message from the broker."""
    return _compact({"type": "message", "data": text})


def decode_text(text: str | bytes) -> ServerMessage:
    """Read a server text message.

    Whatever the text, this returns a message or raises :class:`CodecError`, nothing else: JSON
    nested deeper than :data:`MAX_TEXT_DEPTH` is refused (before it can exhaust the stack of
    whatever handles it next), and an order must name its order and status by a string or a
    number, for it is delivered once per key by those.

    Raises:
        CodecError: the text is not a JSON object with a string ``type``, nests too deeply, or is
            an ``order`` without an object as its data, or whose ``order_id`` or ``status`` is
            neither a string nor a number.
    """
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise CodecError(-1, "text message is not valid JSON") from None
    except RecursionError:
        raise CodecError(-1, _TOO_DEEP) from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise CodecError(-1, 'text message is not an object with a string "type"')
    if _depth_exceeds(message, MAX_TEXT_DEPTH):
        raise CodecError(-1, _TOO_DEEP)
    kind = message["type"]
    data = message.get("data")
    if kind == "order":
        if not isinstance(data, dict):
            raise CodecError(-1, "order message without an object as its data")
        for name in ("order_id", "status"):
            value = data.get(name)
            if isinstance(value, dict | list | bool):
                raise CodecError(
                    -1,
                    f"order message whose {name} is {_json_kind(value)}, not a string or a number",
                )
        return OrderUpdate(data)
    if kind == "error":
        return ServerError(data if isinstance(data, str) else json.dumps(data))
    if kind == "message":
        return ServerNotice(data if isinstance(data, str) else json.dumps(data))
    return UnknownText(kind, data)


#: How deeply a server text may nest (Kite's deepest, an order's ``meta``, is 3 levels).
MAX_TEXT_DEPTH = 32

_TOO_DEEP = f"text message nests deeper than {MAX_TEXT_DEPTH} levels"


def _depth_exceeds(value: object, limit: int) -> bool:
    """Whether a parsed JSON value nests deeper than ``limit`` (without recursing)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        item, depth = pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, dict | list):
                push((child, depth + 1))
    return False


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else "a boolean"
