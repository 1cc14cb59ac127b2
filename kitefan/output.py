"""Records out of the process: bytes to a file descriptor that never block the event loop, with
every tick accounted for.

``kitefan stream --format jsonl|csv`` writes to its stdout, and whoever reads it may be slow, stop
reading, resume with a backlog, or go away. None of that may hold up the sockets, so nothing here
waits on the reader with the loop:

* A pipe, socket or terminal is written through asyncio's non-blocking pipe transport: a write
  never blocks; what the reader has not taken yet stays buffered, and past ``high_water`` bytes
  :meth:`RecordOutput.write` waits (the stream's bounded queue then fills, and drops and counts
  what does not fit: the sockets keep being read). A resumed reader is fed from that buffer a
  pipe's worth at a time, as it reads.
* A regular file is written directly: the kernel's page cache takes it at once. When encoding
  runs in a worker thread, the write does too (:func:`write_records`), so that the kernel's
  copy of the text stays off the loop as well.
* Every piece handed over says how many ticks it holds (one line each). :attr:`written_ticks`
  counts the ticks whose line reached the descriptor whole; what could not be written by the end
  (:meth:`RecordOutput.finish` has a deadline) is discarded and counted in
  :attr:`unwritten_ticks`. So at the end, ``handed == written_ticks + unwritten_ticks``.
* The reader going away (``EPIPE``: ``kitefan stream | head``) ends the output:
  :attr:`reader_gone` is set, and later pieces count as unwritten. Any other write error (a full
  disk) ends it too, and :attr:`RecordOutput.failure` says why, for the caller to report.

:func:`write_records` is the loop between a feed's event stream and an output: it takes what is
queued in chunks of at most ``chunk_ticks`` ticks, encodes them (in a worker thread when the
encoder is slow), and writes them; a chunk never holds the loop for long.

Owns: ``RecordOutput``, ``write_records``. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO, Any

from kitefan.errors import KitefanError
from kitefan.events import Event, TickBatch
from kitefan.manager import EventStream

__all__ = ["Encoder", "RecordOutput", "write_records"]

#: Turns events into pieces of output, one per event: (bytes, ticks they hold).
Encoder = Callable[[Sequence[Event]], list[tuple[bytes, int]]]


class _PipeProtocol(asyncio.Protocol):
    """Flow control from the transport to its :class:`RecordOutput`."""

    def __init__(self, output: RecordOutput) -> None:
        self._output = output

    def pause_writing(self) -> None:
        self._output._resumed.clear()

    def resume_writing(self) -> None:
        self._output._resumed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._output._lost(exc)


class RecordOutput:
    """A file descriptor to write records to, without ever blocking the event loop.

    Args:
        fd: the descriptor (``1`` for stdout). It is not closed; its blocking mode is restored.
        high_water: bytes buffered for a slow reader before :meth:`write` waits.
    """

    def __init__(self, fd: int, *, high_water: int = 1 << 20) -> None:
        self.fd = fd
        self.high_water = high_water
        self.written_ticks = 0
        self.unwritten_ticks = 0
        #: Why writing stopped, when it was not the reader going away (a full disk).
        self.failure: KitefanError | None = None
        self._transport: asyncio.WriteTransport | None = None
        self._pipe: IO[bytes] | None = None
        self._was_blocking = True
        self._regular = False
        self._gone = False
        self._resumed = asyncio.Event()
        self._resumed.set()
        # Pieces handed to the transport and not known to be written: (end offset, ticks, data).
        self._pending: deque[tuple[int, int, bytes]] = deque()
        self._submitted = 0
        # Encode-and-write jobs running in a worker thread (regular files), see write_records.
        self._jobs: set[asyncio.Future[None]] = set()

    @property
    def reader_gone(self) -> bool:
        """Whether the reader went away (a broken pipe): nothing more can be written."""
        return self._gone

    @property
    def buffered_bytes(self) -> int:
        """Bytes handed over that the reader has not taken yet."""
        transport = self._transport
        return (
            0 if transport is None or transport.is_closing() else transport.get_write_buffer_size()
        )

    async def open(self) -> None:
        """Get ready to write: a pipe transport, or direct writes to a regular file."""
        mode = os.fstat(self.fd).st_mode
        if stat.S_ISREG(mode) or not (
            stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)
        ):
            self._regular = True
            return
        self._was_blocking = os.get_blocking(self.fd)
        # A descriptor of our own, so that closing the transport leaves ``fd`` open.
        self._pipe = os.fdopen(os.dup(self.fd), "wb", buffering=0)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_write_pipe(lambda: _PipeProtocol(self), self._pipe)
        transport.set_write_buffer_limits(high=self.high_water)
        self._transport = transport

    async def write(self, pieces: Sequence[tuple[bytes, int]]) -> None:
        """Write pieces (bytes, the ticks they hold); waits while a slow reader is behind."""
        if self._gone:
            self.unwritten_ticks += sum(ticks for _, ticks in pieces)
            return
        if self._regular:
            self.write_directly(pieces)
            return
        transport = self._transport
        assert transport is not None, "open() first"
        pending = self._pending
        for data, ticks in pieces:
            if not data:
                continue
            self._submitted += len(data)
            pending.append((self._submitted, ticks, data))
            # One write each, not one of them joined: a piece is a frame's megabytes, and the
            # transport writes what it can of each straight from it. A write that failed closes
            # the transport (its error is reported once, by _lost); the rest count as unwritten.
            if not transport.is_closing():
                transport.write(data)
        self._settle()
        if not self._resumed.is_set():
            await self._resumed.wait()
            self._settle()

    async def finish(self, deadline: float) -> None:
        """Let the reader take what is buffered until ``deadline`` (``loop.time()``); discard
        and count the rest. Restores the descriptor's blocking mode. Encode-and-write jobs of a
        regular file still running in a worker thread are waited for: they count their ticks."""
        if self._jobs:
            # Encodes and writes to a regular file in a worker thread, which count their ticks.
            await asyncio.wait(set(self._jobs))
        loop = asyncio.get_running_loop()
        transport = self._transport
        if transport is not None:
            while not self._gone and transport.get_write_buffer_size() and loop.time() < deadline:  # noqa: ASYNC110
                # No callback says "buffer empty"; poll it, briefly and boundedly.
                await asyncio.sleep(0.005)
            self._settle()
            self._discard_pending()
            if not transport.is_closing():  # a write error closed it already
                transport.abort()
            self._transport = None
            with contextlib.suppress(OSError):
                os.set_blocking(self.fd, self._was_blocking)

    @property
    def writes_directly(self) -> bool:
        """Whether the descriptor is a regular file, written by :meth:`write_directly` (after
        :meth:`open`)."""
        return self._regular

    def write_directly(self, pieces: Sequence[tuple[bytes, int]]) -> None:
        """Write pieces to the regular file now, blocking until the kernel has them: in a
        worker thread (one at a time), or on the loop, where the page cache takes them at once.
        """
        if self._gone:
            self.unwritten_ticks += sum(ticks for _, ticks in pieces)
            return
        ticks = sum(ticks for _, ticks in pieces)
        try:
            for piece, _ in pieces:
                data = memoryview(piece)
                while data:
                    data = data[os.write(self.fd, data) :]
        except BrokenPipeError:
            self._gone = True
            self.unwritten_ticks += ticks
            return
        except OSError as exc:  # a full disk, a file system gone
            self._gone = True
            self.unwritten_ticks += ticks
            self.failure = KitefanError(
                f"cannot write the records: {_reason(exc)}; free space or write elsewhere"
            )
            return
        self.written_ticks += ticks

    # Internals

    def _settle(self) -> None:
        """Count the pieces the reader has taken whole."""
        transport = self._transport
        if transport is None:
            return
        written = self._submitted - transport.get_write_buffer_size()
        pending = self._pending
        while pending and pending[0][0] <= written:
            self.written_ticks += pending.popleft()[1]

    def _discard_pending(self) -> None:
        """Count what is still buffered as unwritten; of a piece half written, its whole lines
        count as written."""
        transport = self._transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        if self._gone:
            buffered = sum(len(data) for _, _, data in self._pending)
        written = self._submitted - buffered
        pending = self._pending
        while pending:
            end, ticks, data = pending.popleft()
            start = end - len(data)
            if ticks and start < written < end:
                whole = data.count(b"\n", 0, written - start)
                self.written_ticks += whole
                self.unwritten_ticks += ticks - whole
            else:
                self.unwritten_ticks += ticks
        self._submitted = written

    def _lost(self, exc: Exception | None = None) -> None:
        if exc is not None and not isinstance(exc, BrokenPipeError | ConnectionResetError):
            self.failure = KitefanError(
                f"cannot write the records: {_reason(exc)}; free space or write elsewhere"
            )
        if self._transport is not None and not self._gone:
            self._gone = True
            self._discard_pending()
        self._resumed.set()


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__


def _encode_and_write(encode: Encoder, items: Sequence[Event], output: RecordOutput) -> None:
    """Encode and write to a regular file, in a worker thread; the ticks are counted either
    way."""
    try:
        pieces = encode(items)
    except BaseException:
        output.unwritten_ticks += _ticks_of(items)
        raise
    output.write_directly(pieces)


def _ticks_of(items: Sequence[Any]) -> int:
    return sum(item.count for item in items if isinstance(item, TickBatch))


async def write_records(
    stream: EventStream[Event],
    encode: Encoder,
    output: RecordOutput,
    *,
    chunk_ticks: int = 1024,
    in_thread: bool = False,
    observe: Callable[[Sequence[Event]], None] | None = None,
) -> None:
    """Write everything the stream yields until it ends or the reader goes away.

    Args:
        stream: the feed's event stream.
        encode: events to pieces of output.
        output: where to write.
        chunk_ticks: at most this many ticks are encoded at a time (one batch more than that is
            never split), so that no chunk holds the loop for long.
        in_thread: encode in a worker thread: the compiled encoder writes a big frame's text
            with the GIL released, so the loop reads its sockets meanwhile (and a pure-Python
            encoder at least shares the loop with them).
        observe: told of each chunk on the loop, before it is encoded.

    A tick taken from the stream is always accounted for by ``output``: written, or counted in
    ``output.unwritten_ticks`` (also when this is cancelled).
    """
    async for first in stream:
        items: list[Event] = [first]
        room = chunk_ticks - (first.count if isinstance(first, TickBatch) else 0)
        if room > 0:
            items.extend(stream.drain(max_ticks=room) if len(stream) else ())
        handed = False
        try:
            if observe is not None:
                observe(items)
            if in_thread and output.writes_directly:
                # Encoded and written in the worker thread: the kernel's copy of megabytes into
                # the page cache leaves the loop too. The job counts its own ticks, written or
                # not, whatever happens here: a cancelled writer leaves it to finish (it is a
                # write to a regular file) and RecordOutput.finish waits for it.
                job = asyncio.get_running_loop().run_in_executor(
                    None, _encode_and_write, encode, items, output
                )
                handed = True
                output._jobs.add(job)
                job.add_done_callback(output._jobs.discard)
                await asyncio.shield(job)
            elif in_thread:
                pieces = await asyncio.to_thread(encode, items)
            else:
                pieces = encode(items)
            if not handed:
                handed = True
                await output.write(pieces)
        except BaseException:
            if not handed:
                output.unwritten_ticks += _ticks_of(items)
            raise
        if output.reader_gone:
            return
        # A backlog is queued items that need no wait: without this, the whole of it would be
        # encoded in one turn of the loop. One chunk, then the sockets.
        await asyncio.sleep(0)
