"""What ``redundancy = 2`` costs end to end: the realistic load with and without it, side by side.

The same 27,000 full-mode symbols stream on the same 6 keys × 3 connections at ``--rate 1``, in
two configurations, one run of each per round, alternating so that the machine's other work falls
on both alike:

* **without**: ``redundancy = 1``, 1,500 symbols a connection, each tick arriving once;
* **with**: ``redundancy = 2``, every symbol on two keys, 3,000 subscriptions a connection, each
  tick arriving twice and merged (:mod:`kitefan.merge`) so consumers get it once.

Each run is :func:`kitefan.bench.load.run_load_benchmark`'s client in a fresh process against a
fresh simulator process: the client's CPU share of one core over the measured span, the ticks a
second its consumer got, and (with redundancy) the duplicates the merge dropped a second. The
figure is the CPU with redundancy over the CPU without: reading every packet twice plus the merge,
all of it, as a user running ``kitefan stream`` would pay. Medians over the rounds.

Owns: the redundancy benchmark. Must not import rich or typer.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kitefan.bench import Figure
from kitefan.bench.load import LoadResult, run_load_benchmark

__all__ = ["RedundancyResult", "run_redundancy_benchmark"]

KEYS = 6
SYMBOLS = 27_000


@dataclass(frozen=True, slots=True)
class RedundancyResult:
    """The runs without and with redundancy, one of each per round."""

    without: LoadResult
    with_: LoadResult

    @property
    def ratios(self) -> list[float]:
        """Each round's CPU with redundancy over its CPU without."""
        return [
            w["cpu_share"] / o["cpu_share"]
            for o, w in zip(self.without.runs, self.with_.runs, strict=True)
        ]

    def figures(self) -> list[Figure]:
        n = len(self.ratios)
        load = f"{SYMBOLS:,} full symbols on {KEYS} keys x 3 connections, --rate 1"
        without = self.without.median("cpu_share")
        with_ = self.with_.median("cpu_share")
        runs = ", ".join(f"{r:.2f}" for r in self.ratios)
        return [
            Figure(
                "redundancy",
                "CPU share of one core, redundancy 1",
                round(without * 100, 1),
                "%",
                samples=n,
                note=f"{load}: {self.without.median('ticks_per_s'):,.0f} ticks/s delivered",
            ),
            Figure(
                "redundancy",
                "CPU share of one core, redundancy 2",
                round(with_ * 100, 1),
                "%",
                samples=n,
                note=f"the same symbols, each on 2 keys: "
                f"{self.with_.median('ticks_per_s'):,.0f} ticks/s delivered, "
                f"{self.with_.median('duplicates') / self.with_.seconds:,.0f} duplicates/s merged",
            ),
            Figure(
                "redundancy",
                "CPU with redundancy 2 / without",
                round(statistics.median(self.ratios), 2),
                "x",
                samples=n,
                note=f"each round: {runs}",
            ),
        ]

    def as_dict(self) -> dict[str, Any]:
        return {"without": self.without.as_dict(), "with": self.with_.as_dict()}


def run_redundancy_benchmark(
    *,
    rounds: int,
    seconds: float,
    warmup_s: float = 5.0,
    progress: Callable[[str], None] | None = None,
) -> RedundancyResult:
    """``rounds`` rounds of one run without redundancy and one with, ``seconds`` measured each.

    Raises:
        BenchmarkError: a simulator or a client failed.
    """
    without: list[LoadResult] = []
    with_: list[LoadResult] = []
    per_connection = SYMBOLS // (KEYS * 3)
    for n in range(rounds):
        if progress is not None:
            progress(f"redundancy: round {n + 1}/{rounds}")
        for redundancy, runs in ((1, without), (2, with_)):
            runs.append(
                run_load_benchmark(
                    seconds=seconds,
                    warmup_s=warmup_s,
                    keys=KEYS,
                    tokens_per_connection=per_connection * redundancy,
                    redundancy=redundancy,
                    progress=progress,
                )
            )
    return RedundancyResult(_joined(without), _joined(with_))


def _joined(results: list[LoadResult]) -> LoadResult:
    first = results[0]
    return LoadResult(
        runs=[run for result in results for run in result.runs],
        keys=first.keys,
        symbols=first.symbols,
        rate=first.rate,
        seconds=first.seconds,
        warmup_s=first.warmup_s,
    )
