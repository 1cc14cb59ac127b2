"""The typer application and its entry point.

The command modules import :data:`app` (and the groups) from here and register their commands
on it; :mod:`kitefan.cli` imports every command module, so this module imports none of them (no
import circle).

Owns: :data:`app`, :data:`config_app`, :data:`instruments_app`, :func:`main`. Must not import
the command modules.
"""

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
