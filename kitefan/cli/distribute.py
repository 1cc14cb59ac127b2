"""``kitefan distribute``: show where every symbol goes (``--dry-run``), or apply a config live.

Without ``--dry-run``, it finds the running stream of the config (:mod:`kitefan.control`), has it
re-read its config file and apply it with the smallest change, and shows what changed
(:mod:`kitefan.render.change`); with no stream running it says so and exits 1. With
``--dry-run`` and a stream running, it shows the change the stream would make, changing nothing;
with none running, the plan of the config from scratch (:mod:`kitefan.render.plan`).

Parses, calls the library, renders. Owns: the ``distribute`` command, :func:`show_dry_run` and
:func:`show_change`. Must not import websockets.
"""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, assert_never

import typer

from kitefan.change import ConfigChange
from kitefan.cli.app import app
from kitefan.cli.terminal import CONFIG, DEBUG, LOG_FILE, err, out, reported_errors, warn
from kitefan.control import ControlClient
from kitefan.errors import KitefanError, StreamNotRunningError
from kitefan.loader import find_config_path, load_config
from kitefan.planner import Plan, plan_config
from kitefan.render.change import change_view
from kitefan.render.plan import plan_json, plan_pins, plan_table
from kitefan.settings import AppConfig

__all__ = ["PlanFormat", "distribute", "load_and_plan", "show_change", "show_dry_run"]


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
        _write_pins(config, plan, output)
    return plan


@app.command("distribute")
def distribute(
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Change nothing: show the change the running stream would make, or, with "
            "none running, the plan.",
        ),
    ] = False,
    config: Annotated[Path | None, CONFIG] = None,
    pid: Annotated[
        int | None,
        typer.Option("--pid", metavar="PID", help="The stream of this process, when several run."),
    ] = None,
    fmt: Annotated[
        PlanFormat, typer.Option("--format", help="table for people, json for scripts.")
    ] = PlanFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Also write the config's plan (from scratch) as TOML pins."),
    ] = None,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Apply the edited config to the running stream, or show where every symbol goes (--dry-run).

    Against a running stream, --dry-run shows the change it would make, and changes nothing.

    Examples:

    \b
      kitefan distribute --dry-run --config configs/demo.toml
      kitefan distribute --dry-run --output plan.toml
      kitefan distribute
    """
    with reported_errors(debug, log_file):
        path = find_config_path(config)
        try:
            change, pid = asyncio.run(_reload(path, apply=not dry_run, pid=pid))
        except StreamNotRunningError:
            if not dry_run:
                raise
            show_dry_run(config, fmt, output)
            return
        show_change(change, pid, fmt)
        if output is not None:
            _write_pins(*load_and_plan(config), output)


async def _reload(path: Path, *, apply: bool, pid: int | None) -> tuple[ConfigChange, int]:
    """Have the running stream of ``path`` re-read its config: apply it, or preview it."""
    client = await ControlClient.connect(path, pid=pid)
    async with client:
        hello = await client.hello()
        change = await client.apply() if apply else await client.preview()
    return change, int(hello["pid"])


def show_change(change: ConfigChange, pid: int, fmt: PlanFormat) -> None:
    """Print what applying the config changed (or, not applied, would change)."""
    for warning in change.warnings:
        warn(warning)
    match fmt:
        case PlanFormat.TABLE:
            if change.applied:
                headline = f"applied {change.config} to its running stream (pid {pid})"
            else:
                headline = (
                    f"dry run against the running stream of {change.config} (pid {pid}): "
                    "nothing is changed"
                )
            out.print(change_view(change, headline=headline))
        case PlanFormat.JSON:
            typer.echo(json.dumps(change.as_dict(), indent=2, ensure_ascii=False))
        case _:
            assert_never(fmt)


def _write_pins(config: AppConfig, plan: Plan, output: Path) -> None:
    try:
        output.write_text(plan_pins(plan, mode=config.mode), encoding="utf-8")
    except OSError as exc:
        if output.is_dir():
            problem = "is a directory: give the path of a file to write the pins to"
        elif not output.parent.is_dir():
            problem = f"its directory {output.parent} does not exist: create it first"
        else:
            problem = f"cannot write it: {exc.strerror or exc}"
        raise KitefanError(f"--output {output}: {problem}") from None
    err.print(f"wrote the plan as pins to {output}", markup=False, highlight=False)
