"""Reproducible figures: decode and records throughput, end to end, and the realistic full load.

Each benchmark runs side by side with its baseline in one go (the official ``kiteconnect``
client, where one applies), takes the median of several rounds, and reports the machine it ran
on. Speed is printed, never asserted. ``kitefan bench`` runs them
(:func:`kitefan.bench.report.run_benchmarks`); ``benchmarks/`` holds thin scripts that call the
same functions.

Modules: :mod:`~kitefan.bench.decode` (decode throughput), :mod:`~kitefan.bench.records`
(frames to JSON lines and CSV against the official parser and ``json.dumps``),
:mod:`~kitefan.bench.endtoend` (simulator at full rate → manager → counting consumer),
:mod:`~kitefan.bench.official` (the same with the official client, run in its own process),
:mod:`~kitefan.bench.load` (the realistic full load: CPU share, memory, latency),
:mod:`~kitefan.bench.columnar` (tick batches to Arrow and numpy),
:mod:`~kitefan.bench.candles` (a recording to candles),
:mod:`~kitefan.bench.harness` (processes and readings) and :mod:`~kitefan.bench.report` (figures,
targets, the report). :mod:`~kitefan.bench.cli_load` measures ``kitefan stream`` itself, in
its own process, at the realistic load; :mod:`~kitefan.bench.fanout` the fan-out through Redis;
:mod:`~kitefan.bench.recording` what ``--record`` costs and keeps, and export to Parquet;
:mod:`~kitefan.bench.replay` ``kitefan replay --speed max`` to a counting client.
:mod:`~kitefan.bench.share` a ``--share`` takeover.

Owns: :func:`machine` and :class:`Figure`. Must not import asyncio, websockets, rich or typer.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any

__all__ = ["Figure", "machine"]


def machine() -> str:
    """One line describing this machine, for the figures."""
    cpu = platform.processor() or platform.machine()
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{model or cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure, with its target when the design sets one.

    Attributes:
        benchmark: ``decode``, ``records``, ``e2e``, ``load``, ``columnar``, ``candles``,
            ``fanout``, ``cli``, ``recording``, ``replay``, ``share``, ``merge`` or ``redundancy``.
        name: what was measured, as the table shows it.
        value: the median (or the percentile the name says); ``None`` if it could not be measured.
        unit: ``ticks/s``, ``x``, ``s``, ``%``, ``MB`` or ``ms``; ``cli``'s also ``lines/s``,
            ``ticks`` (a count) and ``reconnects``; ``share``'s also ``refusals`` and
            ``connections``; ``merge``'s also ``ns``.
        target: the design's target, as text (``>= 10x``), or empty.
        ok: whether the value meets the target; ``None`` without a target or a value.
        samples: how many rounds, windows or frames the figure is taken over.
        note: what the figure includes or excludes, in a few words.
    """

    benchmark: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None
    samples: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``kitefan bench --format json``)."""
        return {
            "benchmark": self.benchmark,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target or None,
            "ok": self.ok,
            "samples": self.samples,
            "note": self.note,
        }
