"""Candles throughput: a recording's tick frames through :class:`~kitefan.candles.CandleBuilder`
at full speed.

The frames are generated the way a session's frames look: 1,000 symbols (NSE equities and NFO
futures, full mode with exchange timestamps),
frames of 100 packets, each symbol ticking twice a second, the exchange clock moving one second
every 20 frames; 2,000 frames (200,000 ticks, 100 seconds of market), each a
:class:`~kitefan.events.TickBatch` as a feed, a Redis tail or a recording hands it on. They are
written once to a recording in a temporary directory by kitefan's own
:class:`~kitefan.recording.Recorder` (what ``--record`` writes). Each round reads the recording
(:meth:`~kitefan.recording.Recording.ticks`: the file read, its chunks decompressed, a batch per
frame) into a fresh builder (``clock=None``: the frames' receive times are the clock, as
``kitefan candles --recording`` runs it) and flushes it, timed, for the intervals ``1m`` (most
ticks land in their symbol's current bar) and ``1s`` (every tick but one of each symbol's second
starts or closes a bar: the cost of bars out); and the same frames from memory to ``1m`` bars,
the builder alone. Before timing, the bars of the first frames must equal a recomputation from
their decoded ticks, and the recording must give back every frame. Every figure is the median
over the rounds.

Owns: the candles benchmark. Must not import websockets.
"""

from __future__ import annotations

import asyncio
import functools
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitefan.bench import Figure
from kitefan.bench.harness import BenchmarkError
from kitefan.candles import CandleBuilder
from kitefan.codec import encode_frame
from kitefan.events import TickBatch
from kitefan.models import Tick

__all__ = ["TARGET", "CandlesResult", "run_candles_benchmark", "session_frames"]

#: The issue's target: candles from frames at a million ticks a second.
TARGET = 1_000_000
#: What each figure times: (the source, the interval).
RUNS = {"recording to 1m": ("recording", 60), "recording to 1s": ("recording", 1),
        "frames to 1m": ("frames", 60)}  # fmt: skip


def session_frames(
    frames: int = 2000, symbols: int = 1000, packets: int = 100, seed: int = 1
) -> list[TickBatch]:
    """Full-mode frames of a session: each symbol twice a second, the clock moving on."""
    rng = random.Random(seed)
    tokens = [(1000 + i) << 8 | (1 if i % 4 else 2) for i in range(symbols)]
    price = {t: rng.randrange(5_000, 400_000) for t in tokens}
    volume = dict.fromkeys(tokens, 0)
    start = 1_764_560_700  # 2025-12-01 09:15:00 IST
    per_second = 2 * symbols // packets
    out = []
    for n in range(frames):
        second = start + n // per_second
        ticks = []
        for i in range(packets):
            token = tokens[(n * packets + i) % symbols]
            price[token] = max(100, price[token] + rng.randrange(-40, 41))
            volume[token] += rng.randrange(1, 500)
            quote = Tick.quote(
                token,
                last_price=price[token],
                last_traded_quantity=1,
                average_traded_price=price[token],
                volume_traded=volume[token],
                total_buy_quantity=1000,
                total_sell_quantity=1000,
                open=price[token],
                high=price[token],
                low=price[token],
                close=price[token],
            )
            ticks.append(
                Tick.full(
                    quote,
                    last_trade_time=second,
                    oi=token % 1000,
                    oi_day_high=0,
                    oi_day_low=0,
                    exchange_timestamp=second,
                    depth=[(1, price[token], 1)] * 10,
                )
            )
        wall = second + 0.25 + (n % per_second) / per_second / 2
        out.append(TickBatch("key0", n % 3, encode_frame(ticks), float(n), wall, count=packets))
    return out


@dataclass(frozen=True)
class CandlesResult:
    """Ticks per second through the builder, per interval: every round's sample."""

    ticks: int
    frames: int
    samples: dict[str, list[float]]
    bars: dict[str, int]
    rounds: int

    @property
    def rates(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.samples.items()}

    def figures(self) -> list[Figure]:
        out = []
        for name, rate in self.rates.items():
            target = f">= {TARGET / 1e6:g}M" if name == "recording to 1m" else ""
            source = (
                "Recording.ticks() (read, decompressed) into CandleBuilder.add"
                if name.startswith("recording")
                else "frames in memory into CandleBuilder.add (the builder alone)"
            )
            out.append(
                Figure(
                    "candles",
                    f"{name} bars",
                    rate,
                    "ticks/s",
                    target=target,
                    ok=rate >= TARGET if target else None,
                    samples=self.rounds,
                    note=f"{source}, then flush; {self.ticks:,} full-mode ticks of 1,000 "
                    f"symbols in {self.frames:,} frames, {self.bars[name]:,} bars",
                )
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "frames": self.frames,
            "rounds": self.rounds,
            "rates": self.rates,
            "samples": self.samples,
            "bars": self.bars,
        }


def _check(batches: list[TickBatch]) -> None:
    """The builder's bars of some frames equal the same bars from their decoded ticks."""
    sample = batches[:60]
    builder = CandleBuilder(1, clock=None)
    bars = [c for b in sample for c in builder.add(b)] + builder.flush()
    groups: dict[tuple[int, int], list[float]] = {}
    for b in sample:
        for tick in b.ticks:
            stamp = tick.exchange_epoch_s or 0
            groups.setdefault((tick.instrument_token, stamp), []).append(tick.last_price)
    got = {(c.instrument_token, c.start): (c.open, c.high, c.low, c.close) for c in bars}
    want = {k: (v[0], max(v), min(v), v[-1]) for k, v in groups.items()}
    if got != want:
        raise BenchmarkError("the candle builder disagrees with the decoded ticks")


async def _write(path: Path, batches: list[TickBatch]) -> None:
    from kitefan.recording import Recorder

    async with Recorder(path, symbols=lambda: {}) as recorder:
        for i, batch in enumerate(batches):
            recorder.add(batch)
            if i % 64 == 0:
                await asyncio.sleep(0)  # let the writer hand chunks on, as the loop would


def _rate(run: Callable[[], int], ticks: int, min_s: float) -> tuple[float, int]:
    done = 0
    bars = 0
    start = time.perf_counter()
    while True:
        bars = run()
        done += ticks
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return done / elapsed, bars


def run_candles_benchmark(
    rounds: int = 5,
    min_s: float = 0.5,
    progress: Callable[[str], None] | None = None,
    frames: int = 2000,
) -> CandlesResult:
    """Time the builder over the recording's frames (and the frames in memory), per interval,
    rounds interleaved."""
    from kitefan.recording import Recording

    batches = session_frames(frames)
    _check(batches)
    ticks = sum(len(b) for b in batches)

    def run(source: Callable[[], Iterable[TickBatch]], interval: int) -> int:
        builder = CandleBuilder(interval, clock=None)
        add = builder.add
        for batch in source():
            add(batch)
        rest = builder.flush()
        return builder.closed + sum(1 for c in rest if c.partial)

    samples: dict[str, list[float]] = {name: [] for name in RUNS}
    bars: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="kitefan-bench-candles-") as tmp:
        path = Path(tmp) / "session.kfr"
        asyncio.run(_write(path, batches))
        recording = Recording(path)
        back = list(recording.ticks())
        if [b.frame for b in back] != [b.frame for b in batches]:
            raise BenchmarkError("the recording did not give back the frames written to it")
        del back
        sources = {"recording": recording.ticks, "frames": lambda: batches}
        for index in range(rounds):
            for name, (source, interval) in RUNS.items():
                rate, bars[name] = _rate(
                    functools.partial(run, sources[source], interval), ticks, min_s
                )
                samples[name].append(rate)
            if progress is not None:
                line = ", ".join(f"{name} {values[-1]:,.0f}" for name, values in samples.items())
                progress(f"candles round {index + 1}/{rounds}: {line} ticks/s")
    return CandlesResult(
        ticks=ticks, frames=len(batches), samples=samples, bars=bars, rounds=rounds
    )
