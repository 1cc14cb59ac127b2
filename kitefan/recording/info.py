"""What a recording holds, in one pass: span, frames, ticks, symbols, keys and connections, gaps
(reconnects), bytes on disk per tick, and what the reading skipped or where it stopped.

Owns: :func:`summarise` and :class:`RecordingInfo`. Must not import asyncio, rich or typer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kitefan.codec import frame_tokens, scan_frame
from kitefan.errors import CodecError
from kitefan.events import StatusEvent
from kitefan.models import IST
from kitefan.recording.format import KIND_ERROR, KIND_FRAME, KIND_ORDER, KIND_STATUS, record_event
from kitefan.recording.reader import ReadReport, Recording

__all__ = ["GapInfo", "RecordingInfo", "summarise"]


@dataclass(frozen=True, slots=True)
class GapInfo:
    """A reconnect the recording holds: when the connection was lost and back, and how many
    symbols it carried."""

    key: str
    connection: int | None
    start: float
    end: float
    symbols: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "connection": self.connection,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "seconds": round(self.end - self.start, 3),
            "symbols": self.symbols,
            "reason": self.reason,
        }


@dataclass
class RecordingInfo:
    """A recording's figures (:func:`summarise`)."""

    path: str
    files: list[str]
    bytes_on_disk: int
    first_ns: int | None = None
    last_ns: int | None = None
    frames: int = 0
    heartbeats: int = 0
    ticks: int = 0
    frame_bytes: int = 0
    bad_frames: int = 0
    statuses: int = 0
    orders: int = 0
    errors: int = 0
    tokens: set[int] = field(default_factory=set)
    named: int = 0
    # key -> connection -> [frames, ticks]
    keys: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    gaps: list[GapInfo] = field(default_factory=list)
    report: ReadReport = field(default_factory=ReadReport)

    @property
    def span_s(self) -> float:
        if self.first_ns is None or self.last_ns is None:
            return 0.0
        return (self.last_ns - self.first_ns) / 1e9

    @property
    def bytes_per_tick(self) -> float | None:
        """Bytes on disk per tick, everything included (headers, events, names)."""
        return self.bytes_on_disk / self.ticks if self.ticks else None

    @property
    def frame_bytes_per_tick(self) -> float | None:
        """The frames' own bytes per tick: what Kite sent."""
        return self.frame_bytes / self.ticks if self.ticks else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``kitefan record info --format json``)."""
        report = self.report
        return {
            "path": self.path,
            "files": self.files,
            "bytes": self.bytes_on_disk,
            "start": None if self.first_ns is None else _iso(self.first_ns / 1e9),
            "end": None if self.last_ns is None else _iso(self.last_ns / 1e9),
            "seconds": round(self.span_s, 3),
            "frames": self.frames,
            "heartbeats": self.heartbeats,
            "ticks": self.ticks,
            "symbols": len(self.tokens),
            "named_symbols": self.named,
            "keys": {
                key: {
                    str(conn): {"frames": counts[0], "ticks": counts[1]}
                    for conn, counts in sorted(conns.items())
                }
                for key, conns in sorted(self.keys.items())
            },
            "events": {"status": self.statuses, "order": self.orders, "error": self.errors},
            "reconnects": len(self.gaps),
            "gaps": [gap.as_dict() for gap in self.gaps],
            "bytes_per_tick": _round(self.bytes_per_tick),
            "frame_bytes_per_tick": _round(self.frame_bytes_per_tick),
            "compression": _round(
                self.frame_bytes / self.bytes_on_disk if self.bytes_on_disk else None
            ),
            "chunks": report.chunks,
            "skipped_chunks": report.skipped_chunks,
            "skipped_bytes": report.skipped_bytes,
            "bad_records": report.bad_records + self.bad_frames,
            "skipped": report.as_dict()["skipped"],
            "truncated": report.as_dict()["truncated"],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=IST).isoformat(timespec="milliseconds")


def summarise(recording: Recording) -> RecordingInfo:
    """Read the whole recording once and count what it holds.

    Raises:
        RecordingError: a file is not a kitefan recording, or cannot be read.
    """
    info = RecordingInfo(str(recording.path), [str(p) for p in recording.files], recording.size)
    tokens = info.tokens
    keys = info.keys
    first = last = None
    for record in recording.records():
        kind = record.kind
        ns = record.ns
        if kind == KIND_FRAME:
            if first is None or ns < first:
                first = ns
            if last is None or ns > last:
                last = ns
            body = record.body
            try:
                ticks = scan_frame(body)[0]
            except CodecError:
                info.bad_frames += 1
                continue
            info.frames += 1
            info.frame_bytes += len(body)
            if ticks == 0:
                info.heartbeats += 1
            else:
                info.ticks += ticks
                tokens.update(frame_tokens(body))
            counts = keys.setdefault(record.key, {}).setdefault(record.connection or 0, [0, 0])
            counts[0] += 1
            counts[1] += ticks
        elif kind == KIND_STATUS:
            info.statuses += 1
            try:
                event = record_event(record)
            except ValueError:
                continue
            if isinstance(event, StatusEvent) and event.gap is not None:
                gap = event.gap
                info.gaps.append(
                    GapInfo(
                        event.key,
                        event.connection,
                        gap.start,
                        gap.end,
                        len(gap.tokens),
                        gap.reason,
                    )
                )
        elif kind == KIND_ORDER:
            info.orders += 1
        elif kind == KIND_ERROR:
            info.errors += 1
    info.first_ns, info.last_ns = first, last
    info.named = sum(1 for t in tokens if t in recording.symbols)
    info.report = recording.report
    return info
