"""Columnar throughput: tick batches to numpy arrays and Arrow tables, against Tick objects + dicts.

Two frame sets, 400 frames of 100 packets each, built with kitefan's encoder from a seeded walk:
uniform full-mode frames (NSE, one connection in full mode, the case the design's target is
set on) and :func:`kitefan.bench.decode.mixed_frames` (full, quote, LTP and index packets across
six segments, mixed within each frame). Each becomes 400 :class:`~kitefan.events.TickBatch`
tagged with three keys and three connections, as a recorder holds them. Per frame set, each
round times, in turn:

* ``to Arrow`` (:func:`~kitefan.columnar.batches_to_arrow`): the 400 batches to one
  ``pyarrow.Table`` (key, connection and receive times included);
* ``to numpy`` (:func:`~kitefan.columnar.batches_to_numpy`): the same to one dict of numpy arrays;
* ``decode + as_dict()``: ``decode_packets`` then ``as_dict()`` on every tick, the row-wise way
  to the same values;

and, on the full-mode frames only, ``to Arrow per batch``: ``TickBatch.to_arrow()`` one batch
at a time (the cost of one call per frame). Every figure is the median over the rounds. Before
timing, the Arrow table of the first frames must equal their dicts.

Owns: the columnar benchmark. Must not import asyncio or websockets.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kitefan.bench import Figure
from kitefan.bench.decode import mixed_frames
from kitefan.bench.harness import BenchmarkError
from kitefan.codec import decode_packets, encode_frame
from kitefan.events import TickBatch
from kitefan.models import Tick

__all__ = [
    "ARROW",
    "ARROW_CPU",
    "DICTS",
    "NUMPY",
    "PER_BATCH",
    "TARGET",
    "ColumnarResult",
    "full_frames",
    "run_columnar_benchmark",
]

ARROW = "to Arrow"
ARROW_CPU = "to Arrow, CPU time"
NUMPY = "to numpy"
DICTS = "decode + as_dict()"
PER_BATCH = "to Arrow per batch"
FULL = "full"
MIXED = "mixed"

#: The design's target: Arrow tables from full-mode frames.
TARGET = 5_000_000


def full_frames(frames: int = 400, packets: int = 100, seed: int = 1) -> list[bytes]:
    """Uniform full-mode frames of NSE tokens: every packet 184 bytes."""
    rng = random.Random(seed)
    out = []
    for _ in range(frames):
        ticks = []
        for _ in range(packets):
            token = rng.randrange(1, 2**23) << 8 | 1
            raw = rng.randrange(5_000, 400_000)
            close = round(raw * rng.uniform(0.97, 1.03))
            quote = Tick.quote(
                token,
                last_price=raw,
                last_traded_quantity=rng.randrange(1, 500),
                average_traded_price=(raw + close) // 2,
                volume_traded=rng.randrange(10_000, 50_000_000),
                total_buy_quantity=rng.randrange(1000, 900_000),
                total_sell_quantity=rng.randrange(1000, 900_000),
                open=close,
                high=max(raw, close) + 200,
                low=min(raw, close) - 200,
                close=close,
            )
            ts = 1_764_000_000 + rng.randrange(20_000)
            depth = [
                (rng.randrange(1, 5000), raw - 5 * (i + 1), rng.randrange(1, 40)) for i in range(5)
            ]
            depth += [
                (rng.randrange(1, 5000), raw + 5 * (i + 1), rng.randrange(1, 40)) for i in range(5)
            ]
            ticks.append(
                Tick.full(
                    quote,
                    last_trade_time=ts - 1,
                    oi=0,
                    oi_day_high=0,
                    oi_day_low=0,
                    exchange_timestamp=ts,
                    depth=depth,
                )
            )
        out.append(encode_frame(ticks))
    return out


def _batches(frames: list[bytes]) -> list[TickBatch]:
    wall = 1_764_000_000.0
    return [
        TickBatch(f"key{i % 3}", i // 3 % 3, frame, float(i), wall + i / 10)
        for i, frame in enumerate(frames)
    ]


@dataclass(frozen=True)
class ColumnarResult:
    """Ticks per second of each way, on each frame set: every round's sample and the median.

    Attributes:
        ticks: ticks in each frame set (one pass).
        frames: frames in each frame set.
        samples: ``"<way>, <frame set>"`` to its rate in every round.
        rounds: how many rounds were run.
        seconds: the least time each sample ran for.
    """

    ticks: dict[str, int]
    samples: dict[str, list[float]]
    rounds: int
    seconds: float
    frames: int = 400

    @property
    def rates(self) -> dict[str, float]:
        """The median rate of each way on each frame set."""
        return {name: statistics.median(values) for name, values in self.samples.items()}

    def ratio(self, frames: str = FULL) -> float | None:
        """The median over rounds of ``to Arrow / decode + as_dict()`` on one frame set: the
        speed-up, which machine load changes less than either rate."""
        ours, theirs = (
            self.samples.get(f"{ARROW}, {frames}"),
            self.samples.get(f"{DICTS}, {frames}"),
        )
        if not ours or not theirs:
            return None
        return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))

    def figures(self) -> list[Figure]:
        """The figures, with the design's target on Arrow from full-mode frames."""
        rates = self.rates
        n = self.rounds
        notes = {
            ARROW: "batches_to_arrow: every batch to one pyarrow.Table, tags included",
            ARROW_CPU: "the same calls timed by the process's CPU time (what waiting for a "
            "core on a loaded machine does not count)",
            NUMPY: "batches_to_numpy: every batch to one dict of numpy arrays",
            DICTS: "decode_packets, then as_dict() on every tick",
            PER_BATCH: "TickBatch.to_arrow(), one call per batch of 100 ticks",
        }
        out = []
        for frames, label in ((FULL, "full mode"), (MIXED, "mixed")):
            for way in (ARROW, ARROW_CPU, NUMPY, DICTS, PER_BATCH):
                name = f"{way}, {frames}"
                if name not in rates:
                    continue
                target = f">= {TARGET / 1e6:g}M" if (way, frames) == (ARROW, FULL) else ""
                out.append(
                    Figure(
                        "columnar",
                        f"{way}, {label}",
                        rates[name],
                        "ticks/s",
                        target=target,
                        ok=rates[name] >= TARGET if target else None,
                        samples=n,
                        note=f"{notes[way]}; {self.ticks[frames]:,} ticks in {self.frames} frames",
                    )
                )
            out.append(
                Figure(
                    "columnar",
                    f"to Arrow / decode + as_dict(), {label}",
                    self.ratio(frames),
                    "x",
                    samples=n,
                    note="per-round ratio, median: the same values, columns vs dicts",
                )
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "ticks": self.ticks,
            "frames": self.frames,
            "rounds": self.rounds,
            "seconds": self.seconds,
            "rates": self.rates,
            "samples": self.samples,
            "ratio": {frames: self.ratio(frames) for frames in (FULL, MIXED)},
        }


def _rate(fn: Callable[[], Any], ticks: int, min_s: float) -> tuple[float, float]:
    """Ticks per second of ``fn`` (one pass over a frame set per call), for at least ``min_s``:
    per second of wall time, and per second of the process's CPU time."""
    done = 0
    start = time.perf_counter()
    cpu = time.process_time()
    while True:
        fn()
        done += ticks
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return done / elapsed, done / max(time.process_time() - cpu, 1e-9)


def run_columnar_benchmark(
    rounds: int = 5,
    min_s: float = 0.3,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
    frames: int = 400,
) -> ColumnarResult:
    """Time each way on each frame set, rounds interleaved; return every sample.

    ``frames`` is the size of each frame set (100 packets a frame).

    Raises:
        BenchmarkError: numpy or pyarrow is not installed, or the table disagrees with the dicts.
    """
    try:
        from kitefan.columnar import batches_to_arrow, batches_to_numpy
    except ImportError as exc:
        raise BenchmarkError(
            f"kitefan bench columnar needs numpy and pyarrow ({exc.name} is missing): "
            "pip install -e '.[parquet]'"
        ) from exc
    sets = {
        FULL: _batches(full_frames(frames, seed=seed)),
        MIXED: _batches(mixed_frames(frames, seed=seed)),
    }
    ticks = {name: sum(len(b) for b in batches) for name, batches in sets.items()}
    for batches in sets.values():
        sample = batches[:3]
        rows = batches_to_arrow(sample).to_pylist()
        dicts = [t.as_dict() for b in sample for t in b.ticks]
        fields = ("instrument_token", "mode", "last_price", "change", "exchange_timestamp")
        if [[r[f] for f in fields] for r in rows] != [[d.get(f) for f in fields] for d in dicts]:
            raise BenchmarkError("batches_to_arrow disagrees with as_dict() on the first frames")

    def ways(batches: list[TickBatch]) -> dict[str, Callable[[], Any]]:
        frames = [b.frame for b in batches]
        return {
            ARROW: lambda: batches_to_arrow(batches),
            NUMPY: lambda: batches_to_numpy(batches),
            DICTS: lambda: [t.as_dict() for f in frames for t in decode_packets(f)[0]],
        }

    timed: dict[str, tuple[Callable[[], Any], int]] = {}
    for name, batches in sets.items():
        for way, fn in ways(batches).items():
            timed[f"{way}, {name}"] = (fn, ticks[name])
    full = sets[FULL]
    timed[f"{PER_BATCH}, {FULL}"] = (lambda: [b.to_arrow() for b in full], ticks[FULL])
    cpu_name = f"{ARROW_CPU}, {FULL}"
    samples: dict[str, list[float]] = {name: [] for name in timed}
    samples[cpu_name] = []
    for index in range(rounds):
        for name, (fn, n) in timed.items():
            wall, cpu = _rate(fn, n, min_s)
            samples[name].append(wall)
            if name == f"{ARROW}, {FULL}":
                samples[cpu_name].append(cpu)
        if progress is not None:
            line = ", ".join(f"{name} {values[-1]:,.0f}" for name, values in samples.items())
            progress(f"columnar round {index + 1}/{rounds}: {line} ticks/s")
    return ColumnarResult(ticks=ticks, samples=samples, rounds=rounds, seconds=min_s, frames=frames)
