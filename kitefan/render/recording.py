"""What ``kitefan record info`` prints: a recording's figures as lines of text, or one JSON
document.

Pure: a :class:`~kitefan.recording.info.RecordingInfo` in, text out.

Owns: the layout of ``record info``. Must not import asyncio or typer.
"""

from __future__ import annotations

import json
from datetime import datetime

from kitefan.models import IST
from kitefan.recording.info import RecordingInfo
from kitefan.recording.writer import RecordStats

__all__ = ["info_json", "info_lines", "recorded_line"]


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"  # pragma: no cover


def _when(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=IST)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m} min {s} s"
    if m:
        return f"{m} min {s} s"
    return f"{seconds:.1f} s"


def info_lines(info: RecordingInfo) -> list[str]:
    """The figures, one per line, labels in a column."""
    files = len(info.files)
    lines = [
        f"recording  {info.path} ({files} file{'s' if files != 1 else ''}, "
        f"{_size(info.bytes_on_disk)})"
    ]
    if info.first_ns is not None and info.last_ns is not None:
        start, end = _when(info.first_ns), _when(info.last_ns)
        end_text = (
            end.strftime("%H:%M:%S.%f")[:-3]
            if end.date() == start.date()
            else end.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        )
        lines.append(
            f"span       {start.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]} to {end_text} IST "
            f"({_duration(info.span_s)})"
        )
    else:
        lines.append("span       no frames")
    lines.append(f"frames     {info.frames:,} ({info.heartbeats:,} heartbeats)")
    lines.append(f"ticks      {info.ticks:,}")
    lines.append(f"symbols    {len(info.tokens):,} ({info.named:,} named)")
    keys = ", ".join(
        f"{key}: {len(conns)} connection{'s' if len(conns) != 1 else ''} "
        f"({sum(c[1] for c in conns.values()):,} ticks)"
        for key, conns in sorted(info.keys.items())
    )
    lines.append(f"keys       {keys or 'none'}")
    lines.append(
        f"events     {info.statuses:,} status, {info.orders:,} orders, {info.errors:,} errors"
    )
    lines.append(f"gaps       {len(info.gaps):,} reconnects")
    for gap in info.gaps:
        where = gap.key if gap.connection is None else f"{gap.key}/{gap.connection}"
        lost = datetime.fromtimestamp(gap.start, tz=IST).strftime("%H:%M:%S.%f")[:-3]
        back = datetime.fromtimestamp(gap.end, tz=IST).strftime("%H:%M:%S.%f")[:-3]
        lines.append(
            f"  {where}  {lost} to {back} IST  {gap.end - gap.start:.1f} s  "
            f"{gap.symbols:,} symbol{'s' if gap.symbols != 1 else ''}  {gap.reason}"
        )
    if info.ticks:
        per_tick = info.bytes_per_tick or 0.0
        raw = info.frame_bytes_per_tick or 0.0
        lines.append(
            f"on disk    {per_tick:,.2f} bytes per tick (the frames: {raw:,.2f} bytes per tick, "
            f"{raw / per_tick if per_tick else 0:,.1f}x larger)"
        )
    report = info.report
    lines.append(
        f"chunks     {report.chunks:,} whole, {report.skipped_chunks:,} skipped "
        f"({_size(report.skipped_bytes)} skipped in all)"
    )
    for path, skipped in report.skipped:
        lines.append(
            f"  skipped {_size(skipped.size)} at byte {skipped.offset:,} of {path}: "
            f"{skipped.reason}"
        )
    bad = report.bad_records + info.bad_frames
    if bad:
        lines.append(f"  {bad:,} records did not read")
    for stopped in report.truncated:
        lines.append(f"stopped    {stopped.describe()}")
    return lines


def info_json(info: RecordingInfo) -> str:
    """One JSON document."""
    return json.dumps(info.as_dict(), ensure_ascii=False, indent=2)


def recorded_line(stats: RecordStats | None) -> str:
    """The end of a stream's summary: what went to the recording."""
    if stats is None:
        return ""
    events = f", {stats.dropped_events:,} events" if stats.dropped_events else ""
    return (
        f"; recorded {stats.ticks:,} ticks to {stats.path} ({_size(stats.bytes_written)} in "
        f"{stats.chunks:,} chunks, {stats.dropped_ticks:,} ticks{events} dropped)"
    )
