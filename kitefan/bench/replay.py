"""Replay at maximum speed: ``kitefan replay --speed max`` in its own process → a counting client.

Two recordings are written once per run, by kitefan's own :class:`~kitefan.recording.Recorder`,
into a temporary directory, of frames the simulator's market builds:

* **max-rate frames**: 3 connections × 3,000 tokens (two thirds full mode, one third quote, the
  end-to-end benchmark's symbols), in frames cut at 256 KiB as ``kitefan simulate --rate max``
  sends them (about 1,400 full packets each), 40 rounds: 360,000 ticks;
* **realistic frames**: 9 connections (3 keys) × 3,000 tokens in full mode, in frames of 300
  packets, as the realistic load's ``--rate 1`` sends them (ten slices a second), 12 rounds:
  324,000 ticks.

Each round starts ``kitefan replay REC --port 0 --speed max --loop`` and a fresh client process
(``python -m kitefan.bench.replay SPEC``): one websockets connection per recorded connection,
each subscribing that connection's tokens in their recorded modes (so every frame goes out as
recorded), counting ticks by the 2-byte packet count of each frame (no decoding, so that the
client costs as little as it can). After ``warmup_s`` it counts over ``seconds`` and reads the
replay process's CPU time (``/proc``). Figures: ticks per second a client receives, the median
of the rounds, for each recording; the replay's share of a core. Reading the recording (zstd,
the chunks' checks) is in the figure: every pass reads the file again.

Owns: the replay benchmark. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kitefan.bench import Figure
from kitefan.bench.harness import (
    BenchmarkError,
    cpu_seconds,
    full_rate_symbols,
    realistic_tokens,
    run_child,
    start_ticker,
    stop_process,
)
from kitefan.events import TickBatch
from kitefan.models import Mode
from kitefan.simulator.market import Market, assemble_frames

__all__ = [
    "RECORDINGS",
    "TARGET_TICKS_PER_S",
    "ReplayBenchResult",
    "ReplayProcess",
    "main",
    "run_replay_benchmark",
    "write_bench_recording",
]

#: The design's target for replay at maximum speed, on a 2-core machine.
TARGET_TICKS_PER_S = 500_000

_NOW = 1_700_023_531  # 2023-11-15 10:15:31 IST: the recordings' first second

#: The recordings: name -> (keys, connections per key, tokens per connection, packets per
#: frame (None: cut at 256 KiB), rounds, all in full mode).
RECORDINGS: dict[str, tuple[int, int, int, int | None, int, bool]] = {
    "max-rate frames": (1, 3, 3000, None, 40, False),
    "realistic frames": (3, 3, 3000, 300, 12, True),
}

Connection = tuple[str, int, dict[str, list[int]]]  # key, connection, mode -> tokens


def _layout(name: str) -> list[Connection]:
    keys, per_key, per_conn, _, _, all_full = RECORDINGS[name]
    count = keys * per_key
    if all_full:
        symbols = [(t, Mode.FULL) for t in realistic_tokens(count * per_conn)]
    else:
        symbols = full_rate_symbols(count, per_conn)
    out: list[Connection] = []
    for index in range(count):
        by_mode: dict[str, list[int]] = {mode.value: [] for mode in Mode}
        for token, mode in symbols[index * per_conn : (index + 1) * per_conn]:
            by_mode[mode.value].append(token)
        out.append((f"bench{index // per_key}", index % per_key, by_mode))
    return out


async def write_bench_recording(name: str, path: Path) -> int:
    """Write the recording ``name`` of :data:`RECORDINGS` to ``path``; return its ticks."""
    from kitefan.recording import Recorder

    _, _, _, per_frame, rounds, _ = RECORDINGS[name]
    layout = _layout(name)
    market = Market(seed=7)
    ticks = 0
    wall = float(_NOW)
    async with Recorder(path, source="kitefan bench replay") as recorder:
        for round_ in range(rounds):
            now = _NOW + round_
            for key, connection, by_mode in layout:
                parts = []
                for mode_name, tokens in by_mode.items():
                    for token in tokens:
                        instrument = market.instrument(token, now)
                        instrument.trade(now)
                        parts.append(instrument.parts[Mode(mode_name)])
                if per_frame is None:
                    frames = assemble_frames(parts)
                else:
                    frames = [
                        frame
                        for start in range(0, len(parts), per_frame)
                        for frame in assemble_frames(parts[start : start + per_frame])
                    ]
                for frame, count in frames:
                    wall += 0.001
                    recorder.add(TickBatch(key, connection, frame, 0.0, wall, count=count))
                    ticks += count
            await asyncio.sleep(0)  # let the writer's thread take the chunks
    return ticks


class ReplayProcess:
    """``kitefan replay PATH --port 0 --speed max --loop`` in its own process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BenchmarkError("the replay is not running")
        return self._process.pid

    def __enter__(self) -> Self:
        command = [sys.executable, "-m", "kitefan", "replay", str(self.path)]
        command += ["--host", "127.0.0.1", "--port", "0", "--speed", "max", "--loop"]
        self._process, self.url = start_ticker(command, "the replay")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)


@dataclass(frozen=True)
class ReplayBenchResult:
    """Every round of the replay benchmark, per recording."""

    rounds: dict[str, list[dict[str, Any]]]
    ticks: dict[str, int]
    seconds: float

    def median(self, name: str, field: str) -> float | None:
        values = [r[field] for r in self.rounds.get(name, []) if r.get(field) is not None]
        return statistics.median(values) if values else None

    def figures(self) -> list[Figure]:
        out = []
        for name in RECORDINGS:
            rate = self.median(name, "ticks_per_s")
            out.append(
                Figure(
                    "replay",
                    f"`replay --speed max` → client, {name}",
                    rate,
                    "ticks/s",
                    target=f">= {TARGET_TICKS_PER_S:,}",
                    ok=None if rate is None else rate >= TARGET_TICKS_PER_S,
                    samples=len(self.rounds.get(name, [])),
                    note=f"{self.ticks.get(name, 0):,} ticks looped; read, checked, served",
                )
            )
            share = self.median(name, "replay_cpu_share")
            out.append(
                Figure(
                    "replay",
                    f"the replay's CPU share of one core, {name}",
                    None if share is None else share * 100,
                    "%",
                    samples=len(self.rounds.get(name, [])),
                )
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "ticks": self.ticks, "seconds": self.seconds}


def run_replay_benchmark(
    *,
    rounds: int = 3,
    seconds: float = 2.0,
    warmup_s: float = 1.0,
    recordings: Sequence[str] = tuple(RECORDINGS),
    progress: Callable[[str], None] | None = None,
) -> ReplayBenchResult:
    """Write the recordings, then replay each ``rounds`` times to a fresh client.

    Raises:
        BenchmarkError: the replay or the client failed.
    """
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in recordings}
    ticks: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="kitefan-bench-") as tmp:
        paths = {}
        for name in recordings:
            path = Path(tmp) / f"{name.split()[0]}.kfr"
            ticks[name] = asyncio.run(write_bench_recording(name, path))
            paths[name] = path
        for round_ in range(rounds):
            for name in recordings:
                with ReplayProcess(paths[name]) as replay:
                    spec = {
                        "url": replay.url,
                        "pid": replay.pid,
                        "connections": _layout(name),
                        "seconds": seconds,
                        "warmup_s": warmup_s,
                    }
                    result = run_child(
                        "kitefan.bench.replay", spec, timeout_s=60 + warmup_s + seconds
                    )
                results[name].append(result)
                if progress is not None:
                    progress(
                        f"replay round {round_ + 1}/{rounds}, {name}: "
                        f"{result['ticks_per_s']:,.0f} ticks/s"
                    )
    return ReplayBenchResult(results, ticks, seconds)


# The client (python -m kitefan.bench.replay SPEC.json) ---------------------------------------


async def _client(spec: dict[str, Any]) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    counts = [0]
    first = asyncio.Event()
    sockets = []
    readers = []

    async def read(ws: Any) -> None:
        async for message in ws:
            if isinstance(message, bytes) and len(message) > 1:
                counts[0] += message[0] << 8 | message[1]
                first.set()

    try:
        for key, connection, by_mode in spec["connections"]:
            query = f"{spec['url']}/?api_key={key}-{connection}&access_token=bench"
            ws = await connect(query, compression=None, max_size=None, ping_interval=None)
            sockets.append(ws)
            tokens = [t for group in by_mode.values() for t in group]
            await ws.send(json.dumps({"a": "subscribe", "v": tokens}))
            for mode, group in by_mode.items():
                if group:
                    await ws.send(json.dumps({"a": "mode", "v": [mode, group]}))
            readers.append(asyncio.create_task(read(ws)))
        async with asyncio.timeout(30):
            await first.wait()
        await asyncio.sleep(spec["warmup_s"])
        pid = spec["pid"]
        cpu_start = cpu_seconds(pid)
        own_start = time.process_time()
        before = counts[0]
        start = time.perf_counter()
        await asyncio.sleep(spec["seconds"])
        got = counts[0] - before
        wall = time.perf_counter() - start
        cpu_end = cpu_seconds(pid)
        share = None
        if cpu_start is not None and cpu_end is not None:
            share = (cpu_end - cpu_start) / wall
        return {
            "ticks": got,
            "seconds": wall,
            "ticks_per_s": got / wall,
            "replay_cpu_share": share,
            "client_cpu_share": (time.process_time() - own_start) / wall,
        }
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in sockets:
            await ws.close()


def main() -> None:
    """The measuring client: read the spec, measure, print one JSON object."""
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    try:
        result = asyncio.run(_client(spec))
    except (OSError, TimeoutError) as exc:
        result = {"error": f"the client failed: {exc!r}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
