"""The typer application and its entry point.

The command modules import :data:`app` (and the groups) from here and register their commands
on it; :mod:`kitefan.cli` imports every command module, so this module imports none of them (no
import circle).

Owns: :data:`app`, :data:`config_app`, :data:`instruments_app`, :func:`main`. Must not import
the command modules.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from kitefan import __version__

__all__ = ["app", "config_app", "instruments_app", "main"]

#: The commands in the order ``kitefan --help`` lists them; any other follows, as registered.
_ORDER = (
    "stream",
    "stats",
    "distribute",
    "tail",
    "candles",
    "record",
    "export",
    "replay",
    "simulate",
    "init",
    "config",
    "instruments",
)


class _Kitefan(TyperGroup):
    """The root command: every error of the command line is one ``error: ...`` line (exit code
    2), every uncaught exception one line too without ``--debug`` (exit code 1), the commands are
    listed most used first, and every option's value has an upper-case metavar."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _name_values(command)
        return command

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **kw: Any,
    ) -> Any:
        from kitefan.cli.terminal import ExitCode, err, unexpected_error_line, usage_error_line

        words = list(sys.argv[1:] if args is None else args)
        # `kitefan` however it was started (`python -m kitefan` too): in the usage lines, and in
        # the shell completion's script and variable (_KITEFAN_COMPLETE).
        prog_name = prog_name or "kitefan"
        if not standalone_mode:
            return super().main(words, prog_name, complete_var, False, windows_expand_args, **kw)
        try:
            code = super().main(words, prog_name, complete_var, False, windows_expand_args, **kw)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # type: ignore[attr-defined]
                sys.exit(int(ExitCode.USAGE))
            err.print(usage_error_line(exc, words, self), markup=False, highlight=False)
            sys.exit(int(getattr(exc, "exit_code", ExitCode.USAGE)))
        except typer.Abort:
            err.print("interrupted", markup=False, highlight=False)
            sys.exit(int(ExitCode.INTERRUPTED))
        except Exception as exc:
            if "--debug" in words:
                raise
            err.print(unexpected_error_line(exc), markup=False, highlight=False)
            sys.exit(int(ExitCode.FAILURE))
        sys.exit(code if isinstance(code, int) else 0)


#: Metavars by value type, for options that do not name theirs.
_METAVARS = {int: "N", float: "NUMBER", str: "TEXT"}


def _name_values(command: Any) -> None:
    """Give every option and argument of ``command`` (and of its subcommands) that does not name
    its value an upper-case metavar: ``live|jsonl|csv`` for a choice, ``PATH``, ``N``,
    ``NUMBER``, ``TEXT``, never typer's ``<float range>``; an argument shows its metavar alone."""
    for sub in getattr(command, "commands", {}).values():
        _name_values(sub)
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) or not hasattr(param, "metavar"):
            continue
        described = getattr(param, "type_descriptor", None)
        annotation = getattr(described, "annotation", None)
        if param.metavar is not None:
            pass
        elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            param.metavar = "|".join(str(member.value) for member in annotation)
        elif getattr(described, "is_path", False):
            param.metavar = "PATH"
        elif annotation in _METAVARS:
            param.metavar = _METAVARS[annotation]
        if getattr(param, "param_type_name", "") == "argument":
            param.metavar = param.metavar or str(param.name).upper()
            param.display_type_rich = lambda ctx: None  # no ``<path>`` after ``PATH``


app = typer.Typer(
    name="kitefan",
    cls=_Kitefan,
    help="Stream Zerodha Kite Connect market data across many API keys.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=True,
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
