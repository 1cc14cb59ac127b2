"""The typer application and its entry point."""

from __future__ import annotations

from typing import Annotated

import typer

from kitefan import __version__

__all__ = ["app", "config_app", "instruments_app", "main"]

app = typer.Typer(
    name="kitefan",
    help="Stream Zerodha Kite Connect market data across many API keys.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(
    help="Validate a config, or print it with secrets masked.", no_args_is_help=True
)
instruments_app = typer.Typer(
    help="The instruments dump used to resolve names.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(instruments_app, name="instruments")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kitefan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Stream Zerodha Kite Connect market data across many API keys."""


def main() -> None:
    """The console script's entry point."""
    app()


# Register the commands (each module adds its own to ``app``).
from kitefan.cli import (  # noqa: E402
    bench as _bench,
    configure as _configure,
    distribute as _distribute,
    export as _export,
    record as _record,
    replay as _replay,
    simulate as _simulate,
    stats as _stats,
    stream as _stream,
    tail as _tail,
)

del _bench, _configure, _distribute, _export, _record, _replay, _simulate, _stats, _stream, _tail
