"""Candles out: the records of ``kitefan candles`` (JSON lines, CSV, an Arrow table for Parquet)
and its live dashboard.

The record, one per bar, in this order (:data:`CANDLE_COLUMNS`)::

    {"type": "candle", "symbol": "NSE:INFY", "instrument_token": 408065, "interval": "1m",
     "start": "2026-12-01T09:15:00+05:30", "end": "2026-12-01T09:16:00+05:30",
     "open": 1520.5, "high": 1522.0, "low": 1519.85, "close": 1521.1, "volume": 12500,
     "oi": null, "ticks": 118, "time_source": "exchange"}

CSV has the same columns (a null is an empty field); the Arrow table too, ``start`` and ``end``
as ``timestamp[s, Asia/Kolkata]``.

The dashboard: per symbol, the bar forming now and the last closed ones, the symbols chosen as
``kitefan stream``'s dashboard chooses them (:class:`~kitefan.render.dashboard.TickBoard`:
``--sort``, ``--watch``), as many as fit ``width`` x ``height``, with how many are left out.

Pure: candles in, text (or a table) out. Owns: ``CANDLE_COLUMNS``, ``candle_record``,
``encode_candles_jsonl``, ``candles_csv_header``, ``encode_candles_csv``, ``candles_to_arrow``,
``CandleBoard``, ``candles_dashboard``. Must not import asyncio, websockets or typer.
"""

from __future__ import annotations

import csv
import io
import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import RenderableType
from rich.text import Text

from kitefan.candles import Candle, CandleBuilder, format_interval
from kitefan.errors import KitefanError
from kitefan.models import IST, divisor_for
from kitefan.render.dashboard import TickBoard, plural
from kitefan.render.text import printable

__all__ = [
    "CANDLE_COLUMNS",
    "CandleBoard",
    "candle_record",
    "candles_csv_header",
    "candles_dashboard",
    "candles_to_arrow",
    "encode_candles_csv",
    "encode_candles_jsonl",
]

CANDLE_COLUMNS = (
    "type",
    "symbol",
    "instrument_token",
    "interval",
    "start",
    "end",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "oi",
    "ticks",
    "time_source",
)

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_ISO: dict[int, str] = {}


def _iso(epoch: int) -> str:
    # Bars of one pass share their start and end: format each second once.
    text = _ISO.get(epoch)
    if text is None:
        if len(_ISO) >= 4096:
            _ISO.clear()
        text = _ISO[epoch] = datetime.fromtimestamp(epoch, tz=IST).isoformat()
    return text


def candle_record(candle: Candle, name_of: Callable[[int], str]) -> dict[str, Any]:
    """The record of one bar (its keys are :data:`CANDLE_COLUMNS`)."""
    return {
        "type": "candle",
        "symbol": name_of(candle.instrument_token),
        "instrument_token": candle.instrument_token,
        "interval": format_interval(candle.interval),
        "start": _iso(candle.start),
        "end": _iso(candle.end),
        "open": candle.open,
        "high": candle.high,
        "low": candle.low,
        "close": candle.close,
        "volume": candle.volume,
        "oi": candle.oi,
        "ticks": candle.ticks,
        "time_source": candle.time_source,
    }


def encode_candles_jsonl(candles: Iterable[Candle], name_of: Callable[[int], str]) -> bytes:
    """One JSON object per bar, each on its own line, as UTF-8."""
    return "".join(_dumps(candle_record(c, name_of)) + "\n" for c in candles).encode()


def candles_csv_header() -> str:
    """The CSV header line."""
    return ",".join(CANDLE_COLUMNS) + "\r\n"


def encode_candles_csv(candles: Iterable[Candle], name_of: Callable[[int], str]) -> bytes:
    """One CSV row per bar (the standard library's dialect; a null is an empty field)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for candle in candles:
        writer.writerow(
            ["" if value is None else value for value in candle_record(candle, name_of).values()]
        )
    return buffer.getvalue().encode()


def candles_to_arrow(candles: Sequence[Candle], name_of: Callable[[int], str]) -> Any:
    """The bars as one ``pyarrow.Table`` with :data:`CANDLE_COLUMNS`.

    Raises:
        KitefanError: pyarrow is not installed (it comes with the ``parquet`` extra).
    """
    pa = require_pyarrow()
    stamp = pa.timestamp("s", tz="Asia/Kolkata")
    columns = {
        "type": pa.array(["candle"] * len(candles), pa.string()),
        "symbol": pa.array([name_of(c.instrument_token) for c in candles], pa.string()),
        "instrument_token": pa.array([c.instrument_token for c in candles], pa.uint32()),
        "interval": pa.array([format_interval(c.interval) for c in candles], pa.string()),
        "start": pa.array([c.start for c in candles], pa.int64()).cast(stamp),
        "end": pa.array([c.end for c in candles], pa.int64()).cast(stamp),
        "open": pa.array([c.open for c in candles], pa.float64()),
        "high": pa.array([c.high for c in candles], pa.float64()),
        "low": pa.array([c.low for c in candles], pa.float64()),
        "close": pa.array([c.close for c in candles], pa.float64()),
        "volume": pa.array([c.volume for c in candles], pa.int64()),
        "oi": pa.array([c.oi for c in candles], pa.int64()),
        "ticks": pa.array([c.ticks for c in candles], pa.int64()),
        "time_source": pa.array([c.time_source for c in candles], pa.string()),
    }
    return pa.table(columns)


def require_pyarrow() -> Any:
    """pyarrow, or a one-line error naming the extra that brings it."""
    try:
        import pyarrow
    except ImportError:
        raise KitefanError(
            "--format parquet needs pyarrow: pip install 'kitefan[parquet]'"
        ) from None
    return pyarrow


# The dashboard -----------------------------------------------------------------------------


class CandleBoard:
    """The last closed bars of every symbol (at most ``keep`` each), for the dashboard."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._closed: dict[int, deque[Candle]] = {}

    def add(self, candles: Iterable[Candle]) -> None:
        for candle in candles:
            kept = self._closed.get(candle.instrument_token)
            if kept is None:
                kept = self._closed[candle.instrument_token] = deque(maxlen=self.keep)
            kept.append(candle)

    def closed(self, token: int, limit: int) -> list[Candle]:
        """The last ``limit`` closed bars of ``token``, latest first."""
        kept = self._closed.get(token)
        if not kept or limit <= 0:
            return []
        return list(kept)[-limit:][::-1]


_COLUMNS = (
    ("symbol", False),
    ("bar", False),
    ("open", True),
    ("high", True),
    ("low", True),
    ("close", True),
    ("volume", True),
    ("ticks", True),
)
#: Which columns to leave out first when the width is short: ticks, volume, open.
_DROP_ORDER = (7, 6, 2)
_GAP = "  "


def _price(value: float, token: int) -> str:
    return f"{value:,.2f}" if divisor_for(token) == 100.0 else f"{value:,.4f}"


def _bar_time(candle: Candle) -> str:
    moment = datetime.fromtimestamp(candle.start, tz=IST)
    return moment.strftime("%Y-%m-%d") if candle.interval >= 86_400 else moment.strftime("%H:%M:%S")


def _cells(candle: Candle, symbol: str, *, forming: bool) -> list[str]:
    token = candle.instrument_token
    return [
        symbol,
        _bar_time(candle) + ("*" if forming else " "),
        _price(candle.open, token),
        _price(candle.high, token),
        _price(candle.low, token),
        _price(candle.close, token),
        "-" if candle.volume is None else f"{candle.volume:,}",
        f"{candle.ticks:,}",
    ]


def candles_dashboard(
    ticks: TickBoard,
    board: CandleBoard,
    builder: CandleBuilder,
    name_of: Callable[[int], str],
    *,
    now: float,
    title: str,
    uptime_s: float,
    width: int,
    height: int,
) -> RenderableType:
    """The dashboard as one renderable that fits ``width`` x ``height``.

    The header (interval, grace, counts), then per symbol its forming bar (its time marked ``*``)
    and under it its last closed bars, latest first (one on a small terminal, up to four on a
    tall one), the symbols in the order of ``ticks`` (``--sort``, ``--watch``), as many as fit,
    and how many are left out. Values are never cut: a narrow terminal drops columns (ticks,
    volume, open) instead.
    """
    interval = format_interval(builder.interval)
    header_parts = [
        f"{interval} bars, grace {builder.grace:g}s",
        f"{plural(len(ticks), 'symbol')}",
        f"{builder.ticks:,} ticks",
        f"{builder.closed:,} bars closed",
        f"{builder.late:,} late",
        f"up {uptime_s:,.0f}s",
    ]
    header = _wrapped(title, header_parts, width)
    footer = Text("* forming; bars in IST    Ctrl-C to stop", style="dim")
    keep = 1 if height < 30 else 2 if height < 40 else 4
    room = max(height - len(header) - 1 - 3, 1)  # the title line, the table header and rule
    rows: list[tuple[list[str], str]] = []
    shown = 0
    for token in ticks.chosen(room, now):
        symbol = printable(name_of(token))
        forming = builder.forming(token)
        group = [(_cells(forming, symbol, forming=True), "bold")] if forming is not None else []
        for candle in board.closed(token, keep):
            group.append((_cells(candle, "" if group else symbol, forming=False), ""))
        if len(rows) + len(group) > room:
            break
        rows += group
        shown += 1
    hidden = len(ticks) - shown
    label = f"bars by {ticks.sort.value}" + (", watched first" if ticks.watch else "")
    if hidden > 0:
        never = len(ticks) - ticks.ticked
        waiting = f", {never:,} yet to tick" if never else ""
        table_title = f"{label}: +{hidden:,} more{waiting} (--sort, --watch choose)"
    else:
        table_title = f"{label}: all {plural(len(ticks), 'symbol')}"
    widths = [len(name) for name, _ in _COLUMNS]
    for cells, _ in rows:
        for i, cell in enumerate(cells):
            widths[i] = max(widths[i], len(cell))
    keep_columns = list(range(len(_COLUMNS)))
    for index in _DROP_ORDER:
        if sum(widths[i] for i in keep_columns) + len(_GAP) * (len(keep_columns) - 1) <= width:
            break
        keep_columns.remove(index)
    lines = [*header, Text(table_title, style="bold")]
    head = Text(style="bold")
    for n, i in enumerate(keep_columns):
        name, right = _COLUMNS[i]
        head.append(
            (_GAP if n else "") + (name.rjust(widths[i]) if right else name.ljust(widths[i]))
        )
    lines.append(head)
    total = sum(widths[i] for i in keep_columns) + len(_GAP) * (len(keep_columns) - 1)
    lines.append(Text("─" * min(total, width), style="dim"))
    for cells, style in rows:
        line = Text(style=style)
        for n, i in enumerate(keep_columns):
            right = _COLUMNS[i][1]
            cell = cells[i]
            line.append(
                (_GAP if n else "") + (cell.rjust(widths[i]) if right else cell.ljust(widths[i]))
            )
        lines.append(line)
    if not rows:
        lines.append(Text("- (no tick yet)", style="dim"))
    lines = lines[: max(height - 1, 1)]
    lines.append(footer)
    for line in lines:
        line.rstrip()
        line.truncate(width, overflow="ellipsis")
    screen = Text("\n").join(lines)
    screen.no_wrap = True
    return screen


def _wrapped(first: str, parts: Sequence[str], width: int) -> list[Text]:
    """``first`` (bold) and the comma-separated ``parts``, wrapped between parts."""
    lines = [Text(first, style="bold")]
    for i, part in enumerate(parts):
        piece = part + ("," if i < len(parts) - 1 else "")
        line = lines[-1]
        glue = "  " if i == 0 else " "
        if line.cell_len + len(glue) + len(piece) <= width or not line.plain:
            line.append(glue + piece)
        else:
            lines.append(Text(piece))
    return lines
