"""``kitefan export``: a recording as Parquet, CSV or JSON lines, one row per tick.

Parses the arguments (the symbols by token or by the names the recording holds, the hours in
IST), calls :func:`kitefan.recording.export.export`, and says what it wrote on stderr.

Owns: the ``export`` command. Must not import asyncio or websockets.
"""

from __future__ import annotations

import difflib
import re
import time
from pathlib import Path
from typing import Annotated

import typer

from kitefan.cli.app import app
from kitefan.cli.terminal import DEBUG, LOG_FILE, err, reported_errors
from kitefan.errors import RecordingError
from kitefan.recording import Recording
from kitefan.recording.export import COMPRESSION, COMPRESSIONS, Window, export, format_of

__all__ = ["export_command"]

_HHMM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def _seconds(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    match = _HHMM.match(text.strip())
    if match is None:
        raise typer.BadParameter(
            f"must be a time of day HH:MM in IST (like 09:15), not {text!r}", param_hint=option
        )
    return int(match[1]) * 3600 + int(match[2]) * 60


def _tokens(recording: Recording, text: str) -> set[int]:
    names = recording.load_symbols()
    by_name = {name: token for token, name in names.items()}
    tokens: set[int] = set()
    listed = [part.strip() for part in text.split(",") if part.strip()]
    if not listed:
        raise typer.BadParameter(
            "names no symbol: give tokens or EXCHANGE:TRADINGSYMBOL names, comma-separated",
            param_hint="--symbols",
        )
    for item in listed:
        if item.isdigit():
            tokens.add(int(item))
            continue
        token = by_name.get(item) or by_name.get(item.upper())
        if token is None:
            close = difflib.get_close_matches(item.upper(), list(by_name), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise typer.BadParameter(
                f"{item!r} is not a symbol this recording names{hint}: give its token, or a "
                "name `kitefan record info` counts",
                param_hint="--symbols",
            )
        tokens.add(token)
    return tokens


@app.command("export")
def export_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="A recording: a file, or a directory of one file per day.", show_default=False
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE.parquet|FILE.csv|FILE.jsonl",
            help="Where to write; the suffix says the format.",
            show_default=False,
        ),
    ],
    symbols: Annotated[
        str | None,
        typer.Option(
            "--symbols",
            metavar="SYM,...",
            help="Only these symbols: tokens, or the EXCHANGE:TRADINGSYMBOL names the recording "
            "holds.",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", metavar="HH:MM", help="Only from this time of day (IST)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", metavar="HH:MM", help="Only before this time of day (IST)."),
    ] = None,
    compression: Annotated[
        str,
        typer.Option(
            "--compression",
            metavar="|".join(COMPRESSIONS),
            help="Parquet's codec: lz4 writes fastest; zstd (level 1) is about a sixth smaller "
            "and slower to write; snappy is what every Parquet reader reads.",
        ),
    ] = COMPRESSION,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Write a recording's ticks as Parquet (typed columns), CSV or JSON lines (as `kitefan
    stream` writes them), one row per tick.

    Examples:

    \b
      kitefan export day.kfr -o ticks.parquet
      kitefan export day.kfr -o archive.parquet --compression zstd
      kitefan export recordings/ -o infy.csv --symbols NSE:INFY --from 09:15 --to 10:00
    """
    with reported_errors(debug, log_file):
        window = Window(_seconds(start, "--from"), _seconds(end, "--to"))
        if window.start is not None and window.end is not None and window.start >= window.end:
            raise typer.BadParameter(f"must be after --from {start}", param_hint="--to")
        try:
            fmt = format_of(output)
        except RecordingError as exc:
            raise typer.BadParameter(str(exc), param_hint="--output") from None
        if compression not in COMPRESSIONS:
            raise typer.BadParameter(
                f"{compression!r} is not a codec kitefan writes: {', '.join(COMPRESSIONS)}",
                param_hint="--compression",
            )
        recording = Recording(path)
        tokens = _tokens(recording, symbols) if symbols is not None else None
        began = time.perf_counter()
        result = export(
            recording, output, fmt=fmt, tokens=tokens, window=window, compression=compression
        )
        took = time.perf_counter() - began
        report = recording.report
        skipped = f", {report.skipped_chunks:,} chunks skipped" if report.skipped_chunks else ""
        stopped = "".join(f"; {end.describe()}" for end in report.truncated)
        err.print(
            f"kitefan: wrote {result.rows:,} ticks from {result.frames:,} frames to {output} "
            f"({fmt.value}) in {took:.1f} s{skipped}{stopped}",
            markup=False,
            highlight=False,
        )
