"""``kitefan record info``: what a recording holds. And the pieces ``kitefan stream --record`` and
``kitefan tail --record`` share: the option, and the recorder's end.

Owns: the ``record`` commands and ``--record``. Must not import websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from kitefan.cli.app import app
from kitefan.cli.terminal import DEBUG, LOG_FILE, out, reported_errors
from kitefan.recording import Recorder, Recording
from kitefan.recording.info import summarise
from kitefan.render.recording import info_json, info_lines
from kitefan.runner import Outcome

__all__ = ["RECORD", "RECORD_STREAM", "InfoFormat", "record_app", "recorded", "stop_recording"]

record_app = typer.Typer(help="What a recording (--record) holds.", no_args_is_help=True)
app.add_typer(record_app, name="record")

#: ``--record PATH`` of ``kitefan stream`` and ``kitefan tail``.
RECORD = typer.Option(
    "--record",
    metavar="PATH",
    help="Also record every frame and event to PATH, an append-only log (a directory: one file "
    "per trading day, IST); `kitefan record info` and `kitefan export` read it.",
)
#: ``kitefan stream``'s, which has a config: ``--record`` overrides its ``[record] path``.
RECORD_STREAM = typer.Option(
    "--record",
    metavar="PATH",
    help="Also record every frame and event to PATH, an append-only log (a directory: one file "
    "per trading day, IST); `kitefan record info` and `kitefan export` read it [default: the "
    "config's [record] path, else none].",
)


class InfoFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@record_app.command("info")
def info(
    path: Annotated[
        Path,
        typer.Argument(
            help="A recording: a file, or a directory of one file per day.", show_default=False
        ),
    ],
    fmt: Annotated[
        InfoFormat, typer.Option("--format", help="text for people; json for scripts.")
    ] = InfoFormat.TEXT,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Span, frames, ticks, symbols, keys, gaps (reconnects), bytes per tick on disk, and what
    could not be read (skipped chunks, a last chunk not written whole).

    Examples:

    \b
      kitefan record info day.kfr
      kitefan record info recordings/ --format json | jq .ticks
    """
    with reported_errors(debug, log_file):
        summary = summarise(Recording(path))
        if fmt is InfoFormat.JSON:
            out.print(info_json(summary), markup=False, highlight=False, soft_wrap=True)
        else:
            for line in info_lines(summary):
                out.print(line, markup=False, highlight=False)


async def stop_recording(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def recorded(outcome: Outcome, recorder: Recorder, task: asyncio.Task[None]) -> Outcome:
    """The outcome with the recorder's final figures, once it has written what it holds (the
    feed is closed, so its events have ended)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(6.0):
            await asyncio.shield(task)
    return replace(outcome, recording=recorder.stats())
