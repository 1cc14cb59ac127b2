"""``kitefan tail``: print a Redis stream that ``kitefan stream --publish`` writes, the way
``kitefan stream`` prints the same ticks (JSON lines, CSV, or the live dashboard).

Reading and decoding are :class:`kitefan.tail.RemoteFeed`'s; the records are
:mod:`kitefan.render.records`' (an event's record is printed exactly as it was published); the
output goes through :class:`kitefan.output.RecordOutput`, as ``kitefan stream``'s does. With
``--record PATH``, what is read is recorded too (:class:`kitefan.recording.Recorder`).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import deque
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live

from kitefan.broker import Entry, JsonTicks
from kitefan.cli.app import app
from kitefan.cli.record import RECORD
from kitefan.cli.terminal import (
    DEBUG,
    DURATION,
    LOG_FILE,
    PipeConsole,
    err,
    out,
    reported_errors,
    warn,
)
from kitefan.codec import frame_tokens
from kitefan.errors import BrokerError
from kitefan.events import Event, TickBatch
from kitefan.output import RecordOutput
from kitefan.recording import Recorder, RecordStats
from kitefan.render.dashboard import TickBoard, dashboard
from kitefan.render.recording import recorded_line
from kitefan.render.records import csv_header, record_pieces
from kitefan.runner import StopSignal, until_stopped
from kitefan.settings import DEFAULT_PUBLISH_STREAM, RedisURL, parse_redis_url
from kitefan.tail import RemoteFeed, RemoteStats

__all__ = ["TailFormat", "tail"]

_ENTRY_ID = re.compile(r"^[0-9]+(-[0-9]+)?$")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


class TailFormat(StrEnum):
    LIVE = "live"
    JSONL = "jsonl"
    CSV = "csv"


class _Count:
    def __init__(self) -> None:
        self.entries = 0
        self.ticks = 0
        self.written = 0
        self.recording: RecordStats | None = None


@app.command()
def tail(
    url: Annotated[
        str,
        typer.Argument(
            metavar="redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
            help="The Redis server `kitefan stream --publish` writes to.",
            show_default=False,
        ),
    ],
    stream: Annotated[
        str, typer.Option("--stream", metavar="NAME", help="The stream to read.")
    ] = DEFAULT_PUBLISH_STREAM,
    output: Annotated[
        TailFormat | None,
        typer.Option(
            "--format",
            help="live dashboard, JSON lines or CSV [default: live on a terminal, else jsonl].",
        ),
    ] = None,
    start: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="now|start|ID",
            help="now (what is published from now on), start (all the stream holds), or an "
            "entry id to read after.",
        ),
    ] = "now",
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            metavar="NAME",
            help="Read through this consumer group: several tails of one group share the "
            "entries (created at --from if it does not exist).",
        ),
    ] = None,
    consumer: Annotated[
        str | None,
        typer.Option(
            "--consumer",
            metavar="NAME",
            help="This reader's name in the group [default: HOST:PID].",
        ),
    ] = None,
    duration: Annotated[float | None, DURATION] = None,
    record: Annotated[Path | None, RECORD] = None,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Print the ticks and events of a Redis stream that `kitefan stream --publish` writes.

    It prints what `kitefan stream` prints for the same ticks: JSON lines, CSV, or the live
    dashboard. Ctrl-C or SIGTERM stops it (a summary on stderr, exit code 0).

    Examples:

    \b
      kitefan tail redis://127.0.0.1:6379
      kitefan tail redis://127.0.0.1:6379 --from start --format jsonl | head
    """
    with reported_errors(debug, log_file):
        fmt = output or (TailFormat.LIVE if out.is_terminal else TailFormat.JSONL)
        try:
            target = parse_redis_url(url.strip())
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="URL") from None
        if start not in ("now", "start") and not _ENTRY_ID.match(start):
            raise typer.BadParameter(
                f"must be now, start or an entry id (like 1700000000000-0), not {start!r}",
                param_hint="--from",
            )
        if not stream.strip():
            raise typer.BadParameter("must not be empty", param_hint="--stream")
        began = time.monotonic()
        count = _Count()
        reason = asyncio.run(
            _run(target, stream, fmt, start, group, consumer, duration, count, record)
        )
        why = {"duration": "duration reached", "SIGINT": "interrupted", "SIGTERM": "terminated"}
        written = "" if fmt is TailFormat.LIVE else f", {count.written:,} written"
        err.print(
            f"kitefan: {why.get(reason, reason or 'stopped')} after "
            f"{time.monotonic() - began:.1f} s: {count.ticks:,} ticks in {count.entries:,} "
            f"entries from {stream}{written}{recorded_line(count.recording)}",
            markup=False,
            highlight=False,
        )


async def _run(
    target: RedisURL,
    stream: str,
    fmt: TailFormat,
    start: str,
    group: str | None,
    consumer: str | None,
    duration: float | None,
    count: _Count,
    record: Path | None = None,
) -> str:
    loop = asyncio.get_running_loop()
    with StopSignal(duration) as stop:
        feed = RemoteFeed(
            target, stream=stream, start=start, group=group, consumer=consumer, on_warning=warn
        )
        recorder = None
        if record is not None:
            # Opened first: a path that cannot be written fails before Redis is read.
            recorder = Recorder(
                record,
                source=f"tail {target.shown} {stream}",
                symbols=lambda: feed.symbols,
                on_warning=warn,
            )
            await recorder.open()
        try:
            return await _tail(feed, fmt, stop, count, recorder, loop)
        finally:
            if recorder is not None:
                await recorder.close()
                count.recording = recorder.stats()


async def _tail(
    feed: RemoteFeed,
    fmt: TailFormat,
    stop: StopSignal,
    count: _Count,
    recorder: Recorder | None,
    loop: asyncio.AbstractEventLoop,
) -> str:
    async with feed:
        if fmt is TailFormat.LIVE:
            await until_stopped(stop, _live(feed, count, recorder))
        else:
            output = RecordOutput(sys.stdout.fileno())
            await output.open()
            if fmt is TailFormat.CSV:
                await output.write([(csv_header().encode(), 0)])
            try:
                await until_stopped(stop, _records(feed, output, fmt, count, recorder))
            finally:
                await output.finish(loop.time() + 1.5)
                count.written = output.written_ticks
    return stop.reason if stop.is_set() else "the reader closed the output"


def _pieces(entries: Sequence[Entry], fmt: TailFormat, feed: RemoteFeed) -> list[tuple[bytes, int]]:
    """Each entry's records, as ``kitefan stream`` writes them, with the ticks they hold."""
    name_of = feed.name_of
    pieces: list[tuple[bytes, int]] = []
    for entry in entries:
        item = entry.item
        if isinstance(item, TickBatch):
            pieces += record_pieces((item,), name_of, csv=fmt is TailFormat.CSV)
        elif isinstance(item, JsonTicks):
            if fmt is TailFormat.CSV:
                raise BrokerError(
                    f'stream {feed.stream} holds JSON ticks (format = "json"): '
                    "print them with --format jsonl"
                )
            text = "".join(_dumps(record) + "\n" for record in item.records)
            pieces.append((text.encode(), item.count))
        elif fmt is TailFormat.JSONL and entry.record is not None:
            pieces.append(((entry.record + "\n").encode(), 0))
    return pieces


async def _records(
    feed: RemoteFeed,
    output: RecordOutput,
    fmt: TailFormat,
    count: _Count,
    recorder: Recorder | None = None,
) -> None:
    while not output.reader_gone:
        entries = await feed.read()
        if not entries:
            continue
        count.entries += len(entries)
        if recorder is not None:
            for entry in entries:
                if not isinstance(entry.item, JsonTicks):  # no frame to record
                    recorder.add(entry.item)
        pieces = _pieces(entries, fmt, feed)
        count.ticks += sum(ticks for _, ticks in pieces)
        await output.write(pieces)


async def _live(feed: RemoteFeed, count: _Count, recorder: Recorder | None = None) -> None:
    listed = set(feed.symbols)
    board = TickBoard(listed, feed.name_of)
    stats = RemoteStats()
    recent: deque[Event] = deque(maxlen=20)
    screen = PipeConsole(highlight=False)
    reader = asyncio.get_running_loop().create_task(
        _read_into(feed, board, listed, stats, recent, count, recorder)
    )
    try:
        with Live(
            console=screen, auto_refresh=False, transient=False, redirect_stderr=False
        ) as live:
            while not reader.done():
                count.entries = feed.entries_read
                view = dashboard(
                    board,
                    stats.snapshot(),
                    feed.name_of,
                    list(recent),
                    now=time.time(),
                    title=f"kitefan tail {feed.stream}",
                    width=screen.width,
                    height=screen.height,
                )
                await asyncio.to_thread(live.update, view, refresh=True)
                await asyncio.sleep(0.25)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    reader.result()


async def _read_into(
    feed: RemoteFeed,
    board: TickBoard,
    listed: set[int],
    stats: RemoteStats,
    recent: deque[Event],
    count: _Count,
    recorder: Recorder | None = None,
) -> None:
    async for item in feed:
        stats.observe(item)
        if recorder is not None:
            recorder.add(item)
        if isinstance(item, TickBatch):
            count.ticks += item.count
            tokens = frame_tokens(item.frame)
            if not listed.issuperset(tokens):
                # A symbol the stream was given after this tail started: show it too.
                listed.update(tokens)
                board.follow(listed, feed.name_of)
            board.update(item)
        else:
            recent.append(item)
