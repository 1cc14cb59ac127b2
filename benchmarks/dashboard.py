"""The dashboard under the realistic load: the CPU of ``kitefan stream`` drawing it in tmux.

3 keys x 3 connections x 3000 symbols (27,000, full mode) from ``kitefan simulate --rate 2`` in
its own process (:class:`kitefan.bench.harness.SimulatorProcess`); ``kitefan stream`` against it
in a tmux pane of 200 x 50 (tmux must be installed), four refreshes a second. Once every
connection is up and the ticks table is drawn, it waits ``--warmup`` seconds more, then reads the
stream's CPU time from ``/proc/<pid>/stat`` over ``--seconds`` and prints the share of one core,
with the ticks per second the stream reported on its screen::

    python benchmarks/dashboard.py [--seconds 20] [--warmup 10] [--rate 2] [--sort symbol]

That figure is the whole process (sockets, feed and dashboard), and on a shared machine the
simulator may not reach the full rate. ``--in-process`` measures the dashboard's own work
alone, on the same 27,000 symbols in frames of 300 packets (an index among every twenty
symbols, as ``realistic_tokens`` spreads them): the board's update per tick and one refresh at
200 x 50 (laid out and rendered to an ANSI string), and what they cost at 54,000 ticks/s
(27,000 symbols at 2 Hz) and 4 refreshes a second.

Owns: nothing the package imports.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kitefan.bench.harness import SimulatorProcess, bench_key, cpu_seconds, realistic_tokens

__all__ = ["main"]

KEYS = ("alpha", "bravo", "charlie")


def write_config(path: Path, url: str, tokens: list[int]) -> None:
    lines = [
        f'url = "{url}"',
        'strategy = "round-robin"',
        'mode = "full"',
        "max_connections_per_key = 3",
        "max_symbols_per_connection = 3000",
    ]
    for name in KEYS:
        api_key, token = bench_key(name)
        lines += [
            "[[keys]]",
            f'id = "{name}"',
            f'api_key = "{api_key}"',
            f'access_token = "{token}"',
        ]
    lines += ["[symbols]", f"full = {tokens}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


def in_process(sort: str) -> None:
    import io
    import random

    from rich.console import Console

    from kitefan.codec import encode_frame
    from kitefan.events import TickBatch
    from kitefan.models import Tick
    from kitefan.render.dashboard import SortBy, TickBoard, dashboard
    from kitefan.stats import FeedStats

    rng = random.Random(1)
    tokens = realistic_tokens(27_000)

    def packet(token: int) -> Tick:
        if token & 0xFF == 9:  # an index: index-full packets
            return Tick(32, (token, *(rng.randint(1, 60_000) for _ in range(7))))
        return Tick(184, (token, *(rng.randint(1, 60_000) for _ in range(45))))

    batches = [
        TickBatch("alpha", 0, encode_frame([packet(t) for t in tokens[i : i + 300]]), 0.0, 0.0)
        for i in range(0, len(tokens), 300)
    ]
    board = TickBoard(tokens, str, sort=SortBy(sort))
    rounds = 10
    started = time.process_time()
    for _ in range(rounds):
        for batch in batches:
            board.update(batch)
    per_tick = (time.process_time() - started) / rounds / len(tokens)
    console = Console(file=io.StringIO(), width=200, height=50, force_terminal=True)
    stats = FeedStats(keys=(), updated_at=0.0, uptime_s=0.0)
    refreshes = 40
    started = time.process_time()
    for i in range(refreshes):
        console.print(dashboard(board, stats, str, [], now=i / 4, title="k", width=200, height=50))
        console.file.seek(0)
        console.file.truncate()
    per_refresh = (time.process_time() - started) / refreshes
    print(
        f"dashboard alone (--sort {sort}): {1e6 * per_tick:.2f} us per tick, "
        f"{1e3 * per_refresh:.1f} ms per refresh at 200x50: "
        f"{100 * (per_tick * 54_000 + per_refresh * 4):.1f} % of one core at 54,000 ticks/s and "
        f"4 Hz; load average {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--rate", default="2")
    parser.add_argument("--sort", default="symbol")
    parser.add_argument("--in-process", action="store_true", help="the dashboard's work alone")
    args = parser.parse_args()
    if args.in_process:
        in_process(args.sort)
        return

    def tmux(*words: str) -> str:
        return subprocess.run(
            ["tmux", "-S", server, *words], check=True, capture_output=True, text=True
        ).stdout

    with (
        tempfile.TemporaryDirectory(prefix="kitefan-dashboard-") as directory,
        SimulatorProcess(KEYS, rate=args.rate) as simulator,
    ):
        server = str(Path(directory) / "tmux.socket")
        config = Path(directory) / "kitefan.toml"
        write_config(config, simulator.url, realistic_tokens(27_000))
        command = [sys.executable, "-m", "kitefan", "stream", "--config", str(config)]
        command += ["--sort", args.sort]
        shell = (
            f"exec env -u COLUMNS -u LINES KITEFAN_RUNTIME_DIR={shlex.quote(directory)} "
            f"{' '.join(shlex.quote(word) for word in command)} "
            f"2>{shlex.quote(directory)}/stream.err"
        )
        tmux("-f", "/dev/null", "new-session", "-d", "-s", "k", "-x", "200", "-y", "50", shell)
        pid = -1
        try:
            time.sleep(0.5)
            alive = subprocess.run(["tmux", "-S", server, "has-session", "-t", "k"], check=False)
            if alive.returncode:
                raise SystemExit((Path(directory) / "stream.err").read_text())
            pid = int(tmux("display", "-p", "-t", "k", "#{pane_pid}").strip())
            deadline = time.monotonic() + 120
            screen = ""
            while "9/9 connections up" not in screen or "ticks by" not in screen:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the dashboard never came up:\n{screen}")
                time.sleep(0.5)
                screen = tmux("capture-pane", "-p", "-t", "k")
            time.sleep(args.warmup)
            first = tmux("capture-pane", "-p", "-t", "k")
            before, started = cpu_seconds(pid), time.monotonic()
            time.sleep(args.seconds)
            after, elapsed = cpu_seconds(pid), time.monotonic() - started
            screen = tmux("capture-pane", "-p", "-t", "k")
        finally:
            # Ctrl-C, and wait for the stream to end: closing the pane would send it SIGHUP,
            # which a stream takes as "apply the config again", not "stop".
            subprocess.run(["tmux", "-S", server, "send-keys", "-t", "k", "C-c"], check=False)
            deadline = time.monotonic() + 20
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGTERM)
            subprocess.run(["tmux", "-S", server, "kill-server"], check=False)
    if before is None or after is None:
        raise SystemExit("needs /proc (Linux)")
    # The stream's tick count on its screen (refreshed once a second), at both ends of the span.
    ticks = [re.search(r"([\d,]+) ticks,", shot) for shot in (first, screen)]
    counts = [int(m.group(1).replace(",", "")) if m else 0 for m in ticks]
    received = max(counts[1] - counts[0], 1)
    print(
        f"kitefan stream (dashboard, 200x50, --sort {args.sort}): "
        f"{100 * (after - before) / elapsed:.1f} % of one core over {elapsed:.0f} s, "
        f"{received / elapsed:,.0f} ticks/s, {1e6 * (after - before) / received:.2f} us of CPU "
        f"per tick; load average {os.getloadavg()[0]:.2f}"
    )
    print(screen.splitlines()[0])


if __name__ == "__main__":
    main()
