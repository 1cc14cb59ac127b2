"""``kitefan bench``: reproducible throughput, CPU, memory and latency figures on this machine.

Parses the arguments, calls :func:`kitefan.bench.report.run_benchmarks`, and prints the figures:
a table (:mod:`kitefan.render.bench`) or one JSON document on stdout; one progress line per round
on stderr.

Owns: the ``bench`` command. Must not import websockets or asyncio.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, assert_never

import typer

from kitefan.bench.report import BENCHMARKS, DEFAULTS, run_benchmarks
from kitefan.cli.app import app
from kitefan.cli.terminal import DEBUG, LOG_FILE, err, out, reported_errors
from kitefan.render.bench import bench_json, bench_view

__all__ = ["BenchFormat", "Which", "bench"]


class Which(StrEnum):
    """Which benchmarks ``kitefan bench`` runs."""

    DECODE = "decode"
    RECORDS = "records"
    E2E = "e2e"
    LOAD = "load"
    COLUMNAR = "columnar"
    CANDLES = "candles"
    FANOUT = "fanout"
    CLI = "cli"
    RECORDING = "recording"
    REPLAY = "replay"
    SHARE = "share"
    MERGE = "merge"
    REDUNDANCY = "redundancy"
    ALL = "all"


class BenchFormat(StrEnum):
    """How ``kitefan bench`` prints."""

    TABLE = "table"
    JSON = "json"


def _progress(line: str) -> None:
    err.print(line, markup=False, highlight=False)


@app.command("bench")
def bench(
    which: Annotated[
        Which,
        typer.Argument(
            help="decode: kitefan's decoder vs the official parser, same bytes. records: frames "
            "to JSON lines and CSV vs the official parser + json.dumps. e2e: simulator "
            "at full rate -> manager -> consumer, kitefan vs the official client. load: 27,000 "
            "full-mode symbols at 1 tick/s: CPU, memory, latency. columnar: tick batches to "
            "Arrow and numpy vs Tick + as_dict(). candles: a recording to 1m and 1s bars through "
            "the candle builder. fanout: simulator -> stream --publish -> "
            "Redis -> tail, vs on_ticks doing XADD per tick (needs redis-server). cli: kitefan "
            "stream itself at that load (--rate 2): jsonl, the dashboard, a slow reader, max "
            "rate to a file. recording: --record's CPU at the realistic load, bytes per tick on "
            "disk vs raw frames vs Parquet, export to Parquet. replay: kitefan replay --speed max "
            "-> a counting client. share: three stream --share "
            "processes, the holder of a key SIGKILLed, the takeover timed (needs redis-server; "
            "--seconds is the lease). merge: the redundancy merge's CPU at "
            "27,000 symbols on 6 keys. redundancy: the realistic load on 6 keys with "
            "redundancy = 2 vs without, the whole stream's CPU. all: each in turn."
        ),
    ] = Which.ALL,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            min=1,
            help=f"Rounds of each benchmark (load: runs); figures are medians "
            f"[default: decode {DEFAULTS['decode'][0]}, records {DEFAULTS['records'][0]}, "
            f"e2e {DEFAULTS['e2e'][0]}, load {DEFAULTS['load'][0]}, "
            f"columnar {DEFAULTS['columnar'][0]}, candles {DEFAULTS['candles'][0]}, "
            f"fanout {DEFAULTS['fanout'][0]}].",
            show_default=False,
        ),
    ] = None,
    seconds: Annotated[
        float | None,
        typer.Option(
            "--seconds",
            metavar="SECONDS",
            min=0.01,
            help=f"Seconds of each sample: decode per parser per round, records per writer per "
            f"round, e2e per client per round, load the measured span [default: "
            f"{DEFAULTS['decode'][1]:g}, {DEFAULTS['records'][1]:g}, {DEFAULTS['e2e'][1]:g}, "
            f"{DEFAULTS['load'][1]:g}].",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        BenchFormat,
        typer.Option("--format", help="table for people; json for scripts."),
    ] = BenchFormat.TABLE,
    log_file: Annotated[Path | None, LOG_FILE] = None,
    debug: Annotated[bool, DEBUG] = False,
) -> None:
    """Measure decode, records, end-to-end and realistic-load figures, side by side with the
    official client where one applies, and print them with their targets and this machine.

    Examples:

    \b
      kitefan bench decode
      kitefan bench records --rounds 3 --format json
    """
    names = list(BENCHMARKS) if which is Which.ALL else [which.value]
    command = f"kitefan bench {which.value}"
    if rounds is not None:
        command += f" --rounds {rounds}"
    if seconds is not None:
        command += f" --seconds {seconds:g}"
    with reported_errors(debug, log_file):
        report = run_benchmarks(
            names, rounds=rounds, seconds=seconds, command=command, progress=_progress
        )
    match fmt:
        case BenchFormat.TABLE:
            out.print(bench_view(report))
        case BenchFormat.JSON:
            out.print(bench_json(report), markup=False, highlight=False, soft_wrap=True)
        case _:
            assert_never(fmt)
