"""The redundancy benchmark's figures, from runs given here: the medians and the ratio of CPU
with redundancy over without, round by round."""

from __future__ import annotations

from typing import Any

from kitefan.bench import Figure
from kitefan.bench.load import LoadResult
from kitefan.bench.redundancy import RedundancyResult


def run(cpu_share: float, ticks_per_s: float, duplicates: int = 0) -> dict[str, Any]:
    return {"cpu_share": cpu_share, "ticks_per_s": ticks_per_s, "duplicates": duplicates}


def result(runs: list[dict[str, Any]]) -> LoadResult:
    return LoadResult(runs=runs, keys=6, symbols=27_000, rate=1.0, seconds=20.0, warmup_s=5.0)


def test_the_figures_are_medians_and_the_ratio_is_taken_round_by_round() -> None:
    without = result([run(0.10, 27_000), run(0.08, 26_900), run(0.12, 27_100)])
    with_ = result(
        [run(0.25, 27_000, 540_000), run(0.24, 26_800, 520_000), run(0.24, 27_050, 560_000)]
    )
    measured = RedundancyResult(without, with_)
    assert [round(r, 4) for r in measured.ratios] == [2.5, 3.0, 2.0]
    assert measured.figures() == [
        Figure(
            "redundancy",
            "CPU share of one core, redundancy 1",
            10.0,
            "%",
            samples=3,
            note="27,000 full symbols on 6 keys x 3 connections, --rate 1: "
            "27,000 ticks/s delivered",
        ),
        Figure(
            "redundancy",
            "CPU share of one core, redundancy 2",
            24.0,
            "%",
            samples=3,
            note="the same symbols, each on 2 keys: 27,000 ticks/s delivered, "
            "27,000 duplicates/s merged",
        ),
        Figure(
            "redundancy",
            "CPU with redundancy 2 / without",
            2.5,
            "x",
            samples=3,
            note="each round: 2.50, 3.00, 2.00",
        ),
    ]
