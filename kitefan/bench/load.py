"""The realistic full load: 3 keys × 3 connections × 3000 symbols in full mode, one tick a second.

The simulator runs in its own process at ``--rate 1`` (at most one packet per instrument per
second; it sends a packet when the instrument's full-mode fields changed, spread over ten slices
a second, so each connection gets about ten frames a second). The client, in a fresh process, is
``FeedManager`` with 27,000 full-mode symbols on 9 connections and one consumer of
``feed.ticks()``. After the subscribe burst and ``warmup_s`` more, it measures over ``seconds``:

* **CPU share of one core**: this process's CPU time (``time.process_time``) over the wall time of
  the span; the median of 1-second windows is reported alongside.
* **Resident memory**: ``VmHWM`` (the peak since the process started, subscribe burst included)
  and ``VmRSS`` at each window (steady state, the median); ``ru_maxrss`` off Linux.
* **Frame-to-consumer latency**, one sample per frame: from ``TickBatch.received_at`` (taken as
  the connection's reader gets the message from ``websockets``, before it waits for consumers to
  take earlier frames and before decoding) to the consumer's ``time.perf_counter()`` when the
  batch comes out of ``feed.ticks()``. It includes that wait, decoding, the queue, and the other
  connections' frames of the same moment; it excludes the kernel, TCP, and ``websockets``' own
  frame parsing before the reader is handed the message.
* **Event-loop lag**, to bound what that excludes: a probe sleeping 20 ms at a time records how
  late it wakes. A frame that reaches the socket waits for the loop about as long as the probe.
* Garbage collections of each generation during the span, and the longest full one.

The exchange timestamp could measure the whole path from the simulator, but it has 1-second
resolution; the simulator embeds no send time. Both are noted, not used.

No official client runs beside this one: it has no multi-key manager to hold 27,000 symbols in
one process, and :mod:`kitefan.bench.endtoend` already compares CPU per tick on the same work.

Run as ``python -m kitefan.bench.load SPEC.json``, this module is the client.

Owns: the realistic-load benchmark. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitefan.bench import Figure
from kitefan.bench.harness import (
    SimulatorProcess,
    client_config,
    client_spec,
    cpu_seconds,
    memory_kb,
    percentile,
    realistic_tokens,
    run_child,
)
from kitefan.models import Mode

__all__ = [
    "TARGET_CPU_SHARE",
    "TARGET_LATENCY_P99_MS",
    "TARGET_RSS_MB",
    "LoadResult",
    "main",
    "run_load_benchmark",
]

TARGET_CPU_SHARE = 0.15
TARGET_RSS_MB = 200.0
TARGET_LATENCY_P99_MS = 5.0

_PROBE_S = 0.02


@dataclass(frozen=True)
class LoadResult:
    """What the client measured in each run (see the module docstring for each field).

    Attributes:
        runs: each run's report: ``cpu_share``, ``cpu_share_windows``, ``rss_peak_mb``,
            ``rss_mb_windows``, ``latency_ms`` (frames, p50, p90, p99, max), ``loop_lag_ms``,
            ``ticks_per_s``, ``gc``, ``drops``, ``simulator_cpu_share``.
        keys: keys streamed.
        symbols: symbols streamed (full mode).
        rate: the simulator's ``--rate``.
        seconds: the measured span of each run.
        warmup_s: the time let pass after the subscribe burst, before measuring.
    """

    runs: list[dict[str, Any]]
    keys: int
    symbols: int
    rate: float
    seconds: float
    warmup_s: float

    def median(self, *path: str) -> float:
        """The median over runs of one reading, e.g. ``median("latency_ms", "p99")``."""
        values = []
        for run in self.runs:
            value: Any = run
            for name in path:
                value = value[name]
            values.append(float(value))
        return statistics.median(values)

    def figures(self) -> list[Figure]:
        """The figures of this benchmark (medians over runs), with the design's targets."""
        n = len(self.runs)
        share = self.median("cpu_share")
        peak = self.median("rss_peak_mb")
        steady = statistics.median(statistics.median(r["rss_mb_windows"]) for r in self.runs)
        windows = statistics.median(statistics.median(r["cpu_share_windows"]) for r in self.runs)
        p99 = self.median("latency_ms", "p99")
        frames = sum(r["latency_ms"]["frames"] for r in self.runs)
        p99s = ", ".join(f"{r['latency_ms']['p99']:.2f}" for r in self.runs)
        collections = "/".join(
            str(sum(r["gc"]["collections"][g] for r in self.runs)) for g in range(3)
        )
        longest = max(r["gc"]["longest_ms"] for r in self.runs)
        load = f"{self.symbols:,} full symbols, {self.keys} keys x 3 connections"
        span = f"{self.seconds:g} s a run"
        return [
            Figure(
                "load",
                "ticks/s received",
                self.median("ticks_per_s"),
                "ticks/s",
                samples=n,
                note=f"{load}, simulator at --rate {self.rate:g} "
                f"({_pct(self.median_or_none('simulator_cpu_share'))} of a core)",
            ),
            Figure(
                "load",
                "CPU share of one core",
                share * 100,
                "%",
                target="< 15 %",
                ok=share < TARGET_CPU_SHARE,
                samples=n,
                note=f"process CPU / wall, {span}; median of 1-s windows {windows:.1%}",
            ),
            Figure(
                "load",
                "resident memory, peak",
                peak,
                "MB",
                target="< 200 MB",
                ok=peak < TARGET_RSS_MB,
                samples=n,
                note=f"VmHWM of the client, subscribe burst included; steady {steady:.0f} MB",
            ),
            Figure(
                "load",
                "latency p50",
                self.median("latency_ms", "p50"),
                "ms",
                samples=n,
                note=f"websockets hands the frame over -> decode -> queue -> consumer; "
                f"{frames:,} frames in all",
            ),
            Figure(
                "load",
                "latency p99",
                p99,
                "ms",
                target="< 5 ms",
                ok=p99 < TARGET_LATENCY_P99_MS,
                samples=n,
                note=f"each run: {p99s} ms; max {self.median('latency_ms', 'max'):.1f} ms; "
                f"GCs by generation {collections}, longest full {longest:.1f} ms",
            ),
            Figure(
                "load",
                "event-loop lag p99",
                self.median("loop_lag_ms", "p99"),
                "ms",
                samples=n,
                note=f"p50 {self.median('loop_lag_ms', 'p50'):.2f} ms: what a frame waiting in "
                f"the kernel may add (not in the latency above)",
            ),
        ]

    def median_or_none(self, name: str) -> float | None:
        """The median over runs of a reading some runs may lack (None if all do)."""
        values = [r[name] for r in self.runs if r.get(name) is not None]
        return statistics.median(values) if values else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "keys": self.keys,
            "symbols": self.symbols,
            "rate": self.rate,
            "seconds": self.seconds,
            "warmup_s": self.warmup_s,
            "runs": self.runs,
        }


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"


def run_load_benchmark(
    rounds: int = 1,
    seconds: float = 20.0,
    warmup_s: float = 5.0,
    keys: int = 3,
    connections: int = 3,
    tokens_per_connection: int = 3000,
    rate: float = 1.0,
    redundancy: int = 1,
    progress: Callable[[str], None] | None = None,
) -> LoadResult:
    """Run the client ``rounds`` times, each against a fresh simulator at ``rate``.

    Args:
        rounds: how many runs; the figures are their medians.
        seconds: the measured span of each run.
        warmup_s: how long to stream after the first ticks (the subscribe burst) before measuring.
        keys: keys, each with ``connections`` connections of ``tokens_per_connection`` tokens.
        connections: connections per key (at most 3).
        tokens_per_connection: full-mode tokens on each connection (at most 3000).
        rate: the simulator's ``--rate``: packets per instrument per second at most.
        redundancy: the config's ``redundancy``: with 2, half as many symbols, each on two keys
            (the connections hold as many subscriptions), merged.
        progress: told one line per run.

    Raises:
        BenchmarkError: the simulator or the client failed.
    """
    names = [f"load{k}" for k in range(keys)]
    tokens = realistic_tokens(keys * connections * tokens_per_connection // redundancy)
    symbols = [(token, Mode.FULL) for token in tokens]
    if progress is not None:
        twice = ", each on 2 keys" if redundancy == 2 else ""
        progress(
            f"load: {len(symbols):,} full symbols{twice} on {keys} keys at --rate {rate:g}; "
            f"{warmup_s:g} s warm-up, then {seconds:g} s measured, {rounds} run(s)"
        )
    runs = []
    for index in range(rounds):
        with SimulatorProcess(names, rate=f"{rate:g}") as sim:
            spec = client_spec(
                sim.url,
                names,
                symbols,
                seconds=seconds,
                warmup_s=warmup_s,
                window_s=min(1.0, seconds),
                simulator_pid=sim.pid,
                redundancy=redundancy,
            )
            run = run_child("kitefan.bench.load", spec, timeout_s=90.0 + warmup_s + seconds)
        runs.append(run)
        if progress is not None:
            latency = run["latency_ms"]
            progress(
                f"load run {index + 1}/{rounds}: {run['ticks_per_s']:,.0f} ticks/s, "
                f"CPU {run['cpu_share']:.1%} of a core, peak {run['rss_peak_mb']:.0f} MB, "
                f"latency p50 {latency['p50']:.2f} ms p99 {latency['p99']:.2f} ms"
            )
    return LoadResult(
        runs=runs,
        keys=keys,
        symbols=len(symbols),
        rate=rate,
        seconds=seconds,
        warmup_s=warmup_s,
    )


class _GcWatch:
    """Counts full collections and their pauses (installed only for the measured span)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)


async def _client(spec: dict[str, Any]) -> dict[str, Any]:
    from kitefan.manager import FeedManager

    sim_pid: int | None = spec.get("simulator_pid")
    window_s: float = spec["window_s"]
    count = 0
    latencies: list[float] = []
    lags: list[float] = []
    clock = time.perf_counter

    async with FeedManager(client_config(spec)) as feed:
        stream = feed.ticks()

        async def consume() -> None:
            nonlocal count
            record = latencies.append
            async for batch in stream:
                record(clock() - batch.received_at)
                count += len(batch.ticks)

        def duplicates_now() -> int:
            merged = feed.stats().redundancy
            return 0 if merged is None else sum(merged.duplicates.values())

        async def probe() -> None:
            record = lags.append
            while True:
                before = clock()
                await asyncio.sleep(_PROBE_S)
                record(clock() - before - _PROBE_S)

        async with asyncio.timeout(60):
            count = len((await anext(stream)).ticks)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(consume())]
        try:
            await asyncio.sleep(spec["warmup_s"])
            tasks.append(loop.create_task(probe()))
            watch = _GcWatch()
            gc.callbacks.append(watch)
            collections0 = [g["collections"] for g in gc.get_stats()]
            latencies.clear()
            duplicates0 = duplicates_now()
            ticks0, wall0, cpu0 = count, clock(), time.process_time()
            sim0 = cpu_seconds(sim_pid) if sim_pid is not None else None
            shares: list[float] = []
            rss: list[float] = []
            end = wall0 + spec["seconds"]
            while (now := clock()) < end - window_s / 2:
                cpu_before = time.process_time()
                await asyncio.sleep(min(window_s, end - now))
                shares.append((time.process_time() - cpu_before) / (clock() - now))
                rss.append(memory_kb()[0] / 1024)
            ticks1, wall1, cpu1 = count, clock(), time.process_time()
            sim1 = cpu_seconds(sim_pid) if sim_pid is not None else None
            gc.callbacks.remove(watch)
            collections = [
                g["collections"] - c for g, c in zip(gc.get_stats(), collections0, strict=True)
            ]
            frames = sorted(latencies)
            lag = sorted(lags)
            wall = wall1 - wall0
            drops = feed.stats().totals.drops
            duplicates = duplicates_now() - duplicates0
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    _, peak_kb = memory_kb()
    return {
        "seconds": wall,
        "ticks": ticks1 - ticks0,
        "ticks_per_s": (ticks1 - ticks0) / wall,
        "cpu_share": (cpu1 - cpu0) / wall,
        "cpu_share_windows": shares,
        "rss_peak_mb": peak_kb / 1024,
        "rss_mb_windows": rss,
        "latency_ms": {
            "frames": len(frames),
            "p50": percentile(frames, 0.50) * 1000,
            "p90": percentile(frames, 0.90) * 1000,
            "p99": percentile(frames, 0.99) * 1000,
            "max": frames[-1] * 1000 if frames else float("nan"),
        },
        "loop_lag_ms": {
            "samples": len(lag),
            "p50": percentile(lag, 0.50) * 1000,
            "p99": percentile(lag, 0.99) * 1000,
            "max": lag[-1] * 1000 if lag else float("nan"),
        },
        "gc": {
            "collections": collections,
            "full": len(watch.pauses),
            "longest_ms": max(watch.pauses, default=0.0) * 1000,
        },
        "drops": drops,
        "duplicates": duplicates,
        "simulator_cpu_share": (
            (sim1 - sim0) / wall if sim0 is not None and sim1 is not None else None
        ),
    }


def main() -> None:
    """The client: ``python -m kitefan.bench.load SPEC.json``; prints one JSON line."""
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    try:
        result = asyncio.run(_client(spec))
    except TimeoutError:
        result = {"error": "no ticks within 60 s of starting the feed"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
