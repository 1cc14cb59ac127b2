"""A recording as a table: Parquet (typed columns, from the columnar decode), or the CSV rows and
JSON lines ``kitefan stream`` writes, one row per tick; optionally only some symbols, and only
some hours of the day (IST).

Parquet's columns: ``received_at`` (``timestamp[ns, Asia/Kolkata]``, the frame's receive time
exactly as recorded), ``key`` and ``connection``, ``symbol`` (the name the recording holds, else
the token), then the tick columns of :mod:`kitefan.columnar` (``instrument_token`` as
``uint32``, prices as ``float64`` divided per segment, ``exchange_timestamp`` and
``last_trade_time`` as ``timestamp[s, Asia/Kolkata]``, the depth's levels as ``bid_price_1`` ..
``ask_orders_5``; nulls where a packet kind lacks a field). Written with pyarrow, a row group per
about 64k ticks, in a thread of its own so that reading and decoding the next row group overlaps
writing this one. The writer's options (:func:`writer_options`) are chosen for speed at a small
cost on disk: lz4 (LZ4_RAW) by default, zstd level 1 or snappy when asked; integers and
timestamps delta-encoded (``DELTA_BINARY_PACKED``: a quantity or an order count takes the bits
it needs, not 4 bytes, so the codec has less to do); prices byte-stream-split; dictionaries only
for ``key``, ``symbol`` and ``mode``; statistics (each row group's min and max) only on
``received_at``, ``connection``, ``instrument_token`` and ``exchange_timestamp``, the columns a
time-range read filters on (statistics on a dictionary column cost a pass over its distinct
values per row group, and every row group holds nearly every symbol). The symbol column's
dictionary is one for the whole file (every name seen so far), so a row group's is not rebuilt
from its tokens.

CSV and JSON lines are exactly what ``kitefan stream --format csv|jsonl`` wrote while it
recorded: the same encoder, from the same frames. JSON lines carry the status, order and error
events too, as the stream's do; CSV the ticks only.

Owns: :func:`export`, :func:`select_packets`, :class:`ExportResult`. Must not import asyncio, rich
or typer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from kitefan.codec import scan_frame
from kitefan.errors import CodecError, RecordingError
from kitefan.events import Event, TickBatch
from kitefan.recording.format import KIND_FRAME, KIND_SYMBOLS, symbols_of
from kitefan.recording.reader import Recording

__all__ = [
    "COMPRESSIONS",
    "ExportFormat",
    "ExportResult",
    "Window",
    "export",
    "format_of",
    "select_packets",
    "writer_options",
]

_IST_OFFSET_S = 19800
_DAY_S = 86400
#: Ticks per Parquet row group (and per columnar decode), about.
ROW_GROUP_TICKS = 64 * 1024
#: The Parquet codecs ``--compression`` takes, each with its level (None: the codec has none).
COMPRESSIONS: dict[str, int | None] = {"lz4": None, "zstd": 1, "snappy": None, "none": None}
#: The default codec: the fastest to write (the export's target is a million ticks a second).
COMPRESSION = "lz4"
#: The columns written with a dictionary (few distinct values); prices are byte-stream-split
#: (their bytes grouped by position, which the codec compresses well), integers and timestamps
#: delta-encoded.
DICTIONARY_COLUMNS = ("key", "symbol", "mode")
#: The columns with statistics (each row group's min and max): the ones a time-range read
#: filters on, all of them plain numbers.
STATISTICS_COLUMNS = ("received_at", "connection", "instrument_token", "exchange_timestamp")


def _level_of(compression: str) -> int | None:
    """The codec's level.

    Raises:
        ValueError: a codec that is not one of :data:`COMPRESSIONS`.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(
            f"compression must be one of {', '.join(COMPRESSIONS)}, not {compression!r}"
        )
    return COMPRESSIONS[compression]


def writer_options(schema: Any, compression: str = COMPRESSION) -> dict[str, Any]:
    """The keyword arguments of ``pyarrow.parquet.ParquetWriter`` for a table of ``schema``,
    written with ``compression`` (a key of :data:`COMPRESSIONS`).

    Raises:
        ValueError: a codec that is not one of :data:`COMPRESSIONS`.
    """
    import pyarrow as pa

    level = _level_of(compression)
    encodings = {}
    for f in schema:
        if pa.types.is_floating(f.type):
            encodings[f.name] = "BYTE_STREAM_SPLIT"
        elif pa.types.is_integer(f.type) or pa.types.is_timestamp(f.type):
            encodings[f.name] = "DELTA_BINARY_PACKED"
    options: dict[str, Any] = {
        "compression": compression,
        "use_dictionary": list(DICTIONARY_COLUMNS),
        "write_statistics": list(STATISTICS_COLUMNS),
        "column_encoding": encodings,
    }
    if level is not None:
        options["compression_level"] = level
    return options


class ExportFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    JSONL = "jsonl"


def format_of(path: Path) -> ExportFormat:
    """The format a file's suffix names.

    Raises:
        RecordingError: the suffix is not ``.parquet``, ``.csv`` or ``.jsonl``.
    """
    suffix = path.suffix.lower().lstrip(".")
    aliases = {"parquet": "parquet", "pq": "parquet", "csv": "csv", "jsonl": "jsonl"}
    if suffix not in aliases:
        raise RecordingError(f"{path}: the file's suffix says the format: .parquet, .csv or .jsonl")
    return ExportFormat(aliases[suffix])


@dataclass(frozen=True, slots=True)
class Window:
    """Hours of the day in IST, ``start`` included and ``end`` excluded, in seconds since
    midnight; ``None`` for open ends."""

    start: int | None = None
    end: int | None = None

    def holds(self, ns: int) -> bool:
        if self.start is None and self.end is None:
            return True
        second = (ns // 1_000_000_000 + _IST_OFFSET_S) % _DAY_S
        if self.start is not None and second < self.start:
            return False
        return self.end is None or second < self.end


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    format: ExportFormat
    rows: int
    frames: int
    events: int


def select_packets(frame: bytes, tokens: frozenset[int] | set[int]) -> bytes:
    """A frame holding only the packets of these tokens, each packet's bytes as they were."""
    count = frame[0] << 8 | frame[1] if len(frame) >= 2 else 0
    kept: list[bytes] = []
    offset = 2
    for _ in range(count):
        length = frame[offset] << 8 | frame[offset + 1]
        end = offset + 2 + length
        if length >= 4 and int.from_bytes(frame[offset + 2 : offset + 6], "big") in tokens:
            kept.append(frame[offset:end])
        offset = end
    return len(kept).to_bytes(2, "big") + b"".join(kept)


def export(
    recording: Recording,
    path: Path,
    *,
    fmt: ExportFormat | None = None,
    tokens: Iterable[int] | None = None,
    window: Window = Window(),
    compression: str = COMPRESSION,
) -> ExportResult:
    """Write the recording's ticks to ``path``, one row per tick; Parquet with ``compression``
    (a key of :data:`COMPRESSIONS`).

    Raises:
        RecordingError: the recording cannot be read, or ``path`` cannot be written; Parquet
            without pyarrow (``pip install 'kitefan[parquet]'``).
        ValueError: a codec that is not one of :data:`COMPRESSIONS`.
    """
    fmt = fmt or format_of(path)
    wanted = None if tokens is None else frozenset(tokens)
    _level_of(compression)  # a bad codec fails before the file is made
    try:
        if fmt is ExportFormat.PARQUET:
            return _parquet(recording, path, wanted, window, compression)
        return _records(recording, path, fmt, wanted, window)
    except OSError as exc:
        raise RecordingError(f"cannot write {path}: {exc.strerror or exc}") from None


def _records(
    recording: Recording,
    path: Path,
    fmt: ExportFormat,
    wanted: frozenset[int] | None,
    window: Window,
) -> ExportResult:
    from kitefan.render.records import csv_header, encode_csv, encode_jsonl

    csv = fmt is ExportFormat.CSV
    encode: Callable[[Iterable[Event], Callable[[int], str]], bytes] = (
        encode_csv if csv else encode_jsonl
    )
    rows = frames = events = 0
    pending: list[Event] = []
    with path.open("wb") as out:
        if csv:
            out.write(csv_header().encode())
        for item in recording.events():
            if isinstance(item, TickBatch):
                if not window.holds(round(item.received_wall * 1e9)):
                    continue
                if wanted is not None:
                    frame = select_packets(item.frame, wanted)
                    if frame[:2] == b"\x00\x00":
                        continue
                    item = TickBatch(
                        item.key, item.connection, frame, item.received_at, item.received_wall
                    )
                rows += item.count
                frames += 1
            else:
                if csv or not window.holds(round(item.at * 1e9)):
                    continue
                events += 1
            pending.append(item)
            if len(pending) >= 512:
                out.write(encode(pending, recording.name_of))
                pending.clear()
        out.write(encode(pending, recording.name_of))
    return ExportResult(path, fmt, rows, frames, events)


def _parquet(
    recording: Recording,
    path: Path,
    wanted: frozenset[int] | None,
    window: Window,
    compression: str,
) -> ExportResult:
    try:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise RecordingError(
            "exporting to Parquet needs pyarrow: pip install 'kitefan[parquet]'"
        ) from None
    from kitefan.columnar import TIMEZONE, frames_to_arrow

    frames: list[bytes] = []
    keys: list[str] = []
    conns: list[int] = []
    times: list[int] = []
    counts: list[int] = []
    ticks = 0
    rows = total_frames = 0
    writer: Any = None
    schema: Any = None
    value_set = None if wanted is None else pa.array(sorted(wanted), pa.uint32())
    # The writer runs in a thread of its own (pyarrow's Parquet writer releases the GIL), so
    # that reading and decoding the next row group overlaps writing this one; at most one row
    # group waits behind the one being written.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kitefan-export")
    pending: deque[Future[None]] = deque()
    names = _SymbolDictionary(recording)

    def flush() -> None:
        nonlocal writer, schema, rows
        if not frames:
            return
        table = frames_to_arrow(frames, key=keys, connection=conns)
        at = np.repeat(np.asarray(times, dtype=np.int64), np.asarray(counts, dtype=np.int64))
        received = pa.Array.from_buffers(
            pa.timestamp("ns", tz=TIMEZONE), len(at), [None, pa.py_buffer(at)]
        )
        table = table.add_column(0, "received_at", received)
        if value_set is not None:  # first, so that the symbols' dictionary holds these alone
            import pyarrow.compute as pc

            table = table.filter(pc.is_in(table["instrument_token"], value_set=value_set))
        tokens = table["instrument_token"].combine_chunks().to_numpy()
        table = table.add_column(3, "symbol", names.column(tokens))
        if writer is None:
            schema = table.schema
            writer = pq.ParquetWriter(str(path), schema, **writer_options(schema, compression))
        while len(pending) > 1:
            pending.popleft().result()  # raises what the writer raised
        pending.append(pool.submit(writer.write_table, table.cast(schema)))
        rows += table.num_rows
        frames.clear()
        keys.clear()
        conns.clear()
        times.clear()
        counts.clear()

    try:
        for record in recording.records():
            if record.kind != KIND_FRAME:
                if record.kind == KIND_SYMBOLS:
                    recording.symbols.update(symbols_of(record))
                continue
            if not window.holds(record.ns):
                continue
            try:
                count = scan_frame(record.body)[0]
            except CodecError:
                recording.report.bad_records += 1
                continue
            if count == 0:
                continue
            total_frames += 1
            frames.append(record.body)
            keys.append(record.key)
            conns.append(record.connection or 0)
            times.append(record.ns)
            counts.append(count)
            ticks += count
            if ticks >= ROW_GROUP_TICKS:
                flush()
                ticks = 0
        flush()
        if writer is None:  # no tick at all: an empty table of the columns
            empty = frames_to_arrow([b"\x00\x00"], key=[""], connection=[0])
            empty = empty.add_column(
                0, "received_at", pa.array([], pa.timestamp("ns", tz=TIMEZONE))
            )
            empty = empty.add_column(
                3,
                "symbol",
                pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array([], pa.string())),
            )
            pq.write_table(empty, str(path), **writer_options(empty.schema, compression))
        while pending:
            pending.popleft().result()
    finally:
        pool.shutdown(wait=True)  # a write under way ends before the file is closed
        if writer is not None:
            writer.close()
    return ExportResult(path, ExportFormat.PARQUET, rows, total_frames, 0)


class _SymbolDictionary:
    """The symbol column of each row group, over one dictionary for the whole file: every token
    seen so far, named as the recording names it (else its number); a row group's new tokens
    are added in token order. When the recording's names change (a symbols record was read),
    it starts again."""

    def __init__(self, recording: Recording) -> None:
        self._recording = recording
        self._known = -1
        self._start()

    def _start(self) -> None:
        import numpy as np
        import pyarrow as pa

        self._known = len(self._recording.symbols)
        self._names: list[str] = []
        self._sorted = np.empty(0, dtype=np.uint32)  # the tokens, sorted
        self._ids = np.empty(0, dtype=np.int32)  # each sorted token's place in _names
        self._dictionary: Any = pa.array([], pa.string())

    def column(self, tokens: Any) -> Any:
        """The dictionary column of ``tokens`` (a uint32 array)."""
        import numpy as np
        import pyarrow as pa

        if len(self._recording.symbols) != self._known:
            self._start()
        where = np.searchsorted(self._sorted, tokens)
        found = where < len(self._sorted)
        found[found] = self._sorted[where[found]] == tokens[found]
        if not found.all():
            new = np.unique(tokens[~found])
            first = len(self._names)
            self._names += [self._recording.name_of(t) for t in new.tolist()]
            merged = np.concatenate((self._sorted, new))
            ids = np.concatenate((self._ids, np.arange(first, len(self._names), dtype=np.int32)))
            order = np.argsort(merged, kind="stable")
            self._sorted, self._ids = merged[order], ids[order]
            self._dictionary = pa.array(self._names, pa.string())
            where = np.searchsorted(self._sorted, tokens)
        indices = self._ids[where]
        return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), self._dictionary)
