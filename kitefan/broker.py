"""The Redis stream entry: what ``kitefan stream --publish`` writes and ``kitefan tail`` reads.

One entry per frame (``XADD``), with these fields, every value a string of bytes:

* ``key``: the config id of the key the frame came in on;
* ``connection``: its connection, ``0`` to ``2``;
* ``node``: the publishing process, ``HOSTNAME:PID``;
* ``received_at``: when the frame was read off the socket, Unix seconds with six decimals;
* ``frame``: the frame's bytes exactly as Kite sent them (the binary layout of the Kite ticker:
  a 2-byte packet count, then each packet as a 2-byte length and its bytes); or, with
  ``format = "json"``, ``ticks`` instead: a JSON array of the records ``--format jsonl`` writes.

Order, status and error events are entries with ``event`` (the JSON record ``--format jsonl``
writes for it), ``key``, ``connection`` (empty for an event of the whole feed), ``node``, and
``at`` (the event's Unix time, exactly; a gap's symbols are in ``tokens``, comma-separated). A
status whose ``state`` this version does not know (a newer publisher's) decodes with that word
kept (:meth:`kitefan.events.Status.read`).

Beside the stream, the hash ``<stream>:symbols`` maps each streamed instrument token to its
``EXCHANGE:TRADINGSYMBOL`` name, so a reader prints the names the publisher prints.

Pure: events in, fields out, and back; no I/O.

Owns: the entry's fields, encoding and decoding them. Must not import asyncio, redis, rich or
typer.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kitefan.errors import BrokerError, CodecError
from kitefan.events import ErrorEvent, Event, Gap, OrderEvent, Status, StatusEvent, TickBatch
from kitefan.models import OrderUpdate
from kitefan.render.records import json_lines, status_record

__all__ = [
    "Entry",
    "JsonTicks",
    "decode_entry",
    "event_fields",
    "frame_fields",
    "json_fields",
    "node_name",
    "symbols_key",
]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode

Fields = dict[bytes, bytes]


def node_name() -> str:
    """This process, as entries name it: ``HOSTNAME:PID``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def symbols_key(stream: str) -> str:
    """The hash of token -> name beside a stream."""
    return f"{stream}:symbols"


def frame_fields(batch: TickBatch, node: bytes) -> Fields:
    """The entry of one frame, its bytes exactly as received."""
    return {
        b"key": batch.key.encode(),
        b"connection": b"%d" % batch.connection,
        b"node": node,
        b"received_at": b"%.6f" % batch.received_wall,
        b"frame": batch.frame,
    }


def json_fields(batch: TickBatch, node: bytes, name_of: Callable[[int], str]) -> Fields:
    """The entry of one frame as JSON ticks (``format = "json"``)."""
    lines = json_lines([batch], name_of)
    ticks = "[" + ",".join(lines.splitlines()) + "]"
    return {
        b"key": batch.key.encode(),
        b"connection": b"%d" % batch.connection,
        b"node": node,
        b"received_at": b"%.6f" % batch.received_wall,
        b"ticks": ticks.encode(),
    }


def event_fields(event: StatusEvent | OrderEvent | ErrorEvent, node: bytes) -> Fields:
    """The entry of an order, status or error event."""
    fields = {
        b"event": _dumps(status_record(event)).encode(),
        b"key": event.key.encode(),
        b"connection": b"" if event.connection is None else b"%d" % event.connection,
        b"node": node,
        b"at": repr(event.at).encode(),
    }
    if isinstance(event, StatusEvent) and event.gap is not None:
        fields[b"tokens"] = ",".join(map(str, event.gap.tokens)).encode()
    return fields


@dataclass(frozen=True, slots=True)
class JsonTicks:
    """An entry of ``format = "json"``: the ticks of one frame as JSON records (text)."""

    key: str
    connection: int
    received_wall: float
    records: list[dict[str, Any]]

    @property
    def count(self) -> int:
        return len(self.records)


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry read back: its stream id, the publishing node, and what it holds.

    ``record`` is the event's JSON record exactly as published (``None`` for ticks).
    """

    id: bytes
    node: str
    item: Event | JsonTicks
    record: str | None = None


def decode_entry(entry_id: bytes, fields: Mapping[bytes, bytes], received_at: float) -> Entry:
    """An entry's fields back to a :class:`TickBatch`, an event, or :class:`JsonTicks`.

    Args:
        received_at: the ``perf_counter()`` time the entry was read (a batch's ``received_at``).

    Raises:
        BrokerError: the entry is not one kitefan wrote (a missing field, a malformed frame).
    """
    shown = entry_id.decode(errors="replace")
    try:
        key = fields[b"key"].decode()
        node = fields.get(b"node", b"").decode()
        frame = fields.get(b"frame")
        if frame is not None:
            batch = TickBatch(
                key,
                int(fields[b"connection"]),
                bytes(frame),
                received_at,
                float(fields[b"received_at"]),
            )
            return Entry(entry_id, node, batch)
        ticks = fields.get(b"ticks")
        if ticks is not None:
            records = json.loads(ticks)
            if not isinstance(records, list):
                raise ValueError("ticks is not a JSON array")
            item = JsonTicks(
                key, int(fields[b"connection"]), float(fields[b"received_at"]), records
            )
            return Entry(entry_id, node, item)
        text = fields[b"event"].decode()
        record = json.loads(text)
        connection = None if not fields.get(b"connection") else int(fields[b"connection"])
        at = float(fields[b"at"])
        return Entry(entry_id, node, _event(record, key, connection, at, fields), text)
    except CodecError as exc:
        raise BrokerError(f"stream entry {shown}: {exc}") from None
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        what = f"no {exc.args[0].decode()} field" if isinstance(exc, KeyError) else str(exc)
        raise BrokerError(
            f"stream entry {shown} is not a kitefan entry ({what}): is the stream one that "
            "`kitefan stream --publish` writes?"
        ) from None


def _event(
    record: Mapping[str, Any],
    key: str,
    connection: int | None,
    at: float,
    fields: Mapping[bytes, bytes],
) -> Event:
    kind = record["type"]
    if kind == "order":
        return OrderEvent(key, connection or 0, OrderUpdate(dict(record["data"])), at)
    if kind == "error":
        return ErrorEvent(key, connection or 0, str(record["message"]), at)
    if kind != "status":
        raise ValueError(f"unknown event type {kind!r}")
    gap = None
    if (shown := record.get("gap")) is not None:
        listed = fields.get(b"tokens", b"").decode()
        tokens = tuple(int(t) for t in listed.split(",") if t)
        start = datetime.fromisoformat(shown["start"]).timestamp()
        gap = Gap(start, start + float(shown["seconds"]), tokens, str(shown["reason"]))
    state = Status.read(str(record["state"]))  # a word this version does not know is kept
    return StatusEvent(key, connection, state, str(record["message"]), at, gap)
