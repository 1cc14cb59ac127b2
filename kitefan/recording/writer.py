"""Writing a recording: a feed's frames and events appended to a file, never holding up the
sockets.

:class:`Recorder` is one more consumer of the feed's events (``feed.events()``, or the events a
:class:`~kitefan.tail.RemoteFeed` reads). :meth:`Recorder.add` appends an event's record to the
chunk being built (a ``struct.pack`` and a copy of the frame's bytes; no decode) and returns at
once. A chunk is sealed when it holds ``chunk_bytes`` of records or its first record is
``flush_s`` old (0.5 s), and a worker thread compresses it (zstd, which releases the GIL) and
appends it to the file with one ``write``; so a writer killed with SIGKILL loses at most the
last second, and a reader sees whole chunks as soon as they are written.

Sealed chunks wait for the thread in a queue bounded at ``buffer_bytes`` (64 MiB of records):
past it, when the disk is slower than the feed, the oldest are dropped and counted. A write that
fails (a full disk) drops that chunk and counts it, cuts the file back to its last whole chunk, and
is said once, through ``on_warning``, until a write succeeds again; the feed goes on.

With a directory, each record goes to the file of its trading day in IST,
``DIRECTORY/YYYY-MM-DD.kfr``. An existing file is appended to: a chunk left partial by a killed
writer is cut off first, so that the file reads whole again.

Owns: :class:`Recorder` (its figures are :class:`kitefan.stats.RecordStats`, re-exported here).
Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from kitefan.errors import RecordingError
from kitefan.events import Event, TickBatch
from kitefan.models import IST
from kitefan.recording.format import (
    CHUNK_HEADER,
    CHUNK_MAGIC,
    KIND_SYMBOLS,
    ChunkBuilder,
    Record,
    decode_header,
    encode_header,
    event_record,
    symbols_body,
    zstd_compressor,
)
from kitefan.recording.reader import SUFFIX
from kitefan.stats import RecordStats

if TYPE_CHECKING:
    from kitefan.manager import EventStream

__all__ = ["BUFFER_BYTES", "CHUNK_BYTES", "FLUSH_S", "RecordStats", "Recorder"]

log = logging.getLogger(__name__)

#: Records per chunk, at most about (before compression).
CHUNK_BYTES = 1024 * 1024
#: A chunk is sealed and written once its first record is this old.
FLUSH_S = 0.5
#: Sealed chunks waiting to be written, at most (before compression).
BUFFER_BYTES = 64 * 1024 * 1024

_IST_OFFSET_S = 19800
_DAY_S = 86400
_NS = 1_000_000_000
_CHUNK_HEAD = struct.Struct("<4sIIIQQI")


def _day_index(ns: int) -> int:
    return (ns // _NS + _IST_OFFSET_S) // _DAY_S


def _day_name(index: int) -> str:
    return datetime.fromtimestamp(index * _DAY_S - _IST_OFFSET_S, tz=IST).strftime("%Y-%m-%d")


class _Sealed:
    __slots__ = ("builder", "path")

    def __init__(self, path: Path, builder: ChunkBuilder) -> None:
        self.path = path
        self.builder = builder


class Recorder:
    """Record a feed's frames and events to a file, or to a directory of one file per day.

    Args:
        path: a file (created, or appended to), or an existing directory.
        source: what is recorded, for the file's metadata (``stream``, ``tail ...``); never a
            secret.
        symbols: the names to record (token -> ``EXCHANGE:TRADINGSYMBOL``): all of them at the
            start of each file, and what changed, looked at once a second.
        on_warning: told once per outage that the file cannot be written.
        chunk_bytes, flush_s, buffer_bytes, level: the chunks' size and age at most, the bound of
            the queue of chunks to write, and the zstd level.
        clock: the wall clock of the symbols records (``time.time``).

    Use as an async context manager (or :meth:`open` and :meth:`close`); feed it with
    :meth:`add`, or let :meth:`consume` take a feed's stream.

    Raises:
        RecordingError: (on open) the file cannot be created or is not a kitefan recording.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        source: str = "stream",
        symbols: Callable[[], Mapping[int, str]] | None = None,
        on_warning: Callable[[str], None] | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        flush_s: float = FLUSH_S,
        buffer_bytes: int = BUFFER_BYTES,
        level: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.directory = self.path.is_dir()
        self.source = source
        self.symbols = symbols
        self.on_warning = on_warning
        self.chunk_bytes = chunk_bytes
        self.flush_s = flush_s
        self.buffer_bytes = buffer_bytes
        self.level = level
        self.clock = clock
        self._builder = ChunkBuilder()
        self._built_at = 0.0  # monotonic time of the current chunk's first record
        self._target: Path | None = None  # the file the current chunk goes to
        self._day = -1
        self._names: dict[int, str] = {}
        self._names_at = 0.0
        self._pending: deque[_Sealed] = deque()
        self._pending_bytes = 0
        self._ready: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._compress = zstd_compressor(level)
        # The worker thread's files: path -> (fd, end of its last whole chunk).
        self._files: dict[Path, list[int]] = {}
        self._started: set[Path] = set()  # files that got their full symbols record
        self._stream: EventStream[Event] | None = None
        self._warned = False
        self._closed = False
        self.files_opened = 0
        self.chunks = 0
        self.bytes_written = 0
        self.frames = 0
        self.ticks = 0
        self.events = 0
        self.write_errors = 0
        self.last_error = ""
        self._dropped_ticks = 0
        self._dropped_events = 0

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r})"

    # Figures

    @property
    def dropped_ticks(self) -> int:
        stream = self._stream
        return self._dropped_ticks + (stream.dropped_ticks if stream is not None else 0)

    @property
    def dropped_events(self) -> int:
        stream = self._stream
        return self._dropped_events + (stream.dropped_events if stream is not None else 0)

    def stats(self) -> RecordStats:
        return RecordStats(
            path=str(self.path),
            files=self.files_opened,
            chunks=self.chunks,
            bytes_written=self.bytes_written,
            frames=self.frames,
            ticks=self.ticks,
            events=self.events,
            dropped_ticks=self.dropped_ticks,
            dropped_events=self.dropped_events,
            write_errors=self.write_errors,
            last_error=self.last_error,
        )

    # Life

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Start the worker thread and the timer; a single file is opened (or checked and
        appended to) now, so that a path that cannot be written fails before the feed starts."""
        loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kitefan-record")
        if not self.directory:
            try:
                await loop.run_in_executor(self._executor, self._file, self.path)
            except BaseException:
                self._executor.shutdown(wait=False)
                raise
        self._tasks = [
            loop.create_task(self._write_loop(), name="kitefan:record-write"),
            loop.create_task(self._timer(), name="kitefan:record-timer"),
        ]

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write what is left (for at most ``timeout_s``; what is not written by then is
        counted as dropped) and close the files."""
        if self._closed:
            return
        self._closed = True
        self._seal()
        if self._ready is not None:
            self._ready.set()
        if self._tasks:
            writer, timer = self._tasks
            timer.cancel()
            # The writer ends once nothing is left to write (it sees _closed).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await asyncio.wait({writer})
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._pending:
            self._drop(self._pending.popleft())
        if self._executor is not None:
            executor = self._executor
            await asyncio.get_running_loop().run_in_executor(executor, self._close_files)
            executor.shutdown(wait=False)

    async def consume(self, events: EventStream[Event]) -> None:
        """Record what ``events`` yields until it ends (the feed closed), then close."""
        self._stream = events
        try:
            async for first in events:
                self.add(first)
                if len(events):
                    for item in events.drain():
                        self.add(item)
        finally:
            await self.close()

    # Adding

    def add(self, item: Event) -> None:
        """Append an event to the chunk being built (at once; the writing is the thread's)."""
        if self._closed:
            self._count_lost(item)
            return
        record = event_record(item)
        self._route(record.ns)
        ticks = 0
        if isinstance(item, TickBatch):
            ticks = item.count
            self.frames += 1
        builder = self._builder
        if builder.records == 0:
            self._built_at = time.monotonic()
        builder.add(record, ticks)
        if len(builder) >= self.chunk_bytes:
            self._seal()

    def _route(self, ns: int) -> None:
        """Make the current chunk the one of the file this record goes to."""
        if self._target is None or self.directory:
            target = self.path
            if self.directory:
                day = _day_index(ns)
                if day == self._day and self._target is not None:
                    return
                self._day = day
                target = self.path / f"{_day_name(day)}{SUFFIX}"
            if target == self._target:
                return
            self._seal()
            self._target = target
        if self._target not in self._started:
            self._started.add(self._target)
            names = self._names_now()
            self._names = dict(names)
            if self._builder.records == 0:
                self._built_at = time.monotonic()
            self._builder.add(self._symbols_record(names))

    def _names_now(self) -> Mapping[int, str]:
        self._names_at = time.monotonic()
        if self.symbols is None:
            return {}
        try:
            return self.symbols()
        except Exception:  # the names are a courtesy: a failure must not stop the recording
            log.debug("recording: no names", exc_info=True)
            return {}

    def _symbols_record(self, names: Mapping[int, str]) -> Record:
        return Record(KIND_SYMBOLS, "", None, round(self.clock() * 1e9), symbols_body(names))

    def _check_names(self) -> None:
        if self.symbols is None or self._target is None:
            return
        names = self._names_now()
        known = self._names
        changed = {t: n for t, n in names.items() if known.get(t) != n}
        if changed:
            self._names = dict(names)
            if self._builder.records == 0:
                self._built_at = time.monotonic()
            self._builder.add(self._symbols_record(changed))

    def _seal(self) -> None:
        builder = self._builder
        if builder.records == 0 or self._target is None:
            return
        self._builder = ChunkBuilder()
        self._pending.append(_Sealed(self._target, builder))
        self._pending_bytes += len(builder)
        while self._pending_bytes > self.buffer_bytes and len(self._pending) > 1:
            self._drop(self._pending.popleft())
        if self._ready is not None:
            self._ready.set()

    def _drop(self, sealed: _Sealed) -> None:
        self._pending_bytes -= len(sealed.builder)
        self._dropped_ticks += sealed.builder.ticks
        self._dropped_events += sealed.builder.events

    def _count_lost(self, item: Event) -> None:
        if isinstance(item, TickBatch):
            self._dropped_ticks += item.count
        else:
            self._dropped_events += 1

    # The tasks

    async def _timer(self) -> None:
        period = min(0.1, self.flush_s / 2)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            if now - self._names_at >= 1.0:
                self._check_names()
            if self._builder.records and now - self._built_at >= self.flush_s:
                self._seal()

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        ready = self._ready
        assert ready is not None
        while True:
            if not self._pending:
                if self._closed:
                    return
                ready.clear()
                await ready.wait()
                continue
            sealed = self._pending.popleft()
            self._pending_bytes -= len(sealed.builder)
            try:
                written = await loop.run_in_executor(self._executor, self._write, sealed)
            except OSError as exc:
                self._failed(sealed, exc)
                continue
            except RecordingError as exc:
                self._failed(sealed, exc)
                continue
            builder = sealed.builder
            self.chunks += 1
            self.bytes_written += written
            self.ticks += builder.ticks
            self.events += builder.events
            if self._warned:
                self._warned = False
                log.info("recording to %s again", self.path)

    def _failed(self, sealed: _Sealed, exc: BaseException) -> None:
        self.write_errors += 1
        self._dropped_ticks += sealed.builder.ticks
        self._dropped_events += sealed.builder.events
        text = (exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)) or type(
            exc
        ).__name__
        self.last_error = text
        if not self._warned:
            self._warned = True
            message = (
                f"cannot write the recording {sealed.path} ({text}): dropping and counting "
                "ticks while retrying; the feed goes on"
            )
            if self.on_warning is not None:
                self.on_warning(message)
            else:
                log.warning("%s", message)

    # The worker thread

    def _write(self, sealed: _Sealed) -> int:
        data = sealed.builder.seal(self._compress)
        state = self._file(sealed.path)
        fd, end = state
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except OSError:
            # Cut the file back to its last whole chunk, so that it reads whole.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
                os.lseek(fd, end, os.SEEK_SET)
            raise
        state[1] = end + len(data)
        return len(data)

    def _file(self, path: Path) -> list[int]:
        state = self._files.get(path)
        if state is not None:
            return state
        if self.directory:
            # A day's file: the previous day's is done.
            for old in list(self._files):
                with contextlib.suppress(OSError):
                    os.close(self._files.pop(old)[0])
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise RecordingError(
                f"cannot write the recording {path}: {exc.strerror or exc}"
            ) from None
        try:
            end = self._resume(fd, path)
        except OSError as exc:
            os.close(fd)
            raise RecordingError(
                f"cannot write the recording {path}: {exc.strerror or exc}"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._files[path] = state = [fd, end]
        self.files_opened += 1
        return state

    def _resume(self, fd: int, path: Path) -> int:
        """A new file gets its header; an existing one is checked, and a partial last chunk
        cut off. Returns where the next chunk goes."""
        size = os.fstat(fd).st_size
        if size == 0:
            header = encode_header(
                {
                    "compression": "zstd",
                    "created": datetime.now(tz=IST).isoformat(timespec="seconds"),
                    "kitefan": _version(),
                    "source": self.source,
                }
            )
            os.write(fd, header)
            self.bytes_written += len(header)  # the loop reads it only
            return len(header)
        head = os.pread(fd, 65536, 0)
        try:
            parsed = decode_header(head)
        except RecordingError as exc:
            raise RecordingError(
                f"{path} exists and is not a kitefan recording ({exc}): give a new file or a "
                "directory"
            ) from None
        if parsed is None:
            raise RecordingError(
                f"{path} exists and is not a kitefan recording (too short for its header): give "
                "a new file or a directory"
            )
        offset = parsed.size
        while offset + CHUNK_HEADER <= size:
            head = os.pread(fd, CHUNK_HEADER, offset)
            magic, clen, *_ = _CHUNK_HEAD.unpack_from(head)
            (crc,) = struct.unpack_from("<I", head, _CHUNK_HEAD.size)
            if magic != CHUNK_MAGIC or zlib.crc32(head[: _CHUNK_HEAD.size]) != crc:
                return size  # damage in the middle: append after it, readers skip it
            if offset + CHUNK_HEADER + clen > size:
                break  # the last chunk was not written whole
            offset += CHUNK_HEADER + clen
        if offset != size:
            os.ftruncate(fd, offset)
            log.info("recording %s: cut %d bytes of a partial chunk", path, size - offset)
        return offset

    def _close_files(self) -> None:
        for fd, _ in self._files.values():
            with contextlib.suppress(OSError):
                os.fsync(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.clear()


def _version() -> str:
    from kitefan import __version__

    return __version__
