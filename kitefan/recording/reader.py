"""Reading a recording: a file (or a directory of them, one per day) as chunks, records, or the
feed's own events.

:class:`Recording` reads through :class:`~kitefan.recording.format.LogScanner`, a block at a
time. A chunk that does not check is skipped and counted; the reading stops at the last whole
chunk, and :attr:`Recording.report` says where and why. Each iteration is a fresh pass from the
start of the first file. A file being written reads up to what its writer has flushed; with
``follow=True`` the reading waits for more (as ``tail -f``) until the caller stops iterating.

Owns: :class:`Recording`, :class:`ReadReport`, :func:`recording_files`. Must not import asyncio,
rich or typer.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from kitefan.errors import CodecError, RecordingError
from kitefan.events import Event, TickBatch
from kitefan.recording.format import (
    KIND_SYMBOLS,
    Chunk,
    End,
    Header,
    LogScanner,
    Record,
    Skipped,
    record_event,
    symbols_of,
)

__all__ = ["SUFFIX", "FileEnd", "ReadReport", "Recording", "recording_files"]

#: Reads (of :data:`_BLOCK` bytes) made ahead of the caller, at most.
READ_AHEAD = 4
#: Decompressed bytes of the chunks checked together (one checksum call), at most: about one
#: chunk of the realistic load (small chunks go together). More at a time was slower: each
#: chunk's bytes are decompressed into memory the last one's left warm in the CPU's cache.
BATCH_RAW = 1024 * 1024
_END = object()
T = TypeVar("T")

#: The suffix of the files a directory recording holds (``2026-12-01.kfr``).
SUFFIX = ".kfr"
#: Bytes a read asks for. The reads run in a thread of their own; the checksums, zstd and the
#: records run in the caller's. A thread that gives the GIL up (as zstd and every checksum over
#: 5 KB do) waits up to the switch interval (5 ms) to take it back while another runs Python:
#: one such wait per 4 MB read is nothing, one per 1 MB chunk held a reading thread to about a
#: million ticks a second behind a busy caller.
_BLOCK = 4 * 1024 * 1024


def recording_files(path: Path) -> list[Path]:
    """The files of a recording: the file itself, or a directory's ``*.kfr`` files by name
    (which is by day).

    Raises:
        RecordingError: the path does not exist, or the directory holds no recording.
    """
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == SUFFIX and p.is_file())
        if not files:
            raise RecordingError(f"{path} holds no recording (no *{SUFFIX} file)")
        return files
    if not path.exists():
        raise RecordingError(f"{path}: no such file or directory")
    return [path]


@dataclass(frozen=True, slots=True)
class FileEnd:
    """Where the reading of one file stopped: ``offset`` is the end of its last whole chunk, and
    ``truncated`` the bytes after it that are not a whole chunk (0 for a file that ends whole)."""

    path: Path
    offset: int
    truncated: int
    size: int

    def describe(self) -> str:
        return (
            f"{self.path}: stopped at byte {self.offset:,}, after its last whole chunk; the "
            f"{self.truncated:,} bytes after it are a chunk not written whole (a writer killed, "
            "or one still writing)"
        )


@dataclass
class ReadReport:
    """What one pass read: whole chunks, what it skipped, and where each file stopped."""

    files: int = 0
    chunks: int = 0
    records: int = 0
    skipped_chunks: int = 0
    skipped_bytes: int = 0
    bad_records: int = 0
    skipped: list[tuple[Path, Skipped]] = field(default_factory=list)
    ends: list[FileEnd] = field(default_factory=list)
    headers: list[tuple[Path, Header]] = field(default_factory=list)

    @property
    def truncated(self) -> list[FileEnd]:
        """The files whose last chunk was not whole."""
        return [end for end in self.ends if end.truncated]

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "chunks": self.chunks,
            "records": self.records,
            "skipped_chunks": self.skipped_chunks,
            "skipped_bytes": self.skipped_bytes,
            "bad_records": self.bad_records,
            "skipped": [
                {"file": str(p), "offset": s.offset, "bytes": s.size, "reason": s.reason}
                for p, s in self.skipped
            ],
            "truncated": [
                {"file": str(e.path), "stopped_at": e.offset, "bytes": e.truncated}
                for e in self.truncated
            ],
        }


class Recording:
    """A recording, read.

    Args:
        path: a file ``kitefan stream --record FILE`` wrote, or a directory of them (read in name
            order, which is by day).
        follow: once the data ends, wait for more (``poll_s`` between looks) instead of
            stopping: the reading of a file being written. Only a single file can be followed.
        decompress_ahead: check, decompress and read the chunks in the reading thread too, not
            only the file's reads. Faster for a caller that often gives the GIL up itself (an
            event loop writing to sockets: the replay); slower for one that runs Python flat
            out (the candle builder, the export), which the thread then waits on for the GIL
            after each chunk's zstd and checksum (up to the 5 ms switch interval each time).

    Raises:
        RecordingError: the path does not exist, or holds no recording.

    Example::

        from kitefan.recording import Recording
        from kitefan.events import TickBatch

        recording = Recording("ticks/2026-12-01.kfr")
        for item in recording.events():      # TickBatch, StatusEvent, OrderEvent, ErrorEvent
            if isinstance(item, TickBatch):
                for tick in item.ticks:      # decoded on first use, as from the feed
                    ...
        print(recording.report.skipped_chunks, recording.report.truncated)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        follow: bool = False,
        poll_s: float = 0.2,
        decompress_ahead: bool = False,
    ) -> None:
        self.path = Path(path)
        self.decompress_ahead = decompress_ahead and not follow
        self.files = recording_files(self.path)
        if follow and len(self.files) != 1:
            raise RecordingError("follow reads one file, not a directory of them")
        self.follow = follow
        self.poll_s = poll_s
        self.report = ReadReport()
        #: token -> EXCHANGE:TRADINGSYMBOL, from the symbols records read so far.
        self.symbols: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"Recording({str(self.path)!r})"

    def name_of(self, token: int) -> str:
        """A token's name, as the recording's writer knew it (else the number)."""
        return self.symbols.get(token) or str(token)

    @property
    def size(self) -> int:
        """Bytes on disk, every file together."""
        return sum(p.stat().st_size for p in self.files)

    def load_symbols(self) -> dict[int, str]:
        """The names the recording holds, read from the first chunk of each file (which has every
        name its writer knew then) without reading the rest."""
        for path in self.files:
            for batch in self._file_batches(path, ReadReport()):
                for record in batch[0].records:
                    if record.kind == KIND_SYMBOLS:
                        self.symbols.update(symbols_of(record))
                break
        return self.symbols

    # Passes

    def chunks(self) -> Generator[Chunk, None, None]:
        """Every whole chunk, file after file; skipped stretches and where each file stopped go
        to :attr:`report` (fresh for each pass). Closing the generator stops a pass early, and
        its read-ahead with it."""
        self.report = report = ReadReport()
        batches = self._all_batches(report)
        if self.decompress_ahead:
            batches = _read_ahead(batches)
        for batch in batches:
            yield from batch

    def records(self) -> Iterator[Record]:
        """Every record, in the order written: frames with their receive time in nanoseconds,
        events, symbols. The symbols records also update :attr:`symbols`."""
        for chunk in self.chunks():
            for record in chunk.records:
                if record.kind == KIND_SYMBOLS:
                    self.symbols.update(symbols_of(record))
                yield record

    def events(self) -> Iterator[Event]:
        """The recording as the feed gave it: :class:`~kitefan.events.TickBatch` (one per frame,
        the frame's bytes as received, ``received_wall`` its receive time; ``received_at`` is
        ``time.perf_counter()`` when read, as :class:`~kitefan.tail.RemoteFeed` sets it) and the
        status, order and error events. A record that does not read is skipped and counted
        (``report.bad_records``)."""
        for chunk in self.chunks():
            now = time.perf_counter()
            for record in chunk.records:
                if record.kind == KIND_SYMBOLS:
                    self.symbols.update(symbols_of(record))
                    continue
                try:
                    event = record_event(record, now)
                except (CodecError, ValueError):
                    self.report.bad_records += 1
                    continue
                if event is not None:
                    yield event

    def ticks(self) -> Iterator[TickBatch]:
        """The tick batches alone."""
        for item in self.events():
            if isinstance(item, TickBatch):
                yield item

    # Internals

    def _all_batches(self, report: ReadReport) -> Generator[list[Chunk], None, None]:
        for path in self.files:
            report.files += 1
            yield from self._file_batches(path, report)

    def _file_batches(self, path: Path, report: ReadReport) -> Generator[list[Chunk], None, None]:
        """The file's whole chunks, in batches: those each read made whole. The reads run in a
        thread of their own, ahead of the caller, unless following the file."""
        scanner = LogScanner()
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None
        blocks = self._blocks(handle)
        # Follow waits for more: read here, where the caller stops it. With decompress_ahead the
        # whole of this runs in the reading thread already.
        if not self.follow and not self.decompress_ahead:
            blocks = _read_ahead(blocks)
        with handle, contextlib.closing(blocks):
            for data in blocks:
                if data:
                    scanner.receive_data(data)
                else:
                    scanner.end_of_data()
                while True:
                    try:
                        items = scanner.next_items(BATCH_RAW)
                    except RecordingError as exc:
                        raise RecordingError(f"{path}: {exc}") from None
                    if not items:
                        break
                    batch: list[Chunk] = []
                    for item in items:
                        if isinstance(item, Chunk):
                            report.chunks += 1
                            report.records += len(item.records)
                            batch.append(item)
                        elif isinstance(item, Header):
                            report.headers.append((path, item))
                        elif isinstance(item, Skipped):
                            report.skipped.append((path, item))
                            report.skipped_bytes += item.size
                            if item.chunk:
                                report.skipped_chunks += 1
                        elif isinstance(item, End):
                            if batch:
                                yield batch
                            if scanner.header is None:
                                raise RecordingError(
                                    f"{path} is not a kitefan recording (too short for its header)"
                                )
                            report.ends.append(
                                FileEnd(
                                    path, item.offset, item.truncated, item.offset + item.truncated
                                )
                            )
                            return
                    if batch:
                        yield batch

    def _blocks(self, handle: BinaryIO) -> Generator[bytes, None, None]:
        """The file's bytes, a read at a time, then ``b""`` at its end; following it, more as it
        grows, without an end."""
        while True:
            data = handle.read(_BLOCK)
            if data:
                yield data
            elif self.follow:
                time.sleep(self.poll_s)
            else:
                yield b""
                return


def _read_ahead(source: Generator[T, None, None]) -> Generator[T, None, None]:
    """``source``'s items, in order, made by a thread of its own up to :data:`READ_AHEAD` items
    ahead: the file's reads (which release the GIL) overlap what the caller does with the bytes
    before. What the source raises is raised here, in its place. When the caller stops early,
    the thread stops, and the source is closed, before this returns."""
    items: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(READ_AHEAD)
    stop = threading.Event()

    def put(item: Any, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                items.put((item, error), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in source:
                if not put(item) or stop.is_set():
                    return
            put(_END)
        except BaseException as exc:  # handed to the caller, raised there
            put(_END, exc)
        finally:
            source.close()

    thread = threading.Thread(target=run, name="kitefan-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while True:  # make room, so that a put under way ends at once
            try:
                items.get_nowait()
            except queue.Empty:
                break
        thread.join()
