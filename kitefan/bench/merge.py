"""The merge's CPU at the realistic load: 27,000 full-mode symbols on 6 keys with redundancy 2.

The planner places 27,000 NSE equities in full mode on 6 keys × 3 connections with
``redundancy = 2`` (every symbol on two keys: 54,000 subscriptions, 3,000 per connection). Each
symbol ticks once a second (the realistic load's ``--rate 1``) and each connection gets ten
frames a second, as the simulator spreads a second over ten slices, so 54,000 packets a second
reach the merge in 180 frames. The frames are built once (184-byte packets, the exchange
timestamp moving each second, the price and volume changing), in arrival order: each slice, every
connection of every key in plan order, so a snapshot's second copy comes a few frames after the
first. Each round feeds every frame of ``seconds`` market seconds to a fresh
:class:`~kitefan.merge.Merge` (``time.process_time`` around the pushes) and checks that every
snapshot came out once and every second copy was counted a duplicate.

Figures: the merge's CPU share of one core at that load (CPU over the market seconds it merged),
and its cost per packet in. Without redundancy there is no merge: this is the whole CPU
redundancy adds beyond reading the second copies off the sockets (which costs what the
realistic-load benchmark's receive path costs, once more). Every figure is the median over the
rounds.

Owns: the merge benchmark. Must not import asyncio or websockets.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kitefan.bench import Figure
from kitefan.bench.harness import BenchmarkError
from kitefan.codec import encode_frame
from kitefan.events import TickBatch
from kitefan.merge import Merge
from kitefan.models import Mode, Tick
from kitefan.planner import KeyCapacity, plan
from kitefan.settings import Strategy, SymbolSpec

__all__ = ["MergeResult", "redundant_frames", "run_merge_benchmark"]

SYMBOLS = 27_000
KEYS = 6
SLICES = 10  # frames per connection per second


def redundant_frames(
    seconds: int, symbols: int = SYMBOLS, keys: int = KEYS, seed: int = 1
) -> tuple[list[TickBatch], dict[int, tuple[str, ...]], list[str]]:
    """The frames of ``seconds`` market seconds on redundant keys, in arrival order, with the
    merge's routes and the key ids."""
    tokens = [(100_000 + i) << 8 | 1 for i in range(symbols)]
    key_ids = [f"k{i}" for i in range(keys)]
    placed = plan(
        [SymbolSpec(t, str(t), Mode.FULL) for t in tokens],
        [KeyCapacity(k, 3) for k in key_ids],
        strategy=Strategy.ROUND_ROBIN,
        max_symbols_per_connection=3000,
        redundancy=2,
    )
    rng = random.Random(seed)
    price = {t: rng.randrange(5_000, 400_000) for t in tokens}
    volume = dict.fromkeys(tokens, 0)
    start = 1_764_560_700  # 2025-12-01 09:15:00 IST
    slice_of = {t: i % SLICES for i, t in enumerate(tokens)}
    batches: list[TickBatch] = []
    for n in range(seconds):
        second = start + n
        ticks: dict[int, Tick] = {}
        for token in tokens:
            price[token] = max(100, price[token] + rng.randrange(-40, 41))
            volume[token] += rng.randrange(1, 500)
            p = price[token]
            quote = Tick.quote(
                token,
                last_price=p,
                last_traded_quantity=1,
                average_traded_price=p,
                volume_traded=volume[token],
                total_buy_quantity=1000,
                total_sell_quantity=1000,
                open=p,
                high=p,
                low=p,
                close=p,
            )
            ticks[token] = Tick.full(
                quote,
                last_trade_time=second,
                oi=0,
                oi_day_high=0,
                oi_day_low=0,
                exchange_timestamp=second,
                depth=[(1, p, 1)] * 10,
            )
        for part in range(SLICES):
            at = n + part / SLICES
            for key_id, connection in placed.slots():
                mine = [ticks[s.token] for s in connection.symbols if slice_of[s.token] == part]
                batches.append(
                    TickBatch(
                        key_id,
                        connection.index,
                        encode_frame(mine),
                        at,
                        start + at,
                        count=len(mine),
                    )
                )
    return batches, placed.routes(), key_ids


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The merge benchmark's rounds: CPU seconds per round over ``seconds`` market seconds."""

    cpu_s: tuple[float, ...]
    seconds: int
    packets: int
    frames: int

    @property
    def cpu_share(self) -> float:
        """The median CPU share of one core at the load (CPU per market second)."""
        return statistics.median(self.cpu_s) / self.seconds

    @property
    def ns_per_packet(self) -> float:
        return statistics.median(self.cpu_s) / self.packets * 1e9

    def figures(self) -> list[Figure]:
        note = (
            f"27,000 full symbols x 2 keys of 6, 1 tick/s: {self.packets // self.seconds:,} "
            "packets/s in; the CPU redundancy adds beside reading the second copies"
        )
        return [
            Figure(
                "merge",
                "redundancy merge: CPU share of one core",
                round(self.cpu_share * 100, 1),
                "%",
                samples=len(self.cpu_s),
                note=note,
            ),
            Figure(
                "merge",
                "redundancy merge: CPU per packet in",
                round(self.ns_per_packet),
                "ns",
                samples=len(self.cpu_s),
            ),
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "cpu_s": list(self.cpu_s),
            "seconds": self.seconds,
            "packets": self.packets,
            "frames": self.frames,
            "cpu_share": self.cpu_share,
            "ns_per_packet": self.ns_per_packet,
        }


def run_merge_benchmark(
    *, rounds: int, seconds: float, progress: Callable[[str], None] | None = None
) -> MergeResult:
    """Merge ``seconds`` (at least 1) market seconds of the redundant load ``rounds`` times."""
    span = max(1, round(seconds))
    if progress is not None:
        progress(f"merge: building {span} s of 27,000 symbols on 6 keys (redundancy 2)")
    batches, routes, key_ids = redundant_frames(span)
    packets = sum(len(b) for b in batches)
    cpu: list[float] = []
    for n in range(rounds):
        merge = Merge(key_ids, routes)
        push = merge.push
        began = time.process_time()
        out = 0
        for batch in batches:
            merged = push(batch)
            if merged is not None:
                out += merged.count
        cpu.append(time.process_time() - began)
        merge.flush()
        counts = merge.counts
        if out != packets // 2 or counts.duplicate_count != packets // 2 or counts.one_sided:
            raise BenchmarkError(
                f"merge: {out} ticks out and {counts.duplicate_count} duplicates of "
                f"{packets} packets; expected half each"
            )
        if progress is not None:
            progress(f"merge: round {n + 1}/{rounds}: {cpu[-1] / span * 100:.1f} % of a core")
    return MergeResult(tuple(cpu), span, packets, len(batches))
