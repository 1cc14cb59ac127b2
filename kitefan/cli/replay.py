"""``kitefan replay PATH``: serve a recording as a Kite ticker until Ctrl-C or SIGTERM.

The simulator's server with the recording as its packet source: the same handshake, limits,
heartbeats and faults as ``kitefan simulate`` (whose options it shares). The first line on stdout
is the bound ``ws://`` URL; the log (what was read, connections, the replay's start and end) goes
to stderr. Without ``--config`` every api key and access token is accepted.

Owns: the ``replay`` command. Must not import websockets.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from kitefan.cli.app import app
from kitefan.cli.simulate import (
    CloseEvery,
    Debug,
    DelayMs,
    DropEvery,
    ExpireAfter,
    Heartbeat,
    Host,
    ImplicitSubscribe,
    MalformedEvery,
    MaxConnectionsPerKey,
    MaxTokensPerConnection,
    Port,
    SilentAfter,
    accounts_of,
    configure_logging,
    serve_until_stopped,
    usage,
)
from kitefan.cli.terminal import LOG_FILE, reported_errors
from kitefan.config import load_config
from kitefan.errors import ConfigError, KitefanError
from kitefan.models import IST
from kitefan.replay import open_replay
from kitefan.simulator import (
    Account,
    FaultSpecError,
    Simulator,
    parse_fault_plan,
    parse_seconds,
)
from kitefan.simulator.recorded import Window

__all__ = ["replay"]

log = logging.getLogger("kitefan.simulator")

_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def _speed(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    try:
        return parse_seconds("--speed", text)
    except FaultSpecError:
        usage(f"--speed: expected N (times the recorded pace, more than 0) or max, got {text!r}")


def _clock(option: str, text: str | None) -> int | None:
    """Seconds after IST midnight of ``HH:MM`` (or ``HH:MM:SS``)."""
    if text is None:
        return None
    match = _CLOCK.fullmatch(text.strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59 or int(match[3] or 0) > 59:
        usage(f"{option}: expected HH:MM (a time of day in IST, 00:00 to 23:59), got {text!r}")
    return int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3] or 0)


def _ist(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=IST).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def replay(
    path: Annotated[
        Path,
        typer.Argument(
            help="A recording (kitefan stream --record PATH): a file, or a directory of them.",
            show_default=False,
        ),
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Accept only this kitefan config's [[keys]] (without it: any api key and token).",
            dir_okay=False,
        ),
    ] = None,
    host: Host = "127.0.0.1",
    port: Port = 8765,
    speed: Annotated[
        str,
        typer.Option(
            "--speed",
            metavar="N|max",
            help="N times the recorded pace (1: as recorded), or max: as fast as clients read.",
        ),
    ] = "1",
    start: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="HH:MM", help="Serve from this time of day (IST) on, inclusive."
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="HH:MM", help="Serve up to this time of day (IST), exclusive."
        ),
    ] = None,
    loop: Annotated[
        bool, typer.Option("--loop", help="Start again from the first frame after the last.")
    ] = False,
    max_connections_per_key: MaxConnectionsPerKey = 3,
    max_tokens_per_connection: MaxTokensPerConnection = 3000,
    heartbeat: Heartbeat = "1",
    implicit_subscribe: ImplicitSubscribe = True,
    drop_every: DropEvery = None,
    close_every: CloseEvery = None,
    silent_after: SilentAfter = None,
    expire_after: ExpireAfter = None,
    delay_ms: DelayMs = None,
    malformed_every: MalformedEvery = None,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Debug = False,
) -> None:
    """Serve a recording as a Kite ticker: clients subscribe and get the recorded packets.

    The first line on stdout is the ws:// URL to connect to.

    Examples:

    \b
      kitefan replay day.kfr --port 0
      kitefan replay recordings/ --speed max --from 09:15 --to 10:00 --config kitefan.toml
    """
    with reported_errors(debug):
        pace = _speed(speed)
        window = Window(_clock("--from", start), _clock("--to", end))
        try:
            plan = parse_fault_plan(
                drop_every=drop_every,
                close_every=close_every,
                silent_after=silent_after,
                expire_after=expire_after or (),
                delay_ms=delay_ms,
                malformed_every=malformed_every,
            )
            heartbeat_s = parse_seconds("--heartbeat", heartbeat)
        except FaultSpecError as exc:
            usage(str(exc))
        accounts: list[Account] = []
        if config is not None:
            loaded = load_config(config)
            if not loaded.keys:
                raise ConfigError(str(config), ["keys: none; --config needs at least one [[keys]]"])
            accounts = accounts_of(loaded, plan)
        elif plan.expire_after:
            usage("--expire-after needs --config: without it every key and token is accepted")
        configure_logging(debug, log_file)
        opened = open_replay(path, speed=pace, loop=loop, window=window)
        index = opened.replay.index
        report = opened.recording.report
        for skipped_path, skipped in report.skipped:
            log.warning("%s: skipped %s bytes at %s: %s", skipped_path, f"{skipped.size:,}",
                        f"{skipped.offset:,}", skipped.reason)  # fmt: skip
        for cut in report.truncated:
            log.warning("%s", cut.describe())
        if index.malformed:
            log.warning("%d malformed frame(s) will not be served", index.malformed)
        if not index.frames:
            span = (
                ""
                if window == Window()
                else f" between {start or 'the start'} and {end or 'the end'} IST"
            )
            raise KitefanError(f"{path} holds no ticks{span}: nothing to replay")
        log.info(
            "recording %s: %s ticks in %s frames of %s instruments, %s to %s IST",
            path,
            f"{index.ticks:,}",
            f"{index.frames:,}",
            f"{len(index.best):,}",
            _ist(index.first_ns),
            _ist(index.last_ns),
        )
        log.info(
            "replay at %s%s; it starts once a client has subscribed",
            "maximum speed" if pace is None else f"{pace:g}x the recorded pace",
            ", looping" if loop else "",
        )
        simulator = Simulator(
            accounts,
            host=host,
            port=port,
            max_connections_per_key=max_connections_per_key,
            max_tokens_per_connection=max_tokens_per_connection,
            heartbeat_interval_s=heartbeat_s,
            implicit_subscribe_on_mode=implicit_subscribe,
            replay=opened.replay,
            any_credentials=config is None,
        )
        asyncio.run(serve_until_stopped(simulator, plan, f"{host}:{port}"))
