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

Pure: events in, strings out.

Owns: the record shapes of ``--format jsonl`` and ``--format csv``. Must not import asyncio,
websockets or typer.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from kitefan.events import ErrorEvent, Event, Gap, OrderEvent, StatusEvent, TickBatch
from kitefan.models import IST
from kitefan.render.text import json_escaped

__all__ = ["CSV_COLUMNS", "csv_header", "csv_rows", "json_lines", "status_record"]

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


def json_lines(events: Iterable[Event], name_of: Callable[[int], str]) -> str:
    """One JSON object per line (each line ends with a newline) for every tick and event."""
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
            append(json_escaped(_dumps(status_record(event))))
    if not out:
        return ""
    return "\n".join(out) + "\n"


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


def csv_rows(events: Iterable[Event], name_of: Callable[[int], str]) -> str:
    """CSV rows for the ticks among the events (other events are not part of the CSV)."""
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
