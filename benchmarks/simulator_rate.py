"""How many ticks per second ``kitefan simulate --rate max`` delivers to one client.

The simulator runs in its own process (``python -m kitefan simulate --rate max --port 0`` with a
throw-away config). This process connects a minimal websockets client: N connections of one key,
each subscribing T tokens and setting a mode; it counts ticks by reading only the 2-byte packet
count at the start of each binary frame (no decoding), so that the client costs as little as
possible. After a warm-up it measures several windows and prints each, their median, the
simulator's CPU use over the measurement, and the machine. Speed is printed, never asserted.

Run from the repository root::

    python benchmarks/simulator_rate.py                  # 3 connections x 3000 tokens
    python benchmarks/simulator_rate.py --modes full,quote,ltp --windows 7

Owns: nothing the package imports. Needs only kitefan's dependencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "benchkey0001"
ACCESS_TOKEN = "benchtoken0001"


def _tokens(connection: int, count: int) -> list[int]:
    """Realistic-looking tokens: NSE equities, NFO contracts and a few indices, distinct per
    connection (exchange_token << 8 | segment)."""
    segments = (1, 2, 1, 2, 4, 1, 2, 5, 1, 9)
    base = 10_000 + connection * count
    return [((base + i) << 8) | segments[i % len(segments)] for i in range(count)]


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def _reader(ws: ClientConnection, counts: list[int], index: int) -> None:
    async for message in ws:
        if isinstance(message, bytes) and len(message) > 1:
            counts[index] += message[0] << 8 | message[1]


async def _measure(url: str, args: argparse.Namespace, pid: int) -> list[float]:
    modes = args.modes.split(",")
    counts = [0] * len(modes)
    query = f"{url}/?api_key={API_KEY}&access_token={ACCESS_TOKEN}"
    sockets = [
        await connect(query, compression=None, max_size=None, ping_interval=None) for _ in modes
    ]
    readers = []
    try:
        for index, (ws, mode) in enumerate(zip(sockets, modes, strict=True)):
            tokens = _tokens(index, args.tokens)
            await ws.send(json.dumps({"a": "subscribe", "v": tokens}))
            await ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))
            readers.append(asyncio.create_task(_reader(ws, counts, index)))
        await asyncio.sleep(args.warmup_s)
        rates = []
        cpu_start = _cpu_seconds(pid)
        wall_start = time.perf_counter()
        for window in range(args.windows):
            before = sum(counts)
            start = time.perf_counter()
            await asyncio.sleep(args.window_s)
            rate = (sum(counts) - before) / (time.perf_counter() - start)
            rates.append(rate)
            print(f"window {window + 1}: {rate:,.0f} ticks/s", flush=True)
        cpu_end = _cpu_seconds(pid)
        if cpu_start is not None and cpu_end is not None:
            share = (cpu_end - cpu_start) / (time.perf_counter() - wall_start)
            print(f"simulator process CPU: {share:.0%} of one core", flush=True)
        return rates
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in sockets:
            await ws.close()


def main() -> None:
    """Start the simulator in its own process, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="full,quote,full", help="one mode per connection")
    parser.add_argument("--tokens", type=int, default=3000, help="tokens per connection")
    parser.add_argument("--windows", type=int, default=5, help="measurement windows")
    parser.add_argument("--window-s", type=float, default=2.0, help="seconds per window")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--rate", default="max", help="the simulator's --rate")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(
            f'[[keys]]\nid = "bench"\napi_key = "{API_KEY}"\naccess_token = "{ACCESS_TOKEN}"\n'
        )
        command = [sys.executable, "-m", "kitefan", "simulate", "--config", str(config)]
        command += ["--port", "0", "--rate", args.rate]
        command += ["--max-connections-per-key", str(max(3, len(args.modes.split(","))))]
        server = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            if server.stdout is None:
                raise RuntimeError("no stdout from the simulator")
            url = server.stdout.readline().strip()
            if not url.startswith("ws://"):
                raise RuntimeError(f"the simulator did not start (first line: {url!r})")
            rates = asyncio.run(_measure(url, args, server.pid))
        finally:
            server.terminate()
            server.wait(10)

    modes = args.modes.split(",")
    print(
        f"median: {statistics.median(rates):,.0f} ticks/s "
        f"({len(modes)} connections x {args.tokens} tokens, modes {args.modes}, "
        f"--rate {args.rate}, {args.windows} windows of {args.window_s:g}s)"
    )
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
