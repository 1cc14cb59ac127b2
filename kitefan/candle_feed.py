"""Candles from a running source: the builder fed from a feed's (or a Redis tail's) tick batches,
bars closed on a timer when no tick comes, and written as records or to Parquet.

:func:`feed_candles` runs a :class:`~kitefan.candles.CandleBuilder` over an async source of
events (``feed.ticks()``, ``feed.events()``, a :class:`~kitefan.tail.RemoteFeed`), handing every
batch of closed bars to ``on_bars``; a timer calls :meth:`~kitefan.candles.CandleBuilder.close_due`
every ``close_every_s``, so a bar closes at its end plus the grace even when its symbol stops
ticking. Both run on the event loop, one after the other, so the builder needs no lock.

:class:`RecordSink` writes bars as JSON lines or CSV through
:class:`~kitefan.output.RecordOutput` (stdout or a file, never blocking the loop);
:class:`ParquetSink` writes them to a Parquet file, a row group every ``rows`` bars and at the end.

Owns: ``feed_candles``, ``RecordSink``, ``ParquetSink``, ``CandleSink``. Must not import rich or
typer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from kitefan.candles import Candle, CandleBuilder
from kitefan.errors import KitefanError
from kitefan.events import Event, TickBatch
from kitefan.manager import EventStream
from kitefan.output import RecordOutput

__all__ = ["CandleSink", "ParquetSink", "RecordSink", "feed_candles"]


async def feed_candles(
    source: AsyncIterable[Event] | EventStream[Event],
    builder: CandleBuilder,
    on_bars: Callable[[list[Candle]], Awaitable[None]],
    *,
    on_batch: Callable[[TickBatch], None] | None = None,
    close_every_s: float = 0.1,
) -> None:
    """Feed ``builder`` from ``source`` until the source ends or this is cancelled.

    ``on_batch`` sees every tick batch first (the dashboard's board); ``on_bars`` gets the bars
    each batch or timer tick closed, in order.
    """
    loop = asyncio.get_running_loop()
    reader = loop.create_task(_read(source, builder, on_bars, on_batch))
    timer = loop.create_task(_close_on_time(builder, on_bars, close_every_s))
    try:
        done, _ = await asyncio.wait({reader, timer}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
    finally:
        for task in (reader, timer):
            task.cancel()
        await asyncio.gather(reader, timer, return_exceptions=True)


async def _read(
    source: AsyncIterable[Event] | EventStream[Event],
    builder: CandleBuilder,
    on_bars: Callable[[list[Candle]], Awaitable[None]],
    on_batch: Callable[[TickBatch], None] | None,
) -> None:
    if isinstance(source, EventStream):
        async for first in source:
            for item in (first, *source.drain()):
                await _take(item, builder, on_bars, on_batch)
            await asyncio.sleep(0)  # a backlog is taken a drain at a time, the sockets between
    else:
        async for item in source:
            await _take(item, builder, on_bars, on_batch)


async def _take(
    item: Event,
    builder: CandleBuilder,
    on_bars: Callable[[list[Candle]], Awaitable[None]],
    on_batch: Callable[[TickBatch], None] | None,
) -> None:
    if not isinstance(item, TickBatch):
        return
    if on_batch is not None:
        on_batch(item)
    bars = builder.add(item)
    if bars:
        await on_bars(bars)


async def _close_on_time(
    builder: CandleBuilder, on_bars: Callable[[list[Candle]], Awaitable[None]], every_s: float
) -> None:
    while True:
        await asyncio.sleep(every_s)
        bars = builder.close_due()
        if bars:
            await on_bars(bars)


class CandleSink(Protocol):
    """Where bars go: written as they close, counted, finished at the stop."""

    written: int

    async def write(self, candles: Sequence[Candle]) -> None: ...

    async def finish(self) -> None: ...


class RecordSink:
    """Bars as JSON lines or CSV to a descriptor (stdout) or a file, through ``RecordOutput``.

    Args:
        encode: bars to the bytes of their lines.
        header: written first (the CSV header), or empty.
        path: a file to write (created or truncated), else ``fd``.
    """

    def __init__(
        self,
        encode: Callable[[Sequence[Candle]], bytes],
        *,
        header: bytes = b"",
        path: Path | None = None,
        fd: int = 1,
    ) -> None:
        self._encode = encode
        self._header = header
        self._path = path
        self._fd = fd
        self._own_fd: int | None = None
        self._output: RecordOutput | None = None
        self.written = 0

    async def open(self) -> None:
        fd = self._fd
        if self._path is not None:
            try:
                fd = self._own_fd = os.open(
                    self._path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644
                )
            except OSError as exc:
                raise KitefanError(
                    f"--output: cannot write {self._path}: {exc.strerror or exc}"
                ) from None
        self._output = RecordOutput(fd)
        await self._output.open()
        if self._header:
            await self._output.write([(self._header, 0)])

    @property
    def reader_gone(self) -> bool:
        return self._output is not None and self._output.reader_gone

    async def write(self, candles: Sequence[Candle]) -> None:
        output = self._output
        assert output is not None, "open() first"
        # Each bar counts as one "tick" of the output: what reached the reader whole.
        await output.write([(self._encode(candles), len(candles))])

    async def finish(self, grace_s: float = 1.5) -> None:
        output = self._output
        if output is None:
            return
        await output.finish(asyncio.get_running_loop().time() + grace_s)
        self.written = output.written_ticks
        if self._own_fd is not None:
            os.close(self._own_fd)
            self._own_fd = None
        if output.failure is not None:
            raise output.failure


class ParquetSink:
    """Bars to a Parquet file: a row group every ``rows`` bars, and the rest at the end.

    Args:
        to_table: bars to a ``pyarrow.Table`` (:func:`kitefan.render.candles.candles_to_arrow`).
    """

    def __init__(
        self, path: Path, to_table: Callable[[Sequence[Candle]], Any], *, rows: int = 50_000
    ) -> None:
        self.path = path
        self._to_table = to_table
        self._rows = rows
        self._pending: list[Candle] = []
        self._writer: Any = None
        self.written = 0

    async def open(self) -> None:
        import pyarrow.parquet as pq

        schema = self._to_table([]).schema
        try:
            self._writer = pq.ParquetWriter(str(self.path), schema)
        except OSError as exc:
            raise KitefanError(f"--output: cannot write {self.path}: {exc}") from None

    async def write(self, candles: Sequence[Candle]) -> None:
        self._pending += candles
        if len(self._pending) >= self._rows:
            await self._flush()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and self._writer is not None:
            table = self._to_table(pending)
            await asyncio.to_thread(self._writer.write_table, table)
            self.written += len(pending)

    async def finish(self) -> None:
        await self._flush()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.to_thread(writer.close)
