"""``kitefan stats``: look at the running stream of a config, from another shell.

Finds the stream through its control socket (:mod:`kitefan.control`: the same config path rule as
``kitefan stream``, no other flag), asks it for its stats, and renders them
(:mod:`kitefan.render.stats`) or prints them as JSON. ``--watch`` asks again every
``--interval`` seconds: in place on a terminal, one snapshot after another otherwise.

Owns: the ``stats`` command. Must not import websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar, assert_never

import typer
from rich.live import Live

from kitefan.cli.app import app
from kitefan.cli.terminal import DEBUG, LOG_FILE, PipeConsole, reported_errors
from kitefan.control import ControlClient
from kitefan.control_protocol import NeverTickedSymbol, StatsDocument
from kitefan.loader import demo_config_path, find_config_path
from kitefan.render.stats import stats_view
from kitefan.runner import StopSignal

__all__ = ["StatsFormat", "stats"]

T = TypeVar("T")

#: stdout, wrapping long lines (unlike ``terminal.out``): ``Live`` must know every line it draws
#: to redraw in place.
screen = PipeConsole(highlight=False)
#: The width of the table printed to a file or a pipe: as wide as its lines are.
_UNWRAPPED = 1000


class StatsFormat(StrEnum):
    """How ``kitefan stats`` prints."""

    TABLE = "table"
    JSON = "json"


@app.command("stats")
def stats(
    config_path: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The config the stream runs [default: ./kitefan.toml, then $KITEFAN_CONFIG].",
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="The stream started with `kitefan stream --demo`.")
    ] = False,
    pid: Annotated[
        int | None,
        typer.Option(
            "--pid",
            metavar="PID",
            help="The stream of this process, when several run (demos: each has its own).",
        ),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    fmt: Annotated[
        StatsFormat,
        typer.Option("--format", help="table for people; json (one object per line) for scripts."),
    ] = StatsFormat.TABLE,
    never_ticked: Annotated[
        bool,
        typer.Option(
            "--never-ticked",
            help="List the subscribed symbols that have not ticked since they were subscribed.",
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", min=0.1, metavar="SECONDS", help="Seconds between refreshes with --watch."
        ),
    ] = 1.0,
    count: Annotated[
        int | None,
        typer.Option("--count", min=1, help="With --watch, stop after this many refreshes."),
    ] = None,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Show the running stream's stats: per key and connection, state, traffic and health.

    Exits 1 with one line when no stream of the config is running (or it died), or when several
    run (demos, each with its own simulator) and no --pid says which: the line lists their pids.

    Examples:

    \b
      kitefan stats --demo
      kitefan stats --watch --interval 2
      kitefan stats --format json | jq '.totals'
    """
    with reported_errors(debug, log_file):
        if demo and config_path is not None:
            raise typer.BadParameter("--demo looks at the demo's stream; drop --config")
        path = demo_config_path() if demo else find_config_path(config_path)
        start = "kitefan stream --demo" if demo else ""
        refreshes = (count if watch else 1) or None
        asyncio.run(_show(path, start, fmt, never_ticked, interval, refreshes, watch, pid))


async def _show(
    path: Path,
    start: str,
    fmt: StatsFormat,
    never_ticked: bool,
    interval: float,
    refreshes: int | None,
    watch: bool,
    pid: int | None = None,
) -> None:
    client = await ControlClient.connect(path, start=start, pid=pid)
    async with client:
        hello = await client.hello()
        source = f"{hello['config']} (pid {hello['pid']})"

        async def snapshot() -> tuple[StatsDocument, list[NeverTickedSymbol] | None]:
            document = await client.stats()
            silent = await client.never_ticked() if never_ticked else None
            return document, silent

        with StopSignal() as stop:
            match fmt:
                case StatsFormat.JSON:
                    async for document, silent in _every(snapshot, interval, refreshes, stop):
                        if silent is not None:
                            document = {**document, "never_ticked_symbols": silent}
                        typer.echo(json.dumps(document, separators=(",", ":")))
                case StatsFormat.TABLE if watch and screen.is_terminal:
                    with Live(console=screen, auto_refresh=False, transient=False) as live:
                        async for document, silent in _every(snapshot, interval, refreshes, stop):
                            live.update(
                                stats_view(
                                    document, source=source, never_ticked=silent, width=screen.width
                                )
                            )
                            live.refresh()
                case StatsFormat.TABLE:
                    if not screen.is_terminal and "COLUMNS" not in os.environ:
                        # A file or a pipe has no width: lines whole, for grep and for logs
                        # (and the one-table layout of a wide terminal). COLUMNS still sets one.
                        screen.width = _UNWRAPPED
                    first = True
                    async for document, silent in _every(snapshot, interval, refreshes, stop):
                        if not first:
                            screen.print()
                        first = False
                        screen.print(
                            stats_view(
                                document, source=source, never_ticked=silent, width=screen.width
                            )
                        )
                case _:
                    assert_never(fmt)


async def _every(
    take: Callable[[], Awaitable[T]], interval: float, refreshes: int | None, stop: StopSignal
) -> AsyncIterator[T]:
    """Take a snapshot, then one every ``interval`` seconds, until ``refreshes`` or a signal."""
    done = 0
    while not stop.is_set():
        yield await take()
        done += 1
        if refreshes is not None and done >= refreshes:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
