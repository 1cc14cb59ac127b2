"""Records throughput: frames to JSON lines and CSV rows, kitefan against the official parser.

The frames are the decode benchmark's (:func:`kitefan.bench.decode.mixed_frames`: 400 frames of
100 packets, mostly full mode, mixed segments). Every writer takes the same frame bytes, one frame
a call, and produces the text of that frame's ticks:

* ``official _parse_binary + json.dumps``: the official client's parser (``kiteconnect`` 5.2.2),
  then ``json.dumps(tick, default=str)`` for every tick dict, lines joined: the baseline;
* ``kitefan jsonl``: :func:`kitefan.render.records.encode_jsonl` of a :class:`TickBatch` of the
  frame (key, connection and symbol added to every line; ``name_of`` a dict lookup);
* ``kitefan csv``: :func:`kitefan.render.records.encode_csv` of the same;
* ``kitefan jsonl, pure Python``: :func:`kitefan.render.records.reference_json_lines`, what runs
  when the compiled encoder is not built (and what ``json_lines`` was before it);
Columnar batches are measured by :mod:`kitefan.bench.columnar`, over many batches at once, the
way they are meant to be built.

Each batch is made from its frame inside the timed call (with its tick count given, as the
connection knows it), so no writer finds ticks decoded by an earlier pass. Rates are the median
of interleaved rounds; ratios the median of each round's ratio against the baseline. Before
timing, kitefan's lines must carry the official parser's values for the first frames.

Owns: the records benchmark. Must not import asyncio or websockets.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kitefan.bench import Figure
from kitefan.bench.decode import _official_parser, mixed_frames
from kitefan.bench.harness import BenchmarkError
from kitefan.codec import scan_frame
from kitefan.events import TickBatch
from kitefan.render.records import COMPILED, encode_csv, encode_jsonl, reference_json_lines

__all__ = [
    "CSV",
    "JSONL",
    "OFFICIAL_JSON",
    "PURE_JSONL",
    "RecordsResult",
    "run_records_benchmark",
]

#: The writers, as the figures name them.
OFFICIAL_JSON = "official _parse_binary + json.dumps"
JSONL = "kitefan jsonl"
CSV = "kitefan csv"
PURE_JSONL = "kitefan jsonl, pure Python"

_KEY = "alpha"
_WALL = 1_764_000_000.25

Writer = Callable[[bytes, int], Any]


@dataclass(frozen=True)
class RecordsResult:
    """Ticks per second of each writer on the same frames: every round's sample and the median.

    Attributes:
        ticks: ticks in the frame set (one pass).
        frames: frames in the set.
        samples: each writer's rate in every round, in round order.
        rounds: how many rounds were run.
        seconds: the least time each sample wrote for.
        compiled: whether kitefan's compiled encoder was built (else jsonl and csv are the
            pure-Python reference too).
    """

    ticks: int
    frames: int
    samples: dict[str, list[float]]
    rounds: int
    seconds: float
    compiled: bool

    @property
    def rates(self) -> dict[str, float]:
        """The median rate of each writer."""
        return {name: statistics.median(values) for name, values in self.samples.items()}

    def ratio(self, ours: str, theirs: str = OFFICIAL_JSON) -> float | None:
        """The median over rounds of ``ours / theirs`` (None when either did not run)."""
        if theirs not in self.samples or ours not in self.samples:
            return None
        pairs = zip(self.samples[ours], self.samples[theirs], strict=True)
        return statistics.median(a / b for a, b in pairs)

    def figures(self) -> list[Figure]:
        """The figures of this benchmark, with the target on the JSON lines ratio."""
        rates = self.rates
        n = self.rounds
        mix = f"{self.ticks:,} ticks in {self.frames} frames (the decode set), one frame a call"
        how = "compiled encoder" if self.compiled else "NOT BUILT: the pure-Python reference"
        out: list[Figure] = []
        if OFFICIAL_JSON in rates:
            out.append(
                Figure(
                    "records",
                    OFFICIAL_JSON,
                    rates[OFFICIAL_JSON],
                    "ticks/s",
                    samples=n,
                    note=f"kiteconnect 5.2.2, json.dumps(tick, default=str) per tick; {mix}",
                )
            )
        else:
            out.append(
                Figure(
                    "records",
                    OFFICIAL_JSON,
                    None,
                    "ticks/s",
                    note="not installed: pip install -e '.[bench]'",
                )
            )
        out += [
            Figure(
                "records",
                JSONL,
                rates[JSONL],
                "ticks/s",
                samples=n,
                note=f"encode_jsonl, from the frame bytes ({how})",
            ),
            Figure(
                "records",
                CSV,
                rates[CSV],
                "ticks/s",
                samples=n,
                note=f"encode_csv, from the frame bytes ({how})",
            ),
            Figure(
                "records",
                PURE_JSONL,
                rates[PURE_JSONL],
                "ticks/s",
                samples=n,
                note="reference_json_lines: as_dict() + stdlib json, the fallback",
            ),
        ]
        jsonl = self.ratio(JSONL)
        out += [
            Figure(
                "records",
                "kitefan jsonl / official",
                jsonl,
                "x",
                target=">= 10x",
                ok=None if jsonl is None else jsonl >= 10,
                samples=n,
                note="per-round ratio, median",
            ),
            Figure(
                "records",
                "kitefan csv / official",
                self.ratio(CSV),
                "x",
                samples=n,
                note="per-round ratio, median",
            ),
        ]
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "ticks": self.ticks,
            "frames": self.frames,
            "rounds": self.rounds,
            "seconds": self.seconds,
            "compiled": self.compiled,
            "rates": self.rates,
            "samples": self.samples,
            "ratio_jsonl": self.ratio(JSONL),
            "ratio_csv": self.ratio(CSV),
        }


def _rate(fn: Writer, frames: list[tuple[bytes, int]], ticks: int, min_s: float) -> float:
    """Ticks per second of ``fn`` over whole passes through ``frames``, for at least ``min_s``."""
    done = 0
    start = time.perf_counter()
    while True:
        for frame, count in frames:
            fn(frame, count)
        done += ticks
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return done / elapsed


def _check_agreement(
    official: Callable[[bytes], Any], frames: list[tuple[bytes, int]], name_of: Callable[[int], str]
) -> None:
    """kitefan's lines carry the official parser's values (timestamps aside: the official ones
    are naive local time) before anything is timed."""
    for frame, count in frames:
        ours = [
            json.loads(line)
            for line in encode_jsonl(
                [TickBatch(_KEY, 0, frame, 0.0, _WALL, count=count)], name_of
            ).splitlines()
        ]
        theirs = [json.loads(json.dumps(tick, default=str)) for tick in official(frame)]
        if len(ours) != len(theirs):
            raise BenchmarkError(
                f"writers disagree on the tick count: {len(ours)} vs {len(theirs)}"
            )
        for a, b in zip(ours, theirs, strict=True):
            for field in ("type", "key", "connection", "symbol"):
                a.pop(field)
            for field in ("last_trade_time", "exchange_timestamp"):
                a.pop(field, None)
                b.pop(field, None)
            if a != b:
                raise BenchmarkError(f"writers disagree: {a} vs {b}")


def run_records_benchmark(
    rounds: int = 5,
    min_s: float = 0.3,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> RecordsResult:
    """Write the same mixed frames as records with each writer, rounds interleaved.

    Args:
        rounds: how many rounds; each round times every writer once, in turn.
        min_s: the least time each writer writes for in each round (whole passes).
        seed: the seed of the frame set.
        progress: told one line per round.
    """
    raw = mixed_frames(seed=seed)
    frames = [(frame, scan_frame(frame)[0]) for frame in raw]
    ticks = sum(count for _, count in frames)
    names = {}
    for frame, count in frames:
        for tick in TickBatch(_KEY, 0, frame, 0.0, _WALL, count=count).ticks:
            names[tick.values[0]] = f"NSE:SYM{tick.values[0] >> 8}"

    def name_of(token: int) -> str:
        name = names.get(token)
        return name if name is not None else str(token)

    writers: dict[str, Writer] = {}
    official = _official_parser()
    if official is not None:
        _check_agreement(official, frames[:5], name_of)
        dumps = json.dumps

        def official_json(frame: bytes, count: int) -> str:
            return "\n".join([dumps(tick, default=str) for tick in official(frame)])

        writers[OFFICIAL_JSON] = official_json

    def jsonl(frame: bytes, count: int) -> bytes:
        return encode_jsonl([TickBatch(_KEY, 0, frame, 0.0, _WALL, count=count)], name_of)

    def csv(frame: bytes, count: int) -> bytes:
        return encode_csv([TickBatch(_KEY, 0, frame, 0.0, _WALL, count=count)], name_of)

    def pure(frame: bytes, count: int) -> str:
        return reference_json_lines([TickBatch(_KEY, 0, frame, 0.0, _WALL, count=count)], name_of)

    writers[JSONL] = jsonl
    writers[CSV] = csv
    writers[PURE_JSONL] = pure
    samples: dict[str, list[float]] = {name: [] for name in writers}
    for index in range(rounds):
        for name, fn in writers.items():
            samples[name].append(_rate(fn, frames, ticks, min_s))
        if progress is not None:
            line = ", ".join(f"{name} {values[-1]:,.0f}" for name, values in samples.items())
            progress(f"records round {index + 1}/{rounds}: {line} ticks/s")
    return RecordsResult(
        ticks=ticks,
        frames=len(frames),
        samples=samples,
        rounds=rounds,
        seconds=min_s,
        compiled=COMPILED,
    )
