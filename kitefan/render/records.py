"""Events as flat records: one JSON object per line, or CSV rows with a header.

JSON lines carry a ``"type"``:

* ``tick``: ``key``, ``connection``, ``symbol``, then the official Python client's tick fields
  (``Tick.as_dict()``), timestamps as ISO 8601 with their offset;
* ``order``: ``key``, ``connection``, ``data`` (the order postback, once per key);
* ``status``: ``key``, ``connection``, ``state``, ``message``, and for a reconnect ``gap`` with
  ``start``/``end`` (ISO 8601), ``seconds`` and ``symbols``;
* ``error``: ``key``, ``connection``, ``message`` (a server error text, or a skipped frame).

Server text is kept exact: the JSON escapes every control character (``\u001b``), C1 and DEL
and the bidirectional marks included, so a line shown on a terminal cannot drive it, and a JSON
reader gets the text back as the server sent it.

Tick records are written straight from each batch's frame bytes by a small compiled encoder
(``kitefan/_records.c``), without decoding the batch into ticks: no Python object per tick or per
field. It writes exactly what the reference writes (:func:`reference_json_lines`,
:func:`reference_csv_rows`: ``Tick.as_dict()``, a dict per tick, the standard library's ``json``
and ``csv``), byte for byte, and the reference writes everything when the encoder is not built.
:func:`encode_jsonl` and :func:`encode_csv` give the same text as UTF-8 bytes.

Pure: events in, strings (or bytes) out.

Owns: the record shapes of ``--format jsonl`` and ``--format csv``. Must not import asyncio,
websockets or typer.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from types import ModuleType
from typing import Any

from kitefan.events import ErrorEvent, Event, Gap, OrderEvent, StatusEvent, TickBatch
from kitefan.models import IST
from kitefan.render.text import json_escaped

_compiled: ModuleType | None
try:
    from kitefan import _records as _compiled
except ImportError:  # not built: the reference writes every record
    _compiled = None

__all__ = [
    "COMPILED",
    "CSV_COLUMNS",
    "Names",
    "csv_header",
    "csv_rows",
    "encode_csv",
    "encode_jsonl",
    "json_lines",
    "record_pieces",
    "reference_csv_rows",
    "reference_json_lines",
    "status_record",
]

#: Whether the compiled encoder (``kitefan._records``, built from ``kitefan/_records.c`` when
#: the package is installed) writes the tick records; without it the reference does, slower.
COMPILED = _compiled is not None

#: A token's symbol: a callable, or a dict (token -> name) where a token it lacks is named by
#: its number, as :meth:`kitefan.manager.FeedManager.name_of` names it. The compiled encoder
#: looks a dict up without a Python call per tick.
Names = Callable[[int], str] | dict[int, str]


def _named(names: Names) -> Callable[[int], str]:
    """``names`` as a callable (what the reference writers call once per tick)."""
    if not isinstance(names, dict):
        return names

    def name_of(token: int) -> str:
        name = names.get(token)
        return str(token) if name is None else name

    return name_of


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _iso_epoch(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=IST).isoformat(timespec="milliseconds")


def _gap(gap: Gap) -> dict[str, Any]:
    return {
        "start": _iso_epoch(gap.start),
        "end": _iso_epoch(gap.end),
        "seconds": round(gap.seconds, 3),
        "symbols": len(gap.tokens),
        "reason": gap.reason,
    }


def status_record(event: StatusEvent | OrderEvent | ErrorEvent) -> dict[str, Any]:
    """The JSON record of a non-tick event."""
    if isinstance(event, OrderEvent):
        return {
            "type": "order",
            "key": event.key,
            "connection": event.connection,
            "at": _iso_epoch(event.at),
            "data": dict(event.update.data),
        }
    if isinstance(event, ErrorEvent):
        return {
            "type": "error",
            "key": event.key,
            "connection": event.connection,
            "at": _iso_epoch(event.at),
            "message": event.text,
        }
    record: dict[str, Any] = {
        "type": "status",
        "key": event.key,
        "connection": event.connection,
        "at": _iso_epoch(event.at),
        "state": str(event.state),
        "message": event.message,
    }
    if event.gap is not None:
        record["gap"] = _gap(event.gap)
    return record


#: The CSV columns: one row per tick; fields a packet does not carry are empty.
CSV_COLUMNS = (
    "received_at",
    "key",
    "connection",
    "symbol",
    "instrument_token",
    "mode",
    "tradable",
    "last_price",
    "last_traded_quantity",
    "average_traded_price",
    "volume_traded",
    "total_buy_quantity",
    "total_sell_quantity",
    "open",
    "high",
    "low",
    "close",
    "change",
    "last_trade_time",
    "oi",
    "oi_day_high",
    "oi_day_low",
    "exchange_timestamp",
    "bid_price",
    "bid_quantity",
    "ask_price",
    "ask_quantity",
)


def csv_header() -> str:
    """The CSV header line."""
    return ",".join(CSV_COLUMNS) + "\r\n"


def encode_jsonl(events: Iterable[Event], name_of: Names) -> bytes:
    """:func:`json_lines` as UTF-8 bytes, for a writer that writes bytes.

    Tick batches are written from their frame's bytes by the compiled encoder when it is built
    (:data:`COMPILED`), without decoding the batch; otherwise, and for any batch the encoder
    leaves to it, by :func:`reference_json_lines`. The text is the same either way.

    Raises:
        UnicodeEncodeError: a key or a symbol has no UTF-8 form (a lone surrogate).
    """
    if _compiled is None:
        return reference_json_lines(events, _named(name_of)).encode()
    jsonl = _compiled.jsonl
    out: list[bytes] = []
    append = out.append
    for event in events:
        if isinstance(event, TickBatch):
            piece = jsonl(event.frame, _json_head(event.key, event.connection), name_of)
            if piece is None:
                piece = reference_json_lines([event], _named(name_of)).encode()
            append(piece)
        else:
            append(_status_line(event).encode() + b"\n")
    return b"".join(out)


def json_lines(events: Iterable[Event], name_of: Callable[[int], str]) -> str:
    """One JSON object per line (each line ends with a newline) for every tick and event.

    ``name_of`` is called once per tick, with its instrument token.
    """
    if _compiled is None:
        return reference_json_lines(events, name_of)
    events = events if isinstance(events, Sequence) else list(events)
    try:
        return encode_jsonl(events, name_of).decode()
    except UnicodeEncodeError:
        return reference_json_lines(events, name_of)


def encode_csv(events: Iterable[Event], name_of: Names) -> bytes:
    """:func:`csv_rows` as UTF-8 bytes (see :func:`encode_jsonl`).

    Raises:
        UnicodeEncodeError: a key or a symbol has no UTF-8 form (a lone surrogate).
    """
    if _compiled is None:
        return reference_csv_rows(events, _named(name_of)).encode()
    rows = _compiled.csv
    out: list[bytes] = []
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for event in events:
        if not isinstance(event, TickBatch):
            continue
        # received_at, key and connection as the csv module writes them, then the comma that
        # precedes the symbol (the empty last field).
        writer.writerow((_iso_epoch(event.received_wall), event.key, event.connection, None))
        head = buffer.getvalue()[:-2].encode()
        buffer.seek(0)
        buffer.truncate()
        piece = rows(event.frame, head, name_of)
        if piece is None:
            piece = reference_csv_rows([event], _named(name_of)).encode()
        out.append(piece)
    return b"".join(out)


def record_pieces(
    events: Iterable[Event], name_of: Names, *, csv: bool = False
) -> list[tuple[bytes, int]]:
    """Each event's JSON lines (or CSV rows) as UTF-8 bytes, with the ticks it holds: what a
    writer needs to count exactly which ticks reached its reader."""
    encode = encode_csv if csv else encode_jsonl
    return [
        (encode((event,), name_of), event.count if isinstance(event, TickBatch) else 0)
        for event in events
    ]


def csv_rows(events: Iterable[Event], name_of: Callable[[int], str]) -> str:
    """CSV rows for the ticks among the events (other events are not part of the CSV).

    ``name_of`` is called once per tick, with its instrument token.
    """
    if _compiled is None:
        return reference_csv_rows(events, name_of)
    events = events if isinstance(events, Sequence) else list(events)
    try:
        return encode_csv(events, name_of).decode()
    except UnicodeEncodeError:
        return reference_csv_rows(events, name_of)


def _status_line(event: StatusEvent | OrderEvent | ErrorEvent) -> str:
    """The JSON line of a non-tick event, without its newline (both paths write it from here)."""
    return json_escaped(_dumps(status_record(event)))


@functools.lru_cache(maxsize=1024)
def _json_head(key: str, connection: int) -> bytes:
    """A tick line up to its symbol: ``{"type":"tick","key":…,"connection":…,"symbol":``."""
    return (
        f'{{"type":"tick","key":{_dumps(key)},"connection":{_dumps(connection)},"symbol":'.encode()
    )


# The reference: the records built from decoded ticks, dicts and the standard library. It is
# what the compiled encoder must match byte for byte (tests/test_records.py), and what writes
# the records when the encoder is not built.


def reference_json_lines(events: Iterable[Event], name_of: Callable[[int], str]) -> str:
    """:func:`json_lines`, from decoded ticks, dicts and the standard library JSON encoder."""
    out: list[str] = []
    append = out.append
    for event in events:
        if isinstance(event, TickBatch):
            head = {"type": "tick", "key": event.key, "connection": event.connection}
            for tick in event.ticks:
                record = dict(head)
                record["symbol"] = name_of(tick.values[0])
                for field, value in tick.as_dict().items():
                    record[field] = value.isoformat() if isinstance(value, datetime) else value
                append(_dumps(record))
        else:
            append(_status_line(event))
    if not out:
        return ""
    return "\n".join(out) + "\n"


def reference_csv_rows(events: Iterable[Event], name_of: Callable[[int], str]) -> str:
    """:func:`csv_rows`, from decoded ticks and the standard library csv writer."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for event in events:
        if not isinstance(event, TickBatch):
            continue
        received = _iso_epoch(event.received_wall)
        for tick in event.ticks:
            ohlc = tick.ohlc
            depth = tick.depth
            bid = depth.buy[0] if depth is not None else None
            ask = depth.sell[0] if depth is not None else None
            writer.writerow(
                (
                    received,
                    event.key,
                    event.connection,
                    name_of(tick.values[0]),
                    tick.instrument_token,
                    tick.mode.value,
                    tick.tradable,
                    tick.last_price,
                    tick.last_traded_quantity,
                    tick.average_traded_price,
                    tick.volume_traded,
                    tick.total_buy_quantity,
                    tick.total_sell_quantity,
                    None if ohlc is None else ohlc.open,
                    None if ohlc is None else ohlc.high,
                    None if ohlc is None else ohlc.low,
                    None if ohlc is None else ohlc.close,
                    tick.change,
                    _iso(tick.last_trade_time),
                    tick.oi,
                    tick.oi_day_high,
                    tick.oi_day_low,
                    _iso(tick.exchange_timestamp),
                    None if bid is None else bid.price,
                    None if bid is None else bid.quantity,
                    None if ask is None else ask.price,
                    None if ask is None else ask.quantity,
                )
            )
    return buffer.getvalue()
