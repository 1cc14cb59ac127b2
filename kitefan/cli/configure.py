"""``kitefan init``, ``kitefan config check|show`` and ``kitefan instruments fetch``.

Each command parses its arguments, calls the library (:mod:`kitefan.loader`,
:mod:`kitefan.starter`, :mod:`kitefan.fetch`, the planner), and prints the result; library errors
become one ``error:`` line and an exit code (:mod:`kitefan.cli.terminal`).

Owns: the config and instruments commands. Must not import websockets or asyncio.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from kitefan.cli.app import app, config_app, instruments_app
from kitefan.cli.terminal import (
    DEBUG,
    LOG_FILE,
    ExitCode,
    err,
    exit_code_of,
    out,
    reported_errors,
    warn,
)
from kitefan.errors import ConfigError
from kitefan.fetch import fetch_instruments
from kitefan.loader import DEFAULT_CONFIG_NAME, find_config_path, load_config
from kitefan.models import Mode
from kitefan.planner import plan_config
from kitefan.settings import AppConfig
from kitefan.starter import dump_config, write_starter_config

__all__ = ["check", "fetch", "init", "show"]

_PATH_HELP = "The config file [default: ./kitefan.toml, then $KITEFAN_CONFIG]."


def _say(line: str) -> None:
    out.print(line, markup=False, highlight=False)


def _load(path: Path | None, *, with_symbols: bool = True) -> AppConfig:
    config = load_config(find_config_path(path), with_symbols=with_symbols)
    for warning in config.warnings:
        warn(warning)
    return config


@app.command("init")
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path(
        DEFAULT_CONFIG_NAME
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Write a commented starter config (mode 0600: it will hold credentials).

    Examples:

    \b
      kitefan init
      kitefan init ~/trading/kitefan.toml --force
    """
    with reported_errors(debug, log_file):
        pass  # nothing to report yet: this only opens the log file
    try:
        write_starter_config(path, force=force)
    except FileExistsError:
        if debug:
            raise
        err.print(
            f"error: {path} already exists; pass --force to overwrite it",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(int(ExitCode.FAILURE)) from None
    except OSError as exc:
        if debug:
            raise
        err.print(f"error: cannot write {path}: {exc.strerror}", markup=False, highlight=False)
        raise typer.Exit(int(ExitCode.FAILURE)) from None
    _say(f"wrote {path}; put your keys in it, then run `kitefan config check {path}`")


@config_app.command("check")
def check(
    path: Annotated[Path | None, typer.Argument(help=_PATH_HELP)] = None,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Validate a config and summarise it: keys, symbols, and whether the plan fits.

    Examples:

    \b
      kitefan config check
      kitefan config check configs/demo.toml
    """
    with reported_errors(debug, log_file):
        try:
            config = _load(path)
        except ConfigError as exc:
            if debug or len(exc.problems) < 2:
                raise
            err.print(f"error: {exc}", markup=False, highlight=False)
            for problem in exc.problems:
                err.print(f"  {problem}", markup=False, highlight=False)
            raise typer.Exit(int(exit_code_of(exc))) from None
        plan = plan_config(config)
    modes = Counter(spec.mode for spec in config.symbols)
    mix = ", ".join(f"{modes[mode]} {mode.value}" for mode in reversed(Mode) if modes[mode])
    pinned = sum(1 for spec in config.symbols if spec.key is not None)
    _say(f"{config.source}: ok")
    _say(
        f"keys: {len(config.keys)} ({', '.join(key.id for key in config.keys)}), up to "
        f"{config.max_connections_per_key} connections × {config.max_symbols_per_connection} "
        "symbols each"
    )
    _say(f"symbols: {len(config.symbols)} ({mix or 'none'}), {pinned} pinned")
    _say(
        f"plan: {plan.strategy.value} over {plan.connection_count} connections, "
        f"{plan.symbol_count} of {plan.capacity} ({plan.spare} spare)"
    )


@config_app.command("show")
def show(
    path: Annotated[Path | None, typer.Argument(help=_PATH_HELP)] = None,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Print the resolved config as TOML, with every api key and access token masked.

    Examples:

    \b
      kitefan config show kitefan.toml > resolved.toml
    """
    with reported_errors(debug, log_file):
        config = _load(path)
    typer.echo(dump_config(config), nl=False)


@instruments_app.command("fetch")
def fetch(
    config: Annotated[Path | None, typer.Option("--config", help=_PATH_HELP)] = None,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Download the instruments dump with the first key, replacing the configured file.

    Examples:

    \b
      kitefan instruments fetch --config kitefan.toml
    """
    with reported_errors(debug, log_file):
        loaded = _load(config, with_symbols=False)
        if loaded.instruments is None:
            raise ConfigError(
                loaded.source,
                ['instruments: not set; add instruments = "instruments.csv" to say where it goes'],
            )
        key = loaded.keys[0]
        err.print(
            f"downloading {loaded.api_root}/instruments with key {key.id}…",
            markup=False,
            highlight=False,
        )
        count = fetch_instruments(
            loaded.api_root,
            key.credential,
            loaded.instruments,
            timeout_s=loaded.tuning.fetch_timeout_s,
        )
    _say(f"fetched {count} instruments into {loaded.instruments}")
