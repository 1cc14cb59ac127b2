"""``kitefan simulate``: serve a local Kite ticker until Ctrl-C or SIGTERM.

The first line on stdout is the bound ``ws://`` URL (flushed at once, so scripts and tests can read
it, with ``--port 0`` too); connections, refusals and faults are logged to stderr, one line each,
keys named by their config id. Credentials come from a kitefan config (``--config``, the default
config path rule, or the bundled demo with ``--demo``).

Owns: the ``simulate`` command. Must not import websockets.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from kitefan.cli.app import app
from kitefan.cli.terminal import LOG_FILE, ExitCode, err, log_formatter, out, reported_errors
from kitefan.errors import ConfigError, KitefanError
from kitefan.loader import UNUSABLE_SETTINGS, demo_config_path, find_config_path, load_config
from kitefan.settings import AppConfig
from kitefan.simulator import (
    Account,
    FaultPlan,
    FaultSpecError,
    Simulator,
    parse_fault_plan,
    parse_seconds,
)

__all__ = [
    "CloseEvery",
    "Debug",
    "DelayMs",
    "DropEvery",
    "ExpireAfter",
    "Heartbeat",
    "Host",
    "ImplicitSubscribe",
    "MalformedEvery",
    "MaxConnectionsPerKey",
    "MaxTokensPerConnection",
    "Port",
    "SilentAfter",
    "configure_logging",
    "serve_until_stopped",
    "simulate",
    "usage",
]

log = logging.getLogger("kitefan.simulator")


# The options ``kitefan replay`` shares.
Host = Annotated[str, typer.Option("--host", metavar="HOST", help="Address to bind.")]
Port = Annotated[
    int,
    typer.Option(
        "--port", metavar="PORT", help="Port to bind; 0 picks a free one.", min=0, max=65535
    ),
]
MaxConnectionsPerKey = Annotated[
    int, typer.Option("--max-connections-per-key", min=1, help="More get HTTP 429 (Kite: 3).")
]
MaxTokensPerConnection = Annotated[
    int,
    typer.Option(
        "--max-tokens-per-connection",
        min=1,
        help="Tokens per connection, duplicates counted (Kite: 3000).",
    ),
]
Heartbeat = Annotated[
    str, typer.Option("--heartbeat", metavar="SECONDS", help="Idle time before a heartbeat.")
]
ImplicitSubscribe = Annotated[
    bool,
    typer.Option(
        "--implicit-subscribe/--no-implicit-subscribe",
        help="Whether a mode request on a token not subscribed subscribes it.",
    ),
]
DropEvery = Annotated[
    str | None,
    typer.Option(
        "--drop-every",
        metavar="SECONDS",
        help="Fault: drop every connection without a close frame (1006), this often.",
    ),
]
CloseEvery = Annotated[
    str | None,
    typer.Option(
        "--close-every",
        metavar="SECONDS[:CODE]",
        help="Fault: close every connection cleanly, this often, with CODE (1000 if not given).",
    ),
]
SilentAfter = Annotated[
    str | None,
    typer.Option(
        "--silent-after",
        metavar="SECONDS[:DURATION]",
        help="Fault: send nothing, not even heartbeats, from SECONDS on, for DURATION "
        "(until stopped if not given).",
    ),
]
ExpireAfter = Annotated[
    list[str] | None,
    typer.Option(
        "--expire-after",
        metavar="KEY_ID:SECONDS",
        help="Fault: the key's token expires (403 from then on, its connections dropped). "
        "Repeatable.",
    ),
]
DropPackets = Annotated[
    list[str] | None,
    typer.Option(
        "--drop-packets",
        metavar="KEY_ID:N",
        help="Fault: the key loses every N-th packet it shares with another key (they still "
        "get it), so redundancy = 2 sees one-sided ticks. Repeatable.",
    ),
]
DelayMs = Annotated[
    str | None, typer.Option("--delay-ms", metavar="MS", help="Fault: delay every outgoing frame.")
]
MalformedEvery = Annotated[
    str | None,
    typer.Option(
        "--malformed-every",
        metavar="SECONDS",
        help="Fault: send a malformed binary frame on every connection, this often.",
    ),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks and the websockets log.")]


def usage(message: str) -> NoReturn:
    """One ``error:`` line on stderr, and exit 2."""
    err.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(int(ExitCode.USAGE))


def accounts_of(loaded: AppConfig, plan: FaultPlan) -> list[Account]:
    """The config's keys as the simulator's accounts, once every key the fault plan names is
    one of them (else one ``error:`` line, exit 2)."""
    ids = [key.id for key in loaded.keys]
    for option, labels in (
        ("--expire-after", [label for label, _ in plan.expire_after]),
        ("--drop-packets", [label for label, _ in plan.drop_packets]),
    ):
        for label in labels:
            if label not in ids:
                usage(f"{option}: no key is called {label!r} (keys: {', '.join(ids)})")
    return [
        Account(key.credential.api_key, key.credential.access_token, label=key.id)
        for key in loaded.keys
    ]


def _rate(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    try:
        return parse_seconds("--rate", text)
    except FaultSpecError:
        expected = "HZ (packets per instrument per second, more than 0) or max"
        usage(f"--rate: expected {expected}, got {text!r}")


def configure_logging(debug: bool, log_file: Path | None) -> None:
    """The simulator's log (connections, refusals, faults) to stderr or ``--log-file``."""
    if log_file is None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        # The time of day in IST, as every time kitefan prints, and labelled so.
        formatter = log_formatter("%(asctime)s IST %(message)s")
        formatter.datefmt = "%H:%M:%S"
    else:
        try:
            handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        except OSError as exc:
            raise KitefanError(f"--log-file: cannot write {log_file}: {exc.strerror}") from None
        formatter = log_formatter("%(asctime)s %(message)s")
    handler.setFormatter(formatter)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False
    if debug:
        websockets_log = logging.getLogger("websockets")
        websockets_log.addHandler(handler)
        websockets_log.setLevel(logging.INFO)


@app.command()
def simulate(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The kitefan config whose [[keys]] are accepted [default: ./kitefan.toml, "
            "then $KITEFAN_CONFIG].",
            dir_okay=False,
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Accept the keys of the bundled demo config.")
    ] = False,
    host: Host = "127.0.0.1",
    port: Port = 8765,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the market's random walks.")] = 0,
    rate: Annotated[
        str,
        typer.Option(
            "--rate",
            metavar="HZ|max",
            help="At most HZ packets per instrument per second, or max: as fast as one core can.",
        ),
    ] = "1",
    instruments: Annotated[
        Path | None,
        typer.Option(
            "--instruments",
            help="Instruments dump (CSV) whose last_price seeds starting prices [default: the "
            "config's instruments file, if it exists].",
            dir_okay=False,
        ),
    ] = None,
    max_connections_per_key: MaxConnectionsPerKey = 3,
    max_tokens_per_connection: MaxTokensPerConnection = 3000,
    heartbeat: Heartbeat = "1",
    implicit_subscribe: ImplicitSubscribe = True,
    orders_every: Annotated[
        str | None,
        typer.Option(
            "--orders-every",
            metavar="SECONDS",
            help="Push an order update to every connected key this often.",
        ),
    ] = None,
    drop_every: DropEvery = None,
    close_every: CloseEvery = None,
    silent_after: SilentAfter = None,
    expire_after: ExpireAfter = None,
    delay_ms: DelayMs = None,
    malformed_every: MalformedEvery = None,
    drop_packets: DropPackets = None,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Debug = False,
) -> None:
    """Serve a local Kite ticker (wss://ws.kite.trade look-alike) until Ctrl-C.

    The first line on stdout is the ws:// URL to connect to.

    Examples:

    \b
      kitefan simulate --demo --port 0
      kitefan simulate --config kitefan.toml --expire-after acct2:30
    """
    with reported_errors(debug):
        if demo and config is not None:
            usage("--config and --demo exclude each other")
        hz = _rate(rate)
        try:
            plan = parse_fault_plan(
                drop_every=drop_every,
                close_every=close_every,
                silent_after=silent_after,
                expire_after=expire_after or (),
                delay_ms=delay_ms,
                malformed_every=malformed_every,
                drop_packets=drop_packets or (),
            )
            heartbeat_s = parse_seconds("--heartbeat", heartbeat)
            orders_s = (
                None if orders_every is None else parse_seconds("--orders-every", orders_every)
            )
        except FaultSpecError as exc:
            usage(str(exc))
        path = demo_config_path() if demo else find_config_path(config)
        # The simulator uses the keys (and the instruments dump) only: a ${VAR} of the url,
        # api_root or [publish] that is not set here is none of its business.
        loaded = load_config(path, unused=UNUSABLE_SETTINGS)
        if not loaded.keys:
            raise ConfigError(str(path), ["keys: none; the simulator needs at least one [[keys]]"])
        accounts = accounts_of(loaded, plan)
        if instruments is None and loaded.instruments is not None and loaded.instruments.is_file():
            instruments = loaded.instruments
        configure_logging(debug, log_file)
        simulator = Simulator(
            accounts,
            host=host,
            port=port,
            seed=seed,
            rate=hz,
            instruments=instruments,
            max_connections_per_key=max_connections_per_key,
            max_tokens_per_connection=max_tokens_per_connection,
            heartbeat_interval_s=heartbeat_s,
            implicit_subscribe_on_mode=implicit_subscribe,
            order_interval_s=orders_s,
        )
        asyncio.run(serve_until_stopped(simulator, plan, f"{host}:{port}"))


async def serve_until_stopped(simulator: Simulator, plan: FaultPlan, address: str) -> None:
    """Start, print the URL, carry out the fault plan, serve until SIGINT or SIGTERM, stop.

    Raises:
        KitefanError: the address cannot be bound.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            await simulator.start()
        except OSError as exc:
            raise KitefanError(f"cannot listen on {address}: {exc.strerror or exc}") from None
        faults: asyncio.Task[None] | None = None
        try:
            out.print(simulator.url, markup=False, highlight=False)
            out.file.flush()
            for phrase in plan.describe():
                log.info("fault planned: %s", phrase)
            if plan != FaultPlan():
                faults = asyncio.create_task(simulator.run_faults(plan))
            await stop.wait()
        finally:
            if faults is not None:
                faults.cancel()
                await asyncio.wait([faults])
            await simulator.stop()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    counters = simulator.counters
    log.info(
        "stopped: %d connection(s) served, %d ticks in %d frames, %d heartbeats",
        counters.connections_opened,
        counters.ticks_sent,
        counters.frames_sent,
        counters.heartbeats_sent,
    )
