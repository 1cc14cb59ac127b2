"""End to end: the simulator in its own process at full rate → the manager → a counting consumer.

The simulator (``kitefan simulate --rate max``) sends every subscribed token as fast as the
client reads. Each round runs two clients in turn, each in a fresh process against a fresh
simulator process, with the same subscriptions (one key, 3 connections × 3000 tokens, two thirds
full mode and one third quote, across NSE, BSE, NFO, BFO, MCX and the indices; connections placed
by kitefan's planner):

* kitefan: ``FeedManager`` and one consumer, ``async for batch in feed.ticks(): n +=
  len(batch.ticks)``;
* the official client (``kiteconnect`` 5.2.2 ``KiteTicker``, if installed): three tickers on one
  Twisted reactor, ``on_ticks`` adding ``len(ticks)`` (:mod:`kitefan.bench.official`).

Each client waits for the first ticks, lets ``warmup_s`` pass, then counts ticks over ``seconds``
and reads its own CPU time (``time.process_time``) and the simulator's (``/proc``). Figures: ticks
per second and CPU seconds per 100,000 ticks, the median of the rounds. The simulator's CPU share
tells which side was the bottleneck: near 100 % of a core, the simulator could send no faster.

Run as ``python -m kitefan.bench.endtoend SPEC.json``, this module is the kitefan client.

Owns: the end-to-end benchmark. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import importlib.util
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
    connection_subscriptions,
    cpu_seconds,
    full_rate_symbols,
    measured_run,
    run_child,
)

__all__ = [
    "KITEFAN",
    "OFFICIAL",
    "TARGET_TICKS_PER_S",
    "EndToEndResult",
    "main",
    "run_endtoend_benchmark",
]

#: The design's target for kitefan, on a 2-core machine.
TARGET_TICKS_PER_S = 150_000

KITEFAN = "kitefan"
OFFICIAL = "kiteconnect 5.2.2 KiteTicker"


@dataclass(frozen=True)
class EndToEndResult:
    """Every round of every client: ``runs[client]`` is a list of what each run measured.

    Attributes:
        runs: per client, one dict per round (``ticks_per_s``, ``cpu_per_100k_s``,
            ``cpu_share``, ``simulator_cpu_share``, ``ticks``, ``seconds``, ...).
        connections: connections per client.
        tokens: tokens subscribed per client.
        seconds: the measured span of each run.
        warmup_s: the time let pass after the first ticks, before measuring.
        skipped: why a client was not run (the official one without ``kiteconnect``).
    """

    runs: dict[str, list[dict[str, Any]]]
    connections: int
    tokens: int
    seconds: float
    warmup_s: float
    skipped: dict[str, str]

    def median(self, client: str, field: str) -> float | None:
        """The median of one field over a client's rounds (None if it has none)."""
        values = [run[field] for run in self.runs.get(client, []) if run.get(field) is not None]
        return statistics.median(values) if values else None

    def figures(self) -> list[Figure]:
        """The figures of this benchmark, with the design's target on kitefan's rate."""
        n = len(self.runs.get(KITEFAN, []))
        rate = self.median(KITEFAN, "ticks_per_s")
        sim = self.median(KITEFAN, "simulator_cpu_share")
        share = self.median(KITEFAN, "cpu_share")
        setup = f"{self.connections} connections x {self.tokens // self.connections} tokens"
        out = [
            Figure(
                "e2e",
                "kitefan ticks/s",
                rate,
                "ticks/s",
                target=f">= {TARGET_TICKS_PER_S:,}",
                ok=rate is not None and rate >= TARGET_TICKS_PER_S,
                samples=n,
                note=f"{setup}, full/quote; client {_pct(share)} of a core, simulator {_pct(sim)}",
            ),
            Figure(
                "e2e",
                "kitefan CPU per 100k ticks",
                self.median(KITEFAN, "cpu_per_100k_s"),
                "s",
                samples=n,
                note="client process CPU time (socket, websockets, decode, queue, consumer)",
            ),
        ]
        if OFFICIAL in self.skipped:
            out.append(Figure("e2e", f"{OFFICIAL} ticks/s", None, "ticks/s", note="not run"))
            return out
        m = len(self.runs.get(OFFICIAL, []))
        official = self.median(OFFICIAL, "ticks_per_s")
        out += [
            Figure(
                "e2e",
                "official ticks/s",
                official,
                "ticks/s",
                samples=m,
                note=f"{OFFICIAL}, same simulator and subscriptions; client "
                f"{_pct(self.median(OFFICIAL, 'cpu_share'))} of a core",
            ),
            Figure(
                "e2e",
                "official CPU per 100k ticks",
                self.median(OFFICIAL, "cpu_per_100k_s"),
                "s",
                samples=m,
                note="client process CPU time (Twisted, autobahn, its parser, on_ticks)",
            ),
            Figure(
                "e2e",
                "kitefan / official ticks/s",
                self.ratio("ticks_per_s"),
                "x",
                samples=min(n, m),
                note="per-round ratio, median; kitefan's rate is capped by the simulator",
            ),
            Figure(
                "e2e",
                "official / kitefan CPU per tick",
                self.ratio("cpu_per_100k_s", inverse=True),
                "x",
                samples=min(n, m),
                note="per-round ratio, median: how much less CPU kitefan spends per tick",
            ),
        ]
        return out

    def ratio(self, field: str, *, inverse: bool = False) -> float | None:
        """The median over rounds of kitefan's ``field`` over the official client's (or the
        official client's over kitefan's, with ``inverse``)."""
        pairs = zip(self.runs.get(KITEFAN, []), self.runs.get(OFFICIAL, []), strict=False)
        ratios = [
            (b[field] / a[field]) if inverse else (a[field] / b[field])
            for a, b in pairs
            if a.get(field) and b.get(field)
        ]
        return statistics.median(ratios) if ratios else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "connections": self.connections,
            "tokens": self.tokens,
            "seconds": self.seconds,
            "warmup_s": self.warmup_s,
            "runs": self.runs,
            "skipped": self.skipped,
            "median": {
                client: {
                    field: self.median(client, field)
                    for field in ("ticks_per_s", "cpu_per_100k_s", "cpu_share")
                }
                for client in self.runs
            },
        }


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"


def run_endtoend_benchmark(
    rounds: int = 3,
    seconds: float = 2.0,
    warmup_s: float = 1.5,
    connections: int = 3,
    tokens_per_connection: int = 3000,
    official: bool = True,
    progress: Callable[[str], None] | None = None,
) -> EndToEndResult:
    """Run each client once per round, in turn, each against a fresh simulator; return every run.

    Args:
        rounds: how many times each client runs.
        seconds: the measured span of each run.
        warmup_s: how long each client streams before measuring.
        connections: connections of the one key (at most 3).
        tokens_per_connection: tokens on each connection (at most 3000).
        official: also run the official client, if ``kiteconnect`` is installed.
        progress: told one line per run.

    Raises:
        BenchmarkError: the simulator or a client failed.
    """
    symbols = full_rate_symbols(connections, tokens_per_connection)
    skipped: dict[str, str] = {}
    if not official:
        skipped[OFFICIAL] = "not asked for"
    elif importlib.util.find_spec("kiteconnect") is None:
        skipped[OFFICIAL] = "kiteconnect is not installed: pip install -e '.[bench]'"
    runs: dict[str, list[dict[str, Any]]] = {KITEFAN: []}
    clients = [(KITEFAN, "kitefan.bench.endtoend")]
    if OFFICIAL not in skipped:
        runs[OFFICIAL] = []
        clients.append((OFFICIAL, "kitefan.bench.official"))
    timeout_s = 60.0 + warmup_s + seconds
    for r in range(rounds):
        for client, module in clients:
            # A fresh simulator per run: one that has served clients before sends more slowly
            # (see the README's figures), and runs must not depend on their order.
            with SimulatorProcess(["bench"], rate="max") as sim:
                spec = client_spec(
                    sim.url,
                    ["bench"],
                    symbols,
                    seconds=seconds,
                    warmup_s=warmup_s,
                    simulator_pid=sim.pid,
                )
                if client == OFFICIAL:
                    spec["connections"] = connection_subscriptions(client_config(spec))
                run = run_child(module, spec, timeout_s=timeout_s)
            runs[client].append(run)
            if progress is not None:
                progress(_line(client, r, rounds, run))
    return EndToEndResult(
        runs=runs,
        connections=connections,
        tokens=len(symbols),
        seconds=seconds,
        warmup_s=warmup_s,
        skipped=skipped,
    )


def _line(client: str, index: int, rounds: int, run: dict[str, Any]) -> str:
    return (
        f"e2e round {index + 1}/{rounds}: {client} {run['ticks_per_s']:,.0f} ticks/s, "
        f"{run['cpu_per_100k_s']:.3f} s CPU per 100k ticks, "
        f"simulator {_pct(run.get('simulator_cpu_share'))} of a core"
    )


async def _client(spec: dict[str, Any]) -> dict[str, Any]:
    from kitefan.manager import FeedManager

    sim_pid: int | None = spec.get("simulator_pid")
    count = 0
    async with FeedManager(client_config(spec)) as feed:
        stream = feed.ticks()

        async def consume() -> None:
            nonlocal count
            async for batch in stream:
                count += len(batch.ticks)

        async with asyncio.timeout(30):
            count = len((await anext(stream)).ticks)
        consumer = asyncio.get_running_loop().create_task(consume())
        try:
            await asyncio.sleep(spec["warmup_s"])
            ticks0, wall0, cpu0 = count, time.perf_counter(), time.process_time()
            sim0 = cpu_seconds(sim_pid) if sim_pid is not None else None
            await asyncio.sleep(spec["seconds"])
            ticks1, wall1, cpu1 = count, time.perf_counter(), time.process_time()
            result = measured_run(ticks1 - ticks0, wall1 - wall0, cpu1 - cpu0, sim_pid, sim0)
            result["drops"] = feed.stats().totals.drops
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    return result


def main() -> None:
    """The kitefan client: ``python -m kitefan.bench.endtoend SPEC.json``; prints one JSON line."""
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    try:
        result = asyncio.run(_client(spec))
    except TimeoutError:
        result = {"error": "no ticks within 30 s of starting the feed"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
