"""Run the chosen benchmarks in one go and gather their figures, the machine and the date.

``kitefan bench`` calls :func:`run_benchmarks` and renders the :class:`BenchReport`. Defaults are
chosen so that ``kitefan bench all`` finishes in about three minutes on a 2-core machine (two of
them ``cli``):

========  ========  ============================================================
benchmark rounds    seconds
========  ========  ============================================================
decode    5         0.3 per parser per round (3 parsers, interleaved)
records   5         0.3 per writer per round (4 writers, interleaved)
e2e       3         2 per client per round (kitefan, then the official client)
load      1         20 measured per run, after the subscribe burst and 5 s more
columnar  5         0.3 per way per round (7 ways, interleaved)
candles   5         0.5 per run per round (recording to 1m and 1s, frames to 1m; interleaved)
fanout    3         2 per pipeline per round (kitefan, then the baseline)
cli       1         20 measured per case (slow reader, max rate: 10), after 5 s more
recording 3         10 simulated seconds of the realistic load (270,000 ticks) per round
replay    3         2 per recording per round, after 1 s (2 recordings)
share     3         10: the lease (a takeover takes about that long)
merge     5         3 market seconds of 27,000 symbols on 6 keys (redundancy 2) per round
redund.   3         20 measured per run (redundancy 1, then 2), after the burst and 5 s more
========  ========  ============================================================

``rounds`` and ``seconds``, when given, apply to every benchmark chosen. Every figure is the
median over its rounds.

Owns: :class:`BenchReport`, :func:`run_benchmarks`, the benchmark names. Must not import rich or
typer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kitefan import __version__
from kitefan.bench import Figure, machine
from kitefan.bench.candles import run_candles_benchmark
from kitefan.bench.cli_load import run_cli_benchmark
from kitefan.bench.columnar import run_columnar_benchmark
from kitefan.bench.decode import run_decode_benchmark
from kitefan.bench.endtoend import run_endtoend_benchmark
from kitefan.bench.fanout import run_fanout_benchmark
from kitefan.bench.load import run_load_benchmark
from kitefan.bench.merge import run_merge_benchmark
from kitefan.bench.recording import run_recording_benchmark
from kitefan.bench.records import run_records_benchmark
from kitefan.bench.redundancy import run_redundancy_benchmark
from kitefan.bench.replay import run_replay_benchmark
from kitefan.bench.share import run_share_benchmark

__all__ = ["BENCHMARKS", "DEFAULTS", "BenchReport", "run_benchmarks"]

#: The benchmarks, in the order ``all`` runs them.
BENCHMARKS = (
    "decode",
    "records",
    "e2e",
    "load",
    "columnar",
    "candles",
    "fanout",
    "cli",
    "recording",
    "replay",
    "share",
    "merge",
    "redundancy",
)

#: (rounds, seconds) of each benchmark when not given.
DEFAULTS: dict[str, tuple[int, float]] = {
    "decode": (5, 0.3),
    "records": (5, 0.3),
    "e2e": (3, 2.0),
    "load": (1, 20.0),
    "columnar": (5, 0.3),
    "candles": (5, 0.5),
    "fanout": (3, 2.0),
    "share": (3, 10.0),
    "cli": (1, 20.0),
    "recording": (3, 10.0),
    "replay": (3, 2.0),
    "merge": (5, 3.0),
    "redundancy": (3, 20.0),
}


@dataclass(frozen=True)
class BenchReport:
    """Every figure of one ``kitefan bench`` run, and where and when it ran."""

    machine: str
    date: str
    command: str
    figures: tuple[Figure, ...]
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``kitefan bench --format json``)."""
        return {
            "kitefan": __version__,
            "machine": self.machine,
            "date": self.date,
            "command": self.command,
            "figures": [f.as_dict() for f in self.figures],
            "details": self.details,
        }


def run_benchmarks(
    names: Sequence[str],
    *,
    rounds: int | None = None,
    seconds: float | None = None,
    command: str = "kitefan bench",
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Run the named benchmarks (see :data:`BENCHMARKS`) one after the other.

    Args:
        names: which benchmarks, in the order to run them.
        rounds: rounds (load: runs) of each benchmark (default: :data:`DEFAULTS`).
        seconds: the seconds of each sample, or of load's measured span (default: DEFAULTS).
        command: the command line, for the report.
        progress: told one line per round or step.

    Raises:
        ValueError: an unknown benchmark name.
        BenchmarkError: a benchmark could not run.
    """
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    for name in names:
        n, s = DEFAULTS[name]
        n = rounds if rounds is not None else n
        s = seconds if seconds is not None else s
        if name == "decode":
            decode = run_decode_benchmark(rounds=n, min_s=s, progress=progress)
            figures += decode.figures()
            details[name] = decode.as_dict()
        elif name == "records":
            records = run_records_benchmark(rounds=n, min_s=s, progress=progress)
            figures += records.figures()
            details[name] = records.as_dict()
        elif name == "e2e":
            e2e = run_endtoend_benchmark(rounds=n, seconds=s, progress=progress)
            figures += e2e.figures()
            details[name] = e2e.as_dict()
        elif name == "columnar":
            columnar = run_columnar_benchmark(rounds=n, min_s=s, progress=progress)
            figures += columnar.figures()
            details[name] = columnar.as_dict()
        elif name == "candles":
            candles = run_candles_benchmark(rounds=n, min_s=s, progress=progress)
            figures += candles.figures()
            details[name] = candles.as_dict()
        elif name == "fanout":
            fanout = run_fanout_benchmark(rounds=n, seconds=s, progress=progress)
            figures += fanout.figures()
            details[name] = fanout.as_dict()
        elif name == "recording":
            recording = run_recording_benchmark(rounds=n, seconds=s, progress=progress)
            figures += recording.figures()
            details[name] = recording.as_dict()
        elif name == "replay":
            replayed = run_replay_benchmark(rounds=n, seconds=s, progress=progress)
            figures += replayed.figures()
            details[name] = replayed.as_dict()
        elif name == "share":
            share = run_share_benchmark(rounds=n, lease_s=s, progress=progress)
            figures += share.figures()
            details[name] = share.as_dict()
        elif name == "merge":
            merged = run_merge_benchmark(rounds=n, seconds=s, progress=progress)
            figures += merged.figures()
            details[name] = merged.as_dict()
        elif name == "redundancy":
            redundant = run_redundancy_benchmark(rounds=n, seconds=s, progress=progress)
            figures += redundant.figures()
            details[name] = redundant.as_dict()
        elif name == "cli":
            cli = run_cli_benchmark(rounds=n, seconds=s, progress=progress)
            figures += cli.figures()
            details[name] = cli.as_dict()
        else:
            load = run_load_benchmark(rounds=n, seconds=s, progress=progress)
            figures += load.figures()
            details[name] = load.as_dict()
    return BenchReport(
        machine=machine(),
        date=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        command=command,
        figures=tuple(figures),
        details=details,
    )
