"""Decode throughput: kitefan's decoder against the official client's parser, on the same bytes.

The frame set is what a busy connection sees: mostly full-mode packets, some quote, LTP and
index packets, across NSE, NFO, CDS, BCD, MCX and the indices, about a hundred packets a frame.
It is built with kitefan's encoder from a seeded walk, so every run decodes the same bytes.

Three rates, each the median of several interleaved rounds, and two ratios (the median of each
round's ratio):

* ``kitefan decode_frame``: bytes to Tick objects (every field parsed; prices and timestamps are
  converted when read);
* ``kitefan decode_frame + as_dict()``: the same, then the official client's dict for every tick,
  which is exactly the work the official parser does;
* ``kiteconnect _parse_binary``: the official parser (``kiteconnect`` 5.2.2), if installed.

Before timing, both parsers must read the same values from the first frames. Garbage collection
stays on: its cost belongs to decoding.

Owns: the decode benchmark. Must not import asyncio or websockets.
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
from kitefan.codec import decode_frame, encode_frame
from kitefan.models import Tick

__all__ = [
    "COMPAT",
    "KITEFAN",
    "KITEFAN_DICTS",
    "OFFICIAL",
    "DecodeResult",
    "mixed_frames",
    "run_decode_benchmark",
]

#: The parsers, as the figures name them.
KITEFAN = "kitefan decode_frame"
KITEFAN_DICTS = "kitefan + as_dict()"
COMPAT = "kitefan.compat ticks"
OFFICIAL = "official _parse_binary"

# (segment, share of tokens, price range in rupees)
_SEGMENTS = [
    (1, 0.45, (50, 4000)),
    (2, 0.30, (5, 900)),
    (3, 0.05, (80, 90)),
    (6, 0.03, (80, 90)),
    (7, 0.07, (300, 90000)),
    (9, 0.10, (10000, 80000)),
]
_DIVISOR = {3: 10_000_000, 6: 10_000}


def _tick(rng: random.Random, token: int, segment: int, price: float) -> Tick:
    divisor = _DIVISOR.get(segment, 100)
    raw = round(price * divisor)
    close = round(raw * rng.uniform(0.97, 1.03))
    roll = rng.random()
    if segment == 9:
        high, low = max(raw, close) + 500, min(raw, close) - 500
        if roll < 0.2:
            return Tick.ltp(token, raw)
        ts = 1_764_000_000 + rng.randrange(20_000) if roll < 0.6 else None
        return Tick.index(
            token,
            last_price=raw,
            high=high,
            low=low,
            open=close,
            close=close,
            change=raw - close,
            exchange_timestamp=ts,
        )
    if roll < 0.10:
        return Tick.ltp(token, raw)
    step = max(1, divisor // 20)
    quote = Tick.quote(
        token,
        last_price=raw,
        last_traded_quantity=rng.randrange(1, 500),
        average_traded_price=(raw + close) // 2,
        volume_traded=rng.randrange(10_000, 50_000_000),
        total_buy_quantity=rng.randrange(1000, 900_000),
        total_sell_quantity=rng.randrange(1000, 900_000),
        open=close,
        high=max(raw, close) + step * 40,
        low=min(raw, close) - step * 40,
        close=close,
    )
    if roll < 0.30:
        return quote
    depth = [(rng.randrange(1, 5000), raw - step * (i + 1), rng.randrange(1, 40)) for i in range(5)]
    depth += [
        (rng.randrange(1, 5000), raw + step * (i + 1), rng.randrange(1, 40)) for i in range(5)
    ]
    ts = 1_764_000_000 + rng.randrange(20_000)
    oi = rng.randrange(0, 5_000_000) if segment in (2, 5, 7) else 0
    return Tick.full(
        quote,
        last_trade_time=ts - 1,
        oi=oi,
        oi_day_high=oi,
        oi_day_low=oi // 2,
        exchange_timestamp=ts,
        depth=depth,
    )


def mixed_frames(frames: int = 400, packets: int = 100, seed: int = 1) -> list[bytes]:
    """A realistic, reproducible set of frames (see the module docstring)."""
    rng = random.Random(seed)
    universe: list[tuple[int, int, float]] = []
    for segment, share, (lo, hi) in _SEGMENTS:
        for _ in range(int(3000 * share)):
            token = (rng.randrange(1, 2**23) << 8) | segment
            universe.append((token, segment, rng.uniform(lo, hi)))
    return [
        encode_frame(_tick(rng, *rng.choice(universe)) for _ in range(packets))
        for _ in range(frames)
    ]


@dataclass(frozen=True)
class DecodeResult:
    """Ticks per second of each parser on the same frames: every round's sample and the median.

    Attributes:
        ticks: ticks in the frame set (one pass).
        frames: frames in the set.
        bytes: bytes in the set.
        samples: each parser's rate in every round, in round order.
        rounds: how many rounds were run.
        seconds: the least time each sample decoded for.
    """

    ticks: int
    frames: int
    bytes: int
    samples: dict[str, list[float]]
    rounds: int
    seconds: float

    @property
    def rates(self) -> dict[str, float]:
        """The median rate of each parser."""
        return {name: statistics.median(values) for name, values in self.samples.items()}

    def ratio(self, ours: str, theirs: str = OFFICIAL) -> float | None:
        """The median over rounds of ``ours / theirs`` (None without the official parser)."""
        if theirs not in self.samples or ours not in self.samples:
            return None
        pairs = zip(self.samples[ours], self.samples[theirs], strict=True)
        return statistics.median(a / b for a, b in pairs)

    def figures(self) -> list[Figure]:
        """The figures of this benchmark, with the design's target on the ratio."""
        rates = self.rates
        n = self.rounds
        mix = f"{self.ticks:,} ticks in {self.frames} frames, same bytes for every parser"
        out = [
            Figure("decode", KITEFAN, rates[KITEFAN], "ticks/s", samples=n, note=mix),
            Figure(
                "decode",
                KITEFAN_DICTS,
                rates[KITEFAN_DICTS],
                "ticks/s",
                samples=n,
                note="decode_frame, then as_dict() on every tick: the official dicts",
            ),
            Figure(
                "decode",
                COMPAT,
                rates[COMPAT],
                "ticks/s",
                samples=n,
                note="what kitefan.compat.KiteTicker gives on_ticks: naive local datetimes",
            ),
        ]
        if OFFICIAL not in rates:
            out.append(
                Figure(
                    "decode",
                    OFFICIAL,
                    None,
                    "ticks/s",
                    target=">= 10x",
                    note="not installed: pip install -e '.[bench]'",
                )
            )
            return out
        ratio = self.ratio(KITEFAN)
        ratio_dicts = self.ratio(KITEFAN_DICTS)
        out += [
            Figure(
                "decode",
                OFFICIAL,
                rates[OFFICIAL],
                "ticks/s",
                samples=n,
                note="kiteconnect 5.2.2 KiteTicker._parse_binary: bytes to the dicts",
            ),
            Figure(
                "decode",
                "kitefan / official",
                ratio,
                "x",
                target=">= 10x",
                ok=ratio is not None and ratio >= 10,
                samples=n,
                note="per-round ratio, median",
            ),
            Figure(
                "decode",
                "kitefan + as_dict() / official",
                ratio_dicts,
                "x",
                samples=n,
                note="like for like: both build the dicts",
            ),
            Figure(
                "decode",
                "kitefan.compat / official",
                self.ratio(COMPAT),
                "x",
                samples=n,
                note="the same dicts, naive datetimes included",
            ),
        ]
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "ticks": self.ticks,
            "frames": self.frames,
            "bytes": self.bytes,
            "rounds": self.rounds,
            "seconds": self.seconds,
            "rates": self.rates,
            "samples": self.samples,
            "ratio": self.ratio(KITEFAN),
            "ratio_as_dict": self.ratio(KITEFAN_DICTS),
            "ratio_compat": self.ratio(COMPAT),
        }


def _rate(fn: Callable[[bytes], Any], frames: list[bytes], ticks: int, min_s: float) -> float:
    """Ticks per second of ``fn`` over whole passes through ``frames``, for at least ``min_s``."""
    done = 0
    start = time.perf_counter()
    while True:
        for frame in frames:
            fn(frame)
        done += ticks
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return done / elapsed


def _official_parser() -> Callable[[bytes], Any] | None:
    try:
        from kiteconnect import KiteTicker
    except ImportError:
        return None
    ticker = KiteTicker.__new__(KiteTicker)  # the parser needs no connection
    parse: Callable[[bytes], Any] = ticker._parse_binary
    return parse


def _check_agreement(official: Callable[[bytes], Any], frames: list[bytes]) -> None:
    """Make sure both parsers read the same values from the same bytes before timing them."""
    ours = [t.as_dict() for f in frames for t in decode_frame(f)]
    theirs = [d for f in frames for d in official(f)]
    if len(ours) != len(theirs):
        raise BenchmarkError(f"parsers disagree on the tick count: {len(ours)} vs {len(theirs)}")
    for a, b in zip(ours, theirs, strict=True):
        for field in ("instrument_token", "mode", "last_price", "change", "ohlc", "depth"):
            if a.get(field) != b.get(field):
                raise BenchmarkError(f"parsers disagree on {field}: {a} vs {b}")
    compat = [t.as_local_dict() for f in frames for t in decode_frame(f)]
    if compat != theirs:
        raise BenchmarkError("kitefan.compat's ticks are not the official client's dicts")


def run_decode_benchmark(
    rounds: int = 5,
    min_s: float = 0.3,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> DecodeResult:
    """Decode the same mixed frames with each parser, rounds interleaved; return every sample.

    Args:
        rounds: how many rounds; each round times every parser once, in turn, so that machine
            noise hits them alike.
        min_s: the least time each parser decodes for in each round (whole passes).
        seed: the seed of the frame set.
        progress: told one line per round.
    """
    frames = mixed_frames(seed=seed)
    ticks = sum(len(decode_frame(f)) for f in frames)

    def with_dicts(frame: bytes) -> list[dict[str, Any]]:
        return [t.as_dict() for t in decode_frame(frame)]

    def compat_ticks(frame: bytes) -> list[dict[str, Any]]:
        return [t.as_local_dict() for t in decode_frame(frame)]

    parsers: dict[str, Callable[[bytes], Any]] = {
        KITEFAN: decode_frame,
        KITEFAN_DICTS: with_dicts,
        COMPAT: compat_ticks,
    }
    official = _official_parser()
    if official is not None:
        _check_agreement(official, frames[:5])
        parsers[OFFICIAL] = official
    samples: dict[str, list[float]] = {name: [] for name in parsers}
    for index in range(rounds):
        for name, fn in parsers.items():
            samples[name].append(_rate(fn, frames, ticks, min_s))
        if progress is not None:
            line = ", ".join(f"{name} {values[-1]:,.0f}" for name, values in samples.items())
            progress(f"decode round {index + 1}/{rounds}: {line} ticks/s")
    return DecodeResult(
        ticks=ticks,
        frames=len(frames),
        bytes=sum(map(len, frames)),
        samples=samples,
        rounds=rounds,
        seconds=min_s,
    )
