"""The end-to-end baseline: the official client receiving from the same simulator at full rate.

Run as ``python -m kitefan.bench.official SPEC.json`` by :mod:`kitefan.bench.endtoend`, in a
fresh process (Twisted's reactor cannot be restarted). It opens one ``kiteconnect.KiteTicker`` per
connection of the spec, all on one reactor, each subscribing exactly the tokens and modes kitefan's
planner gives that connection; ``on_ticks`` adds ``len(ticks)`` to a counter, as kitefan's
consumer does. It waits for the first ticks, lets ``warmup_s`` pass, counts over ``seconds`` and
prints one JSON line with the same fields as the kitefan client.

Owns: the official client's run. Imports ``kiteconnect`` and Twisted (the ``bench`` extra), and
nothing of kitefan's but the benchmark harness; must not import asyncio, rich or typer.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kitefan.bench.harness import cpu_seconds, measured_run

__all__ = ["main", "run_tickers", "stop_tickers", "tickers_for"]


def tickers_for(
    kite_ticker: Any, spec: dict[str, Any], on_ticks: Callable[[Any, list[dict[str, Any]]], None]
) -> list[Any]:
    """One official ``KiteTicker`` per connection of the spec, each subscribing its tokens in
    their modes on connect, all handing their ticks to ``on_ticks``."""
    _, api_key, access_token = spec["keys"][0]
    tickers: list[Any] = []
    for by_mode in spec["connections"]:
        ticker = kite_ticker(api_key, access_token, root=spec["url"], reconnect=False)

        def on_connect(ws: Any, response: Any, by_mode: dict[str, list[int]] = by_mode) -> None:
            ws.subscribe([token for tokens in by_mode.values() for token in tokens])
            for mode, tokens in by_mode.items():
                if tokens:
                    ws.set_mode(mode, tokens)

        ticker.on_connect = on_connect
        ticker.on_ticks = on_ticks
        tickers.append(ticker)
    return tickers


def stop_tickers(reactor: Any, tickers: list[Any]) -> None:
    """Close every connected ticker, then stop the reactor."""
    for ticker in tickers:
        if ticker.is_connected():
            ticker.close()
    reactor.callLater(0.1, reactor.stop)


def run_tickers(
    reactor: Any,
    tickers: list[Any],
    count: list[int],
    warmup_s: float,
    start: Callable[[], None],
    stop: Callable[[], None],
) -> None:
    """Connect the tickers and run the reactor: ``start`` once ticks have flowed for
    ``warmup_s``, ``stop`` if none came within 30 s (``count[0]`` counts the ticks)."""

    def wait_for_ticks(deadline: float) -> None:
        if count[0]:
            reactor.callLater(warmup_s, start)
        elif time.monotonic() > deadline:
            stop()
        else:
            reactor.callLater(0.05, wait_for_ticks, deadline)

    for ticker in tickers[1:]:
        reactor.callWhenRunning(ticker.connect)
    reactor.callWhenRunning(wait_for_ticks, time.monotonic() + 30)
    tickers[0].connect(threaded=False)


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        from kiteconnect import KiteTicker
    except ImportError:
        return {"error": "kiteconnect is not installed: pip install -e '.[bench]'"}
    reactor: Any = importlib.import_module("twisted.internet.reactor")
    sim_pid: int | None = spec.get("simulator_pid")
    count = [0]
    result: dict[str, Any] = {"error": "no ticks within 30 s of connecting"}

    def on_ticks(ws: Any, ticks: list[dict[str, Any]]) -> None:
        count[0] += len(ticks)

    tickers = tickers_for(KiteTicker, spec, on_ticks)

    def stop() -> None:
        stop_tickers(reactor, tickers)

    def finish(ticks0: int, wall0: float, cpu0: float, sim0: float | None) -> None:
        nonlocal result
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        result = measured_run(count[0] - ticks0, wall, cpu, sim_pid, sim0)
        result["drops"] = 0
        stop()

    def start() -> None:
        sim0 = cpu_seconds(sim_pid) if sim_pid is not None else None
        args = (count[0], time.perf_counter(), time.process_time(), sim0)
        reactor.callLater(spec["seconds"], finish, *args)

    run_tickers(reactor, tickers, count, spec["warmup_s"], start, stop)
    return result


def main() -> None:
    """Read the spec, run the tickers, print one JSON line."""
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(json.dumps(_run(spec)))


if __name__ == "__main__":
    main()
