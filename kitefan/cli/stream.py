"""``kitefan stream``: stream the config's symbols across its keys, to the terminal or a pipe.

Next to the feed it serves the control socket of its config (:mod:`kitefan.control`, what
``kitefan stats`` and ``kitefan distribute`` talk to; SIGHUP re-reads and applies the config
file), with ``--metrics HOST:PORT``, a Prometheus endpoint (:mod:`kitefan.metrics`), and with
``--publish`` (or the config's ``[publish]``) a publisher of every frame and event to a Redis
stream (:mod:`kitefan.publish`), its own consumer of the feed; with ``--record PATH`` a recorder
of the same (:mod:`kitefan.recording`), another; ``--format none`` writes no records.
With ``--share``, the config's keys are shared with the other ``--share`` processes of it through
the same Redis (:mod:`kitefan.share`): this process streams only the keys it holds a lease on.

A stream narrowed with ``--symbols`` or ``--mode`` stays narrowed when its config is applied
again: the edited file is read and narrowed the same way (the same symbols, their modes and pins
from the file unless ``--mode`` overrides them; new tokens, and symbols of the file outside the
narrowing, are not streamed).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live

from kitefan.cli.app import app
from kitefan.cli.record import RECORD_STREAM, recorded, stop_recording
from kitefan.cli.terminal import (
    CONFIG,
    DURATION,
    LOG_FILE,
    err,
    log_formatter,
    log_to_file,
    out,
    reported_errors,
    warn,
)
from kitefan.connection import SecretFilter
from kitefan.control import ControlServer, Reload
from kitefan.errors import KitefanError
from kitefan.events import Event, Status, TickBatch
from kitefan.loader import demo_config_path, find_config_path, load_config
from kitefan.manager import EventStream, FeedManager
from kitefan.models import Mode
from kitefan.output import Encoder, RecordOutput
from kitefan.render.dashboard import BoardView, SortBy, TickBoard, dashboard
from kitefan.render.health import HealthLines
from kitefan.render.recording import recorded_line
from kitefan.render.records import Names, csv_header, record_pieces
from kitefan.render.stats import redundancy_text
from kitefan.runner import (
    Outcome,
    StopSignal,
    running_feed,
    stream_records,
    switching_every,
    until_stopped,
)
from kitefan.settings import AppConfig, PublishConfig
from kitefan.stats import FeedStats, PublishStats, RedundancyStats

if TYPE_CHECKING:
    from kitefan.lease import LeaseTiming
    from kitefan.publish import Publisher
    from kitefan.share import Sharer

__all__ = ["OutputFormat", "stream"]


class OutputFormat(StrEnum):
    LIVE = "live"
    JSONL = "jsonl"
    CSV = "csv"
    NONE = "none"


@app.command()
def stream(
    config_path: Annotated[Path | None, CONFIG] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="No config, no account: stream the bundled demo from the simulator."
        ),
    ] = False,
    output: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            help="live dashboard, JSON lines, CSV, or none (headless: with --publish) "
            "[default: live on a terminal, else jsonl].",
        ),
    ] = None,
    mode: Annotated[
        Mode | None, typer.Option("--mode", help="Stream every symbol in this mode.")
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(
            "--symbols",
            metavar="SYM[:MODE],...",
            help="Only these symbols: comma-separated tokens or EXCHANGE:TRADINGSYMBOL names, "
            "each with an optional :ltp, :quote or :full suffix for its mode "
            "(NSE:INFY:full,256265); checked before anything connects.",
        ),
    ] = None,
    duration: Annotated[float | None, DURATION] = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            metavar="HOST:PORT",
            help="Serve Prometheus metrics at http://HOST:PORT/metrics (HOST defaults to "
            "127.0.0.1; port 0 picks a free one, printed on stderr).",
        ),
    ] = None,
    publish: Annotated[
        str | None,
        typer.Option(
            "--publish",
            metavar="redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
            help="Also publish every frame and event to a Redis stream, kitefan:frames unless "
            "the config's [publish] names another (it also sets maxlen and format).",
        ),
    ] = None,
    record: Annotated[Path | None, RECORD_STREAM] = None,
    share: Annotated[
        bool,
        typer.Option(
            "--share",
            help="Share the config's keys with its other --share processes (here or on other "
            "machines) through the --publish Redis: each key streams in one process at a time, "
            "and the others take over the keys of one that dies.",
        ),
    ] = False,
    sort: Annotated[
        SortBy,
        typer.Option(
            "--sort",
            help="Dashboard: which symbols the ticks table shows first: movers (largest change "
            "either way), active (most ticks), volume, or symbol (by name).",
        ),
    ] = SortBy.SYMBOL,
    watch: Annotated[
        str | None,
        typer.Option(
            "--watch",
            metavar="SYM,...",
            help="Dashboard: always show these symbols first (tokens or EXCHANGE:TRADINGSYMBOL).",
        ),
    ] = None,
    depth: Annotated[
        str | None,
        typer.Option(
            "--depth",
            metavar="SYM",
            help="Dashboard: show the market depth of this full-mode symbol [default: the first "
            "full-mode row shown].",
        ),
    ] = None,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Log details (the dashboard leaves them to --log-file); show tracebacks.",
        ),
    ] = False,
) -> None:
    """Stream live ticks across every key of the config.

    On a terminal it shows a live dashboard, laid out for the terminal's size (fewer tick rows
    on a small one, "+N more" for those left out; --sort and --watch choose which, --depth whose
    market depth), following the plan as it changes; piped, it writes one JSON object per line.
    Ctrl-C or SIGTERM stops it cleanly (close frames sent, a summary on stderr, exit code 0).
    `kitefan stats` shows how it is doing; `kitefan distribute` (or SIGHUP) applies the edited
    config to it without a restart.

    Examples:

    \b
      kitefan stream --demo
      kitefan stream --demo --format jsonl | jq -c 'select(.type == "status")'
      kitefan stream --symbols NSE:INFY:full,256265 --format csv > ticks.csv
    """
    with reported_errors(debug):
        fmt = output or (OutputFormat.LIVE if out.is_terminal else OutputFormat.JSONL)
        address = _metrics_address(metrics)
        _configure_logging(debug, fmt, log_file)
        config_file = _config_file(config_path, demo)
        config = _narrowed(load_config(config_file), symbols, mode)
        for warning in config.warnings:
            warn(warning)
        _DASHBOARD.set(_dashboard_options(config, sort, watch, depth))
        target = _publish_target(config, publish)
        if share:
            _check_share(config, target, demo)
        if target is not None:
            from kitefan.publish import require_redis

            require_redis()  # before anything connects
        reload = _reloader(config_file, symbols, mode, demo)
        outcome = asyncio.run(
            _run(
                config,
                fmt,
                duration,
                demo,
                config_file=config_file,
                reload=reload,
                metrics=address,
                publish=target,
                record=record if record is not None else _record_path(config),
                share=share,
            )
        )
        _summary(outcome, fmt)


def _record_path(config: AppConfig) -> Path | None:
    """The config's [record] path, which --record overrides."""
    return config.record.path if config.record is not None else None


def _metrics_address(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    from kitefan.metrics import is_loopback, parse_address

    try:
        host, port = parse_address(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--metrics") from None
    if not is_loopback(host):
        warn(
            f"serving metrics on {host}, beyond loopback: whoever can reach this machine can "
            "read them (no secret is in them)"
        )
    return host, port


def _publish_target(config: AppConfig, url: str | None) -> PublishConfig | None:
    """Where to publish: ``--publish`` (with the config's other [publish] settings), else the
    config's [publish], else nowhere."""
    if url is None:
        return config.publish
    from kitefan.settings import parse_redis_url

    try:
        target = parse_redis_url(url.strip())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--publish") from None
    if config.publish is None:
        return PublishConfig(target)
    return replace(config.publish, url=target)


def _check_share(config: AppConfig, target: PublishConfig | None, demo: bool) -> None:
    """What --share needs: a Redis to hold the leases in, a real ticker, a long enough lease."""
    if demo:
        raise typer.BadParameter(
            "the demo runs a simulator of its own in each process: nothing to share",
            param_hint="--share",
        )
    if target is None:
        raise typer.BadParameter(
            "needs a Redis to hold the keys' leases: add --publish redis://HOST[:PORT][/DB] "
            "(or [publish] url in the config)",
            param_hint="--share",
        )
    problem = _lease_timing(config).problem()
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="--share")


def _lease_timing(config: AppConfig) -> LeaseTiming:
    from kitefan.lease import LeaseTiming

    return LeaseTiming(config.tuning.share_lease_s, config.tuning.close_timeout_s)


def _configure_logging(debug: bool, fmt: OutputFormat, log_file: Path | None = None) -> None:
    if log_file is not None:
        log_to_file(log_file, debug)
        return
    # What the log would warn about, the dashboard's events show, and a pipe's stderr gets as
    # `warning:` lines (render/health.py): log lines on stderr only with --debug, and never over
    # the dashboard, where only a file takes them.
    level = logging.DEBUG if debug else logging.CRITICAL
    if fmt is OutputFormat.LIVE:
        if debug:
            warn("the dashboard does not show --debug log lines: add --log-file PATH to keep them")
        level = logging.CRITICAL
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter())
    handler.addFilter(SecretFilter())
    root = logging.getLogger("kitefan")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _config_file(config_path: Path | None, demo: bool) -> Path:
    if demo:
        if config_path is not None:
            raise typer.BadParameter("--demo streams the bundled demo config; drop --config")
        return demo_config_path()
    return find_config_path(config_path)


def _reloader(path: Path, symbols: str | None, mode: Mode | None, demo: bool) -> Reload:
    """How the running stream re-reads its config (``kitefan distribute``, SIGHUP)."""

    def reload(running: AppConfig) -> AppConfig:
        edited = _narrowed(load_config(path), symbols, mode)
        if demo and [k.id for k in edited.keys] == [k.id for k in running.keys]:
            # The demo's simulator runs in this process on its own port, and renews its tokens.
            keys = tuple(
                replace(k, credential=r.credential)
                for k, r in zip(edited.keys, running.keys, strict=True)
            )
            edited = replace(edited, url=running.url, keys=keys)
        return edited

    return reload


def _narrowed(config: AppConfig, symbols: str | None, mode: Mode | None) -> AppConfig:
    specs = config.symbols
    if symbols is not None:
        from kitefan.loader import select_symbols

        listed = [s.strip() for s in symbols.split(",") if s.strip()]
        if not listed:
            raise typer.BadParameter(
                "names no symbol: give tokens or EXCHANGE:TRADINGSYMBOL names, comma-separated, "
                "or leave --symbols out to stream the config's symbols",
                param_hint="--symbols",
            )
        specs = select_symbols(config, listed)
    if mode is not None:
        specs = tuple(replace(s, mode=mode) for s in specs)
    return replace(config, symbols=specs)


async def _run(
    config: AppConfig,
    fmt: OutputFormat,
    duration: float | None,
    demo: bool,
    *,
    config_file: Path,
    reload: Reload,
    metrics: tuple[str, int] | None,
    publish: PublishConfig | None = None,
    record: Path | None = None,
    share: bool = False,
) -> Outcome:
    loop = asyncio.get_running_loop()
    with StopSignal(duration, deferred=True) as stop:
        async with contextlib.AsyncExitStack() as stack:
            # The control socket first: a second stream of this config stops here, before it
            # takes any of the keys' connection slots. A demo has its own simulator, and so its
            # own socket (named with its pid): several demos run at once.
            control = await stack.enter_async_context(
                ControlServer(config_file, own=demo, shared=share)
            )
            exporter = None
            if metrics is not None:
                from kitefan.metrics import MetricsServer

                host, port = metrics
                try:
                    exporter = await stack.enter_async_context(MetricsServer(host, port))
                except OSError as exc:
                    raise KitefanError(
                        f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
                    ) from None
                err.print(f"kitefan: metrics at {exporter.url}", markup=False, highlight=False)
            output = None
            if fmt not in (OutputFormat.LIVE, OutputFormat.NONE):
                output = RecordOutput(sys.stdout.fileno())
                await output.open()
                if fmt is OutputFormat.CSV:
                    await output.write([(csv_header().encode(), 0)])
            recorder = None
            if record is not None:
                from kitefan.recording import Recorder

                # Opened before the feed: a path that cannot be written fails before connecting.
                recorder = await stack.enter_async_context(Recorder(record, on_warning=warn))
            feed = await stack.enter_async_context(running_feed(config, demo=demo, shared=share))
            started_at = loop.time()
            stop.start_timer()
            # Registered before any connection has run (entering the feed does not yield to
            # them), so this stream sees every tick the feed receives.
            events = feed.events()
            publisher = _publisher(feed, publish, stack) if publish is not None else None
            health = None if fmt is OutputFormat.LIVE else _health(feed)
            if recorder is not None:
                recorder.symbols = lambda: {s.token: s.name for s in feed.config.symbols}
                recording = loop.create_task(recorder.consume(feed.events()))
                feed.report_recording(recorder.stats)
                stack.push_async_callback(stop_recording, recording)
            sharer = _sharer(feed, publish, stack) if share and publish is not None else None
            if exporter is not None:
                exporter.attach(feed.stats)
            control.attach(
                feed,
                reload,
                metrics_url=exporter.url if exporter else None,
                share=sharer.group_document if sharer is not None else None,
            )
            # The config, its instruments and the plan live as long as the stream: keep them out
            # of every later full collection, which would otherwise pause the sockets for tens of
            # milliseconds with tens of thousands of symbols.
            gc.freeze()
            if output is not None:
                outcome = await stream_records(
                    feed,
                    events,
                    output,
                    _encoder(fmt, feed.names),
                    stop,
                    started_at=started_at,
                    in_thread=True,
                    observe=_reporter(health),
                )
            else:
                work = (
                    _live(feed, events, demo)
                    if fmt is OutputFormat.LIVE
                    else _discard(events, health)
                )
                await until_stopped(stop, work)
                seconds = loop.time() - started_at
                stats = feed.stats()
                await feed.close()
                events.close()
                outcome = Outcome(
                    stats=stats,
                    reason=stop.reason,
                    seconds=seconds,
                    received=events.received_ticks,
                    written=events.delivered_ticks,
                    dropped=events.dropped_ticks,
                    dropped_events=events.dropped_events,
                )
            if publisher is not None:
                outcome = await _published(outcome, *publisher)
            if health is not None:
                for line in health.flush():
                    _say(line)
            if recorder is not None:
                outcome = await recorded(outcome, recorder, recording)
    return outcome


def _say(line: str) -> None:
    err.print(line, markup=False, highlight=False)


def _health(feed: FeedManager) -> HealthLines:
    """The feed's health as stderr lines (a pipe's records leave no dashboard to show it)."""

    def moved_to(key_id: str) -> list[str]:
        home, now = feed.home_plan, feed.plan
        tokens = [
            s.token
            for kp in home.keys
            if kp.key_id == key_id
            for c in kp.connections
            for s in c.symbols
        ]
        carrying = {where[0] for where in map(now.where, tokens) if where is not None}
        in_order = feed.keys()
        return [k for k in in_order if k in carrying and k != key_id]

    return HealthLines(moved_to)


def _reporter(health: HealthLines | None) -> Callable[[Sequence[Event]], None] | None:
    """What tells ``health`` of every event before it is encoded (on the loop: the encoder
    runs in a worker thread)."""
    if health is None:
        return None

    def report(events: Sequence[Event]) -> None:
        for line in health.take([e for e in events if not isinstance(e, TickBatch)], time.time()):
            _say(line)

    return report


def _publisher(
    feed: FeedManager, target: PublishConfig, stack: contextlib.AsyncExitStack
) -> tuple[Publisher, asyncio.Task[None]]:
    """The feed's publisher to Redis, started as its own consumer of ``feed.events()``."""
    from kitefan.publish import Publisher

    publisher = Publisher(
        target,
        name_of=feed.name_of,
        symbols=lambda: {s.token: s.name for s in feed.config.symbols},
        # An event of the feed: a line on a pipe's stderr, a line of the dashboard's events
        # (a warning printed on stderr would draw over the dashboard).
        on_warning=lambda message: feed.announce(Status.PUBLISH_FAILED, message),
    )
    task = asyncio.get_running_loop().create_task(publisher.run(feed.events()))
    feed.report_publishing(publisher.stats)
    stack.push_async_callback(_stop_publisher, task)
    return publisher, task


def _sharer(feed: FeedManager, target: PublishConfig, stack: contextlib.AsyncExitStack) -> Sharer:
    """The feed's share of its config's keys, started; stopped (its leases released) after the
    feed has closed its connections."""
    from kitefan.broker import node_name
    from kitefan.lease import group_id
    from kitefan.share import Sharer

    config = feed.config
    sharer = Sharer(
        feed,
        target,
        group=group_id(config.url, [(k.id, k.credential.api_key) for k in config.keys]),
        node=node_name(),
        timing=_lease_timing(config),
        on_warning=warn,
    )
    task = asyncio.get_running_loop().create_task(sharer.run(), name="kitefan:share")
    stack.push_async_callback(_stop_publisher, task)
    return sharer


async def _stop_publisher(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _published(outcome: Outcome, publisher: Publisher, task: asyncio.Task[None]) -> Outcome:
    """The outcome with the publisher's final figures, once it has flushed (the feed is closed,
    so its events have ended)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3.0):
            await asyncio.shield(task)
    return replace(outcome, stats=replace(outcome.stats, publish=publisher.stats()))


def _encoder(fmt: OutputFormat, names: Callable[[], Names]) -> Encoder:
    """Events to pieces of output, one per event, each with the ticks it holds; ``names`` is
    asked once per chunk of events (the feed's names, a dict the compiled encoder reads
    without a call per tick). It runs in the records' worker thread."""
    csv = fmt is OutputFormat.CSV

    def encode(events: Sequence[Event]) -> list[tuple[bytes, int]]:
        return record_pieces(events, names(), csv=csv)

    return encode


@dataclass(frozen=True)
class _DashboardOptions:
    sort: SortBy = SortBy.SYMBOL
    watch: tuple[int, ...] = ()
    depth: int | None = None


#: The dashboard's options, from ``stream()`` to ``_live`` (set before the event loop starts,
#: whose tasks inherit it), so the path between them does not carry what only the dashboard uses.
_DASHBOARD: contextvars.ContextVar[_DashboardOptions | None] = contextvars.ContextVar(
    "kitefan_dashboard", default=None
)


def _dashboard_options(
    config: AppConfig, sort: SortBy, watch: str | None, depth: str | None
) -> _DashboardOptions:
    watched = _tokens_of(config, watch, "--watch") if watch is not None else ()
    shown = _tokens_of(config, depth, "--depth") if depth is not None else ()
    if len(shown) > 1:
        raise typer.BadParameter(f"one symbol, not {len(shown)}", param_hint="--depth")
    return _DashboardOptions(sort, watched, shown[0] if shown else None)


def _tokens_of(config: AppConfig, text: str, option: str) -> tuple[int, ...]:
    """The tokens of ``SYM,...``: symbols of the stream, by token or EXCHANGE:TRADINGSYMBOL."""
    by_name = {spec.name: spec.token for spec in config.symbols}
    tokens = {spec.token for spec in config.symbols}
    out: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        token = int(item) if item.isdigit() else by_name.get(item)
        if token is None or token not in tokens:
            raise typer.BadParameter(
                f"{item!r} is not a symbol of this stream (give a token or EXCHANGE:TRADINGSYMBOL "
                "of the config's symbols)",
                param_hint=option,
            )
        out.append(token)
    return tuple(out)


def _streamed(feed: FeedManager) -> list[int]:
    """The tokens the feed streams now, by its current plan (after any failover)."""
    plan = feed.plan
    return [spec.token for spec in feed.config.symbols if plan.where(spec.token) is not None]


async def _discard(events: EventStream[Event], health: HealthLines | None = None) -> None:
    """Headless (``--format none``): take what the feed hands on, so nothing counts as dropped
    that only this output would have written; say the feed's health on stderr."""
    async for first in events:
        items = [first, *events.drain()]
        if health is not None:
            for line in health.take(
                [e for e in items if not isinstance(e, TickBatch)], time.time()
            ):
                _say(line)


#: Ticks the dashboard takes into its board between two turns of the event loop.
_BOARD_CHUNK_TICKS = 2048
#: How often the dashboard redraws, at most; and drawing takes at most 1 / _DRAW_FACTOR of the time.
_REFRESH_S = 0.25
_DRAW_FACTOR = 10
#: The switch interval while the dashboard is drawn (see kitefan.runner.switching_every).
_DRAW_SWITCH_S = 0.0005


async def _live(feed: FeedManager, events: EventStream[Event], demo: bool) -> None:
    options = _DASHBOARD.get() or _DashboardOptions()
    name_of = feed.name_of
    board = TickBoard(
        _streamed(feed), name_of, sort=options.sort, watch=options.watch, depth=options.depth
    )
    following = (feed.config, feed.plan)
    recent: deque[Event] = deque(maxlen=20)
    # The stats cost O(symbols) (each connection counts its symbols by mode): taken once a
    # second, and at once after a status event, while the ticks refresh four times a second.
    stats, stats_at = feed.stats(), time.monotonic()
    title = "kitefan demo" if demo else "kitefan"
    # Live counts the lines it drew to redraw in place: a console that does not soft-wrap keeps
    # that count right when a line is wider than the terminal.
    screen = Console(highlight=False)
    with Live(console=screen, auto_refresh=False, transient=False, redirect_stderr=False) as live:
        while True:
            if feed.config is not following[0] or feed.plan is not following[1]:
                # `kitefan distribute`, SIGHUP or a failover: show what streams now. (Compared
                # by identity: a new plan is a new object, and comparing 27,000 symbols by value
                # four times a second would cost more than the board.)
                following = (feed.config, feed.plan)
                board.follow(_streamed(feed), name_of)
                stats_at = 0.0
            # What queued since the last refresh, a chunk at a time, letting the sockets be read
            # between chunks.
            while len(events):
                for item in events.drain(max_ticks=_BOARD_CHUNK_TICKS):
                    if isinstance(item, TickBatch):
                        board.update(item)
                    else:
                        recent.append(item)
                        stats_at = 0.0
                await asyncio.sleep(0)
            if time.monotonic() - stats_at >= 1.0:
                stats, stats_at = feed.stats(), time.monotonic()
            drawing_from = time.monotonic()
            now = time.time()
            # The board as it is now (the rows a screen can show, decoded), then the layout and
            # the drawing in a thread: the sockets keep being read, the board keeps taking ticks.
            shown = board.view(screen.height, now)
            await asyncio.to_thread(
                _draw, live, shown, stats, name_of, list(recent), now, title, screen
            )
            # Four times a second, unless drawing takes more than a tenth of that: a big screen
            # of a big board then refreshes less often, rather than at the feed's cost.
            took = time.monotonic() - drawing_from
            await asyncio.sleep(max(_REFRESH_S, took * _DRAW_FACTOR) - took)


def _draw(
    live: Live,
    board: BoardView,
    stats: FeedStats,
    name_of: Callable[[int], str],
    events: list[Event],
    now: float,
    title: str,
    screen: Console,
) -> None:
    """Lay the dashboard out and draw it (in a worker thread: nothing here is the loop's)."""
    width, height = screen.width, screen.height
    # Milliseconds of Python in this thread: the loop, woken meanwhile, gets the GIL back within
    # half a millisecond rather than five (loop lag p99 about 4 ms rather than 6.5 at 27,000
    # symbols; see the README's figures).
    with switching_every(_DRAW_SWITCH_S):
        view = dashboard(
            board, stats, name_of, events, now=now, title=title, width=width, height=height
        )
        live.update(view, refresh=True)


def _symbols(stats: FeedStats) -> str:
    """``27,000 symbols``; with redundancy the connections hold each ``r`` times: ``27,000
    symbols, each on 2 keys``."""
    if stats.redundancy is None:
        return f"{stats.totals.symbols:,} symbols"
    r = stats.redundancy.redundancy
    return f"{stats.totals.symbols // r:,} symbols, each on {r} keys"


def _summary(outcome: Outcome, fmt: OutputFormat) -> None:
    stats = outcome.stats
    totals = stats.totals
    why = {"duration": "duration reached", "SIGINT": "interrupted", "SIGTERM": "terminated"}.get(
        outcome.reason, outcome.reason or "stopped"
    )
    written = (
        "" if fmt in (OutputFormat.LIVE, OutputFormat.NONE) else f"{outcome.written:,} written, "
    )
    events = f", {outcome.dropped_events:,} events dropped" if outcome.dropped_events else ""
    err.print(
        f"kitefan: {why} after {outcome.seconds:.1f} s: {outcome.received:,} ticks from "
        f"{len(stats.keys)} keys ({_symbols(stats)}), {written}"
        f"{outcome.dropped:,} dropped{events}, {totals.reconnects} reconnects, "
        f"{totals.decode_errors} undecodable frames{_published_line(stats.publish)}"
        f"{_redundancy_line(stats.redundancy)}"
        f"{recorded_line(outcome.recording)}",
        markup=False,
        highlight=False,
    )


def _redundancy_line(redundancy: RedundancyStats | None) -> str:
    return "" if redundancy is None else f"; {redundancy_text(redundancy.as_dict())}"


def _published_line(publish: PublishStats | None) -> str:
    if publish is None:
        return ""
    events = f", {publish.dropped_events:,} events" if publish.dropped_events else ""
    return (
        f"; published {publish.published_ticks:,} ticks to {publish.url} {publish.stream} "
        f"({publish.dropped_ticks:,} ticks{events} dropped)"
    )
