"""``kitefan distribute``: show where every symbol goes (``--dry-run``), or apply a config live.

Parses, calls the library (load the config, plan it), renders (:mod:`kitefan.render.plan`).
Applying an edited config to a running stream is not wired yet: without ``--dry-run`` the
command says so and exits 1.

Owns: the ``distribute`` command and :func:`show_dry_run`. Must not import websockets or asyncio.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, assert_never

import typer

from kitefan.cli.app import app
from kitefan.cli.terminal import err, out, reported_errors, warn
from kitefan.config import AppConfig, find_config_path, load_config
from kitefan.errors import ControlError
from kitefan.planner import Plan, plan_config
from kitefan.render.plan import plan_json, plan_pins, plan_table

__all__ = ["PlanFormat", "distribute", "load_and_plan", "show_dry_run"]


class PlanFormat(StrEnum):
    """How ``--dry-run`` prints the plan."""

    TABLE = "table"
    JSON = "json"


def load_and_plan(config_path: Path | None) -> tuple[AppConfig, Plan]:
    """Find and load the config, say its warnings, and plan it from scratch.

    Raises:
        ConfigError: no config, or an invalid one.
        PlanError: the symbols cannot be placed.
    """
    config = load_config(find_config_path(config_path))
    for warning in config.warnings:
        warn(warning)
    return config, plan_config(config)


def show_dry_run(config_path: Path | None, fmt: PlanFormat, output: Path | None) -> Plan:
    """Plan the config and print it; with ``output``, also write the plan as TOML pins.

    Returns:
        The plan shown.
    """
    config, plan = load_and_plan(config_path)
    match fmt:
        case PlanFormat.TABLE:
            out.print(plan_table(plan))
        case PlanFormat.JSON:
            typer.echo(plan_json(plan))
        case _:
            assert_never(fmt)
    if output is not None:
        output.write_text(plan_pins(plan, mode=config.mode), encoding="utf-8")
        err.print(f"wrote the plan as pins to {output}", markup=False, highlight=False)
    return plan


@app.command("distribute")
def distribute(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; connect to nothing.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="The config file [default: ./kitefan.toml, then $KITEFAN_CONFIG]."
        ),
    ] = None,
    fmt: Annotated[
        PlanFormat, typer.Option("--format", help="table for people, json for scripts.")
    ] = PlanFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Also write the plan as TOML pins, to freeze it."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Show where every symbol goes (--dry-run), or apply the edited config to a running stream."""
    with reported_errors(debug):
        if not dry_run:
            raise ControlError(
                "no running stream to apply the config to (live apply is not available yet); "
                "use --dry-run to see the plan"
            )
        show_dry_run(config, fmt, output)
