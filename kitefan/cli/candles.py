"""``kitefan candles``: OHLC bars of the config's symbols (or the demo's, or a Redis stream's),
live on a dashboard, or as JSON lines, CSV or Parquet.

The bars are :class:`kitefan.candles.CandleBuilder`'s, fed by
:func:`kitefan.candle_feed.feed_candles` from ``feed.ticks()`` of a
:class:`~kitefan.manager.FeedManager` (``--config``, ``--demo``) or from a
:class:`~kitefan.tail.RemoteFeed` (``--from redis://``), or straight from a
:class:`~kitefan.recording.Recording`'s tick batches (``--recording``, its receive times the
clock); the records and the dashboard are
:mod:`kitefan.render.candles`'. At the stop, the bars still forming are not written (they are
not complete): the summary counts them and the ticks they hold.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live

from kitefan.candle_feed import CandleSink, ParquetSink, RecordSink, feed_candles
from kitefan.candles import (
    DEFAULT_ANCHORS,
    DEFAULT_GRACE_S,
    EXCHANGE_OF_SEGMENT,
    Candle,
    CandleBuilder,
    exchange_of_name,
    format_interval,
    parse_anchor,
    parse_interval,
)
from kitefan.cli.app import app
from kitefan.cli.terminal import (
    CONFIG,
    DEBUG,
    DURATION,
    LOG_FILE,
    err,
    log_formatter,
    out,
    reported_errors,
    warn,
)
from kitefan.connection import SecretFilter
from kitefan.events import TickBatch
from kitefan.loader import demo_config_path, find_config_path, load_config
from kitefan.models import segment_of
from kitefan.render.candles import (
    CandleBoard,
    candles_csv_header,
    candles_dashboard,
    candles_to_arrow,
    encode_candles_csv,
    encode_candles_jsonl,
    require_pyarrow,
)
from kitefan.render.dashboard import SortBy, TickBoard
from kitefan.runner import StopSignal, running_feed, until_stopped
from kitefan.settings import DEFAULT_PUBLISH_STREAM, AppConfig, RedisURL

if TYPE_CHECKING:
    from kitefan.recording import Recording

__all__ = ["CandleFormat", "candles"]


class CandleFormat(StrEnum):
    LIVE = "live"
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


@dataclass
class _Tally:
    """What the summary says."""

    source: str = ""
    received: int = 0
    dropped: int = 0
    written: int = 0
    reason: str = ""
    seconds: float = 0.0
    builder: CandleBuilder | None = None
    forming: int = 0
    forming_ticks: int = 0
    names: list[str] = field(default_factory=list)


@app.command()
def candles(
    config_path: Annotated[Path | None, CONFIG] = None,
    demo: Annotated[
        bool,
        typer.Option("--demo", help="No config, no account: bars of the bundled demo."),
    ] = False,
    source_url: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
            help="Bars of what `kitefan stream --publish` writes to this Redis (from now on).",
        ),
    ] = None,
    stream_name: Annotated[
        str, typer.Option("--stream", metavar="NAME", help="With --from: the stream to read.")
    ] = DEFAULT_PUBLISH_STREAM,
    recording_path: Annotated[
        Path | None,
        typer.Option(
            "--recording",
            metavar="PATH",
            help="Bars of a recording (`kitefan stream --record PATH`), closed by its own clock.",
        ),
    ] = None,
    interval_text: Annotated[
        str,
        typer.Option(
            "--interval", metavar="INTERVAL", help="The bar length: 1s to 1d (5s, 1m, 15m, 1h, 1d)."
        ),
    ] = "1m",
    output: Annotated[
        CandleFormat | None,
        typer.Option(
            "--format",
            help="live dashboard, JSON lines, CSV or Parquet [default: live on a terminal, "
            "else jsonl].",
        ),
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option("--output", help="Write the bars to this file (Parquet needs one)."),
    ] = None,
    duration: Annotated[float | None, DURATION] = None,
    grace_text: Annotated[
        str,
        typer.Option(
            "--grace",
            metavar="SECONDS",
            help="How long after its end a bar waits for late ticks before it closes "
            "(1s, 500ms, 0).",
        ),
    ] = f"{DEFAULT_GRACE_S:g}s",
    fill: Annotated[
        bool,
        typer.Option(
            "--fill",
            help="Write a bar for every interval, flat at the previous close when no "
            "tick came (without it: only bars with ticks).",
        ),
    ] = False,
    anchor_texts: Annotated[
        list[str] | None,
        typer.Option(
            "--anchor",
            metavar="EXCHANGE=HH:MM",
            help="Start this exchange's bars at this time (IST) plus whole intervals "
            "(without it: NSE, NFO, BSE, BFO, CDS 09:15; MCX 09:00). Repeatable.",
        ),
    ] = None,
    sort: Annotated[
        SortBy,
        typer.Option(
            "--sort",
            help="Dashboard: which symbols come first, as in `kitefan stream`: movers, active, "
            "volume or symbol.",
        ),
    ] = SortBy.SYMBOL,
    watch: Annotated[
        str | None,
        typer.Option(
            "--watch", metavar="SYM,...", help="Dashboard: always show these symbols first."
        ),
    ] = None,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Build OHLC bars from the ticks, aligned to the session (09:15 IST for NSE and its
    derivatives, 09:00 for MCX), closed after a grace for late ticks.

    On a terminal it shows each symbol's forming bar and its last closed ones; piped, or with
    --output, it writes one record per closed bar. Ctrl-C or SIGTERM stops it (a summary on
    stderr, exit code 0); the bars still forming then are not written, and are counted.

    Examples:

    \b
      kitefan candles --demo
      kitefan candles --demo --interval 5s --format jsonl | jq -c '[.symbol, .close]'
      kitefan candles --from redis://127.0.0.1:6379 --interval 1m --output bars.csv
      kitefan candles --recording ticks/2026-12-01.kfr --interval 5m --output bars.parquet

    With --recording, the recording's receive times are the clock: a bar closes when a frame
    received after its end plus the grace is read, and at the recording's end the bars still
    forming are not written (and are counted), as at a stop.
    """
    with reported_errors(debug, log_file):
        fmt = output or (
            CandleFormat.LIVE
            if out.is_terminal and output_file is None and recording_path is None
            else CandleFormat.JSONL
        )
        interval = _interval(interval_text)
        grace = _grace(grace_text)
        anchors = _anchors(anchor_texts or [])
        if fmt is CandleFormat.LIVE and output_file is not None:
            raise typer.BadParameter(
                "the dashboard writes no file: choose --format jsonl, csv or parquet",
                param_hint="--output",
            )
        if fmt is CandleFormat.PARQUET:
            if output_file is None:
                raise typer.BadParameter(
                    "Parquet is written to a file: add --output FILE.parquet", param_hint="--format"
                )
            require_pyarrow()
        sources = [
            name
            for name, given in (
                ("--config", config_path),
                ("--demo", demo),
                ("--from", source_url),
                ("--recording", recording_path),
            )
            if given
        ]
        if len(sources) > 1:
            raise typer.BadParameter(
                f"{' and '.join(sources)} are two sources: give one", param_hint=sources[-1]
            )
        if recording_path is not None and fmt is CandleFormat.LIVE:
            raise typer.BadParameter(
                "a recording's bars are written, not shown: choose --format jsonl, csv or parquet",
                param_hint="--format",
            )
        if log_file is None:
            _quiet_logging(debug, fmt)
        names = _Names()
        builder = CandleBuilder(
            interval,
            # a recording's bars close by its receive times, never by the wall clock
            clock=None if recording_path is not None else time.time,
            grace=grace,
            fill=fill,
            anchors=anchors,
            exchange_of=names.exchange_of,
        )
        tally = _Tally(builder=builder)
        if recording_path is not None:
            from kitefan.recording import Recording

            recording = Recording(recording_path)
            names.of = recording.name_of
            work = functools.partial(_recorded, recording, names)
        elif source_url is not None:
            from kitefan.settings import parse_redis_url

            try:
                target = parse_redis_url(source_url.strip())
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--from") from None
            if not stream_name.strip():
                raise typer.BadParameter("must not be empty", param_hint="--stream")
            work = functools.partial(_remote, target, stream_name, names)
        else:
            config_file = demo_config_path() if demo else find_config_path(config_path)
            config = load_config(config_file)
            for warning in config.warnings:
                warn(warning)
            watched = _watched(watch, {s.name: s.token for s in config.symbols})
            work = functools.partial(_local, config, demo, watched, names)
        sink = _sink(fmt, output_file, names)
        asyncio.run(work(builder, fmt, sink, duration, sort, tally))
        _summary(tally, fmt)


def _interval(text: str) -> int:
    try:
        return parse_interval(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--interval") from None


def _grace(text: str) -> float:
    value = text.strip().lower()
    scale = 1.0
    if value.endswith("ms"):
        value, scale = value[:-2], 0.001
    elif value.endswith("s"):
        value = value[:-1]
    try:
        seconds = float(value) * scale
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise typer.BadParameter(
            f"{text!r} is not a grace: give seconds from 0 to 3600, like 1s, 500ms or 0",
            param_hint="--grace",
        )
    return seconds


def _anchors(texts: Sequence[str]) -> dict[str, int]:
    anchors = dict(DEFAULT_ANCHORS)
    known = {*DEFAULT_ANCHORS, *EXCHANGE_OF_SEGMENT.values()}
    for text in texts:
        try:
            exchange, seconds = parse_anchor(text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--anchor") from None
        if exchange not in known:
            raise typer.BadParameter(
                f"{exchange} is not an exchange: give one of {', '.join(sorted(known))}",
                param_hint="--anchor",
            )
        anchors[exchange] = seconds
    return anchors


def _watched(text: str | None, by_name: dict[str, int]) -> tuple[int, ...]:
    if text is None:
        return ()
    tokens = set(by_name.values())
    out: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        token = int(item) if item.isdigit() else by_name.get(item)
        if token is None or token not in tokens:
            raise typer.BadParameter(
                f"{item!r} is not a symbol of this config (give a token or "
                "EXCHANGE:TRADINGSYMBOL of its symbols)",
                param_hint="--watch",
            )
        out.append(token)
    return tuple(out)


def _quiet_logging(debug: bool, fmt: CandleFormat) -> None:
    level = logging.DEBUG if debug else logging.WARNING
    if fmt is CandleFormat.LIVE:
        level = logging.CRITICAL  # log lines on stderr would draw over the dashboard
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter())
    handler.addFilter(SecretFilter())
    root = logging.getLogger("kitefan")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _sink(fmt: CandleFormat, path: Path | None, names: _Names) -> CandleSink | None:
    """Where the bars go (none for the dashboard); opened when the loop runs."""
    match fmt:
        case CandleFormat.LIVE:
            return None
        case CandleFormat.PARQUET:
            assert path is not None
            return ParquetSink(path, lambda bars: candles_to_arrow(bars, names.name_of))
        case CandleFormat.CSV:
            return RecordSink(
                lambda bars: encode_candles_csv(bars, names.name_of),
                header=candles_csv_header().encode(),
                path=path,
            )
        case _:
            return RecordSink(lambda bars: encode_candles_jsonl(bars, names.name_of), path=path)


class _Names:
    """The running source's names (the feed's or the Redis stream's), once it is open."""

    def __init__(self) -> None:
        self.of: Callable[[int], str] = str

    def name_of(self, token: int) -> str:
        return self.of(token)

    def exchange_of(self, token: int) -> str:
        return exchange_of_name(self.of(token)) or EXCHANGE_OF_SEGMENT.get(segment_of(token), "NSE")


async def _local(
    config: AppConfig,
    demo: bool,
    watched: tuple[int, ...],
    names: _Names,
    builder: CandleBuilder,
    fmt: CandleFormat,
    sink: CandleSink | None,
    duration: float | None,
    sort: SortBy,
    tally: _Tally,
) -> None:
    loop = asyncio.get_running_loop()
    with StopSignal(duration, deferred=True) as stop:
        if sink is not None:
            await sink.open()  # type: ignore[attr-defined]
        async with running_feed(config, demo=demo) as feed:
            names.of = feed.name_of
            stats = feed.stats()
            tally.source = f"{len(stats.keys)} keys ({stats.totals.symbols:,} symbols)"
            events = feed.ticks()
            started = loop.time()
            stop.start_timer()
            tokens = [spec.token for spec in feed.config.symbols]
            title = "kitefan candles demo" if demo else "kitefan candles"
            await _serve(
                events,
                builder,
                fmt,
                sink,
                stop,
                (sort, watched, tokens, names),
                tally,
                title=title,
                started=started,
            )
            tally.seconds = loop.time() - started
            await feed.close()
            events.close()
            # Shed by a full queue, or still queued at the stop: never reached the builder.
            tally.received = events.received_ticks
            tally.dropped = events.received_ticks - builder.ticks


async def _remote(
    target: RedisURL,
    stream: str,
    names: _Names,
    builder: CandleBuilder,
    fmt: CandleFormat,
    sink: CandleSink | None,
    duration: float | None,
    sort: SortBy,
    tally: _Tally,
) -> None:
    from kitefan.tail import RemoteFeed

    loop = asyncio.get_running_loop()
    with StopSignal(duration) as stop:
        feed = RemoteFeed(target, stream=stream, start="now", on_warning=warn)
        async with feed:
            if sink is not None:
                await sink.open()  # type: ignore[attr-defined]
            names.of = feed.name_of
            tally.source = f"stream {stream}"
            started = loop.time()
            view = (sort, (), list(feed.symbols), names)
            await _serve(
                feed.events(),
                builder,
                fmt,
                sink,
                stop,
                view,
                tally,
                title=f"kitefan candles {stream}",
                started=started,
            )
            tally.seconds = loop.time() - started
            tally.received = builder.ticks


async def _recorded(
    recording: Recording,
    names: _Names,
    builder: CandleBuilder,
    fmt: CandleFormat,
    sink: CandleSink | None,
    duration: float | None,
    sort: SortBy,
    tally: _Tally,
) -> None:
    """The recording's frames through the builder, as fast as they read; the clock is their
    receive times, so the end of the recording is the last frame's time."""
    assert sink is not None  # the dashboard is refused for a recording
    loop = asyncio.get_running_loop()
    with StopSignal(duration) as stop:
        await sink.open()  # type: ignore[attr-defined]
        started = loop.time()
        tally.source = f"recording {recording.path}"

        async def read() -> None:
            pending: list[Candle] = []
            for n, batch in enumerate(recording.ticks(), 1):
                pending += builder.add(batch)
                if n % 256 == 0:  # hand bars on, and let a signal or the duration in
                    if pending:
                        await sink.write(pending)
                        pending = []
                    await asyncio.sleep(0)
            if pending:
                await sink.write(pending)

        try:
            await until_stopped(stop, read())
            # Closed by the recorded time reached; the rest is forming, as at a stop.
            await sink.write(builder.close_due())
        finally:
            tally.forming, tally.forming_ticks = builder.forming_bars, builder.forming_ticks
            await sink.finish()
            tally.written = sink.written
        tally.seconds = loop.time() - started
        tally.received = builder.ticks
        tally.reason = stop.reason or "the recording ended"
    report = recording.report
    if report.skipped_chunks or report.bad_records:
        warn(
            f"{recording.path}: {report.skipped_chunks:,} chunks ({report.skipped_bytes:,} bytes) "
            f"and {report.bad_records:,} records skipped (they do not check)"
        )
    for end in report.truncated:
        warn(end.describe())


async def _serve(
    source: object,
    builder: CandleBuilder,
    fmt: CandleFormat,
    sink: CandleSink | None,
    stop: StopSignal,
    view: tuple[SortBy, tuple[int, ...], list[int], _Names],
    tally: _Tally,
    *,
    title: str,
    started: float,
) -> None:
    """Bars until the stop; then what closed by then is written, the rest counted."""
    if sink is not None:

        async def write(bars: list[Candle]) -> None:
            await sink.write(bars)

        try:
            await until_stopped(stop, feed_candles(source, builder, write))  # type: ignore[arg-type]
            await sink.write(builder.close_due())
        finally:
            tally.forming, tally.forming_ticks = builder.forming_bars, builder.forming_ticks
            await sink.finish()
            tally.written = sink.written
    else:
        await until_stopped(stop, _live(source, builder, view, title, started))
        builder.close_due()
        tally.forming, tally.forming_ticks = builder.forming_bars, builder.forming_ticks
        tally.written = builder.closed
    tally.reason = stop.reason or "the source ended"


async def _live(
    source: object,
    builder: CandleBuilder,
    view: tuple[SortBy, tuple[int, ...], list[int], _Names],
    title: str,
    started: float,
) -> None:
    sort, watched, tokens, names = view
    listed = set(tokens)
    ticks = TickBoard(listed, names.name_of, sort=sort, watch=watched)
    board = CandleBoard()

    def on_batch(batch: TickBatch) -> None:
        ticks.update(batch)
        if not listed.issuperset(t.values[0] for t in batch.ticks):
            # a symbol of the Redis stream given after this started: show it too
            listed.update(t.values[0] for t in batch.ticks)
            ticks.follow(listed, names.name_of)

    async def on_bars(bars: list[Candle]) -> None:
        board.add(bars)

    loop = asyncio.get_running_loop()
    work = loop.create_task(
        feed_candles(source, builder, on_bars, on_batch=on_batch)  # type: ignore[arg-type]
    )
    screen = Console(highlight=False)
    try:
        with Live(
            console=screen, auto_refresh=False, transient=False, redirect_stderr=False
        ) as live:
            while not work.done():
                screen_view = candles_dashboard(
                    ticks,
                    board,
                    builder,
                    names.name_of,
                    now=time.time(),
                    title=title,
                    uptime_s=loop.time() - started,
                    width=screen.width,
                    height=screen.height,
                )
                await asyncio.to_thread(live.update, screen_view, refresh=True)
                await asyncio.sleep(0.25)
    finally:
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
    work.result()


def _summary(tally: _Tally, fmt: CandleFormat) -> None:
    builder = tally.builder
    assert builder is not None
    why = {"duration": "duration reached", "SIGINT": "interrupted", "SIGTERM": "terminated"}.get(
        tally.reason, tally.reason or "stopped"
    )
    kind = "closed" if fmt is CandleFormat.LIVE else "written"
    filled = f" ({builder.filled:,} flat)" if builder.filled else ""
    err.print(
        f"kitefan: {why} after {tally.seconds:.1f} s: {tally.received:,} ticks from "
        f"{tally.source}, {tally.written:,} {format_interval(builder.interval)} bars {kind}"
        f"{filled}, {builder.late:,} late ticks, {tally.forming:,} forming bars not written "
        f"({tally.forming_ticks:,} ticks), {tally.dropped:,} dropped (shed by a full queue, or "
        "queued at the stop)",
        markup=False,
        highlight=False,
    )
