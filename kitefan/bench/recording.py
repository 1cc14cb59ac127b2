"""Recording: what ``--record`` costs and what it keeps, on the realistic load's ticks.

The ticks are the simulator's own (:class:`kitefan.simulator.market.Market`, the walk ``kitefan
simulate`` serves): 27,000 full-mode symbols (:func:`~kitefan.bench.harness.realistic_tokens`)
on 9 connections of 3000, each instrument stepped once a simulated second and sent when full mode
sees the change, framed by the simulator's own framing, 10 frames a second per connection.
Their receive times are spread over the simulated seconds. Per round:

* **CPU**: a :class:`~kitefan.recording.Recorder` is given every frame (what ``--record`` does
  per frame on the event loop) and closed; the CPU it took is ``time.process_time()`` of this
  process over that span, the worker thread's compression and writes included. Divided by the
  ticks it is CPU per tick; times 27,000 ticks/s (the realistic load) it is the share of a core
  that recording adds to a stream at that load. In-process, against the same frames, so the
  figure is recording's own cost, which comes on top of the stream's.
* **bytes per tick** on disk (the file, everything in it), of the raw frames (what Kite sent),
  and of a Parquet file of the same ticks written by ``kitefan export`` (its default codec, lz4,
  and ``--compression zstd``).
* **export to Parquet**: ticks per second of :func:`kitefan.recording.export.export`, reading
  and decompressing the recording included, with the default codec and with zstd. The recording
  exported is the load's frames written :data:`EXPORT_REPEATS` times over, each pass's receive
  times after the last's (a longer span, so that the figure is the export's steady rate and not
  the start and end of its pipeline: the first row group decoded while nothing is written yet,
  the last written while nothing is decoded).

Owns: the recording benchmark (``kitefan bench recording``). Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitefan.bench import Figure
from kitefan.bench.harness import BenchmarkError, realistic_tokens
from kitefan.events import TickBatch
from kitefan.models import Mode
from kitefan.simulator.market import Market, assemble_frames, visible

__all__ = ["RecordingResult", "realistic_batches", "run_recording_benchmark"]

#: The realistic load's rate: 27,000 symbols at about one tick a second.
LOAD_TICKS_PER_S = 27_000
TARGET_CPU_SHARE = 5.0
TARGET_EXPORT = 1_000_000.0
#: How many times over the load's frames are written to the recording the export reads.
EXPORT_REPEATS = 4


def realistic_batches(seconds: int, *, symbols: int = 27_000, seed: int = 7) -> list[TickBatch]:
    """The frames of ``seconds`` simulated seconds of the realistic load (module docstring)."""
    market = Market(seed)
    tokens = realistic_tokens(symbols)
    start = 1_764_560_700  # 2026-12-01 09:15:00 IST
    per_conn = 3000
    batches: list[TickBatch] = []
    for second in range(seconds):
        now = start + second
        for conn_index in range(0, len(tokens), per_conn):
            conn_tokens = tokens[conn_index : conn_index + per_conn]
            key, connection = f"key{conn_index // (3 * per_conn)}", conn_index // per_conn % 3
            for slot in range(10):
                parts: list[Any] = []
                for token in conn_tokens[slot::10]:
                    instrument = market.instrument(token, now)
                    if visible(instrument.step(now), Mode.FULL):
                        packet = instrument.packet(Mode.FULL)
                        parts.append((len(packet).to_bytes(2, "big"), memoryview(packet)))
                wall = now + slot / 10 + conn_index / len(tokens) / 10
                for frame, count in assemble_frames(parts):
                    batches.append(TickBatch(key, connection, frame, 0.0, wall, count=count))
    return batches


@dataclass(frozen=True)
class RecordingResult:
    ticks: int
    frames: int
    samples: dict[str, list[float]]
    rounds: int

    def median(self, name: str) -> float | None:
        values = self.samples.get(name)
        return statistics.median(values) if values else None

    def figures(self) -> list[Figure]:
        n = self.rounds
        cpu = self.median("cpu_share")
        export = self.median("export_ticks_per_s")
        per_tick = self.median("cpu_us_per_tick")
        note = f"{self.ticks:,} ticks of the simulator's realistic load, {self.frames:,} frames"
        return [
            Figure(
                "recording",
                "recording's CPU at the realistic load",
                cpu,
                "%",
                target=f"< {TARGET_CPU_SHARE:g}%",
                ok=None if cpu is None else cpu < TARGET_CPU_SHARE,
                samples=n,
                note=f"{per_tick or 0:.2f} µs of CPU per tick (loop and writer thread) x "
                f"{LOAD_TICKS_PER_S:,} ticks/s; {note}",
            ),
            Figure(
                "recording",
                "bytes per tick on disk",
                self.median("disk_bytes_per_tick"),
                "bytes",
                samples=n,
                note="the recording file, everything in it (zstd level 1, 1 MiB chunks)",
            ),
            Figure(
                "recording",
                "bytes per tick, raw frames",
                self.median("raw_bytes_per_tick"),
                "bytes",
                samples=n,
                note="the frames as Kite sent them (184-byte full packets + 2-byte lengths)",
            ),
            Figure(
                "recording",
                "bytes per tick, Parquet",
                self.median("parquet_bytes_per_tick"),
                "bytes",
                samples=n,
                note="kitefan export to .parquet of the same ticks (lz4, typed columns)",
            ),
            Figure(
                "recording",
                "bytes per tick, Parquet with zstd",
                self.median("parquet_zstd_bytes_per_tick"),
                "bytes",
                samples=n,
                note="the same with --compression zstd (level 1)",
            ),
            Figure(
                "recording",
                "export to Parquet",
                export,
                "ticks/s",
                target=f">= {TARGET_EXPORT / 1e6:g}M",
                ok=None if export is None else export >= TARGET_EXPORT,
                samples=n,
                note="read, decompress, columnar decode, write: kitefan export FILE -o X.parquet "
                f"(lz4), the load's frames recorded {EXPORT_REPEATS} times over",
            ),
            Figure(
                "recording",
                "export to Parquet with zstd",
                self.median("export_zstd_ticks_per_s"),
                "ticks/s",
                samples=n,
                note="the same with --compression zstd",
            ),
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "frames": self.frames,
            "rounds": self.rounds,
            "samples": self.samples,
            "medians": {name: self.median(name) for name in self.samples},
        }


def _later(batch: TickBatch, seconds: float) -> TickBatch:
    return TickBatch(
        batch.key,
        batch.connection,
        batch.frame,
        batch.received_at + seconds,
        batch.received_wall + seconds,
        count=len(batch),
    )


async def _record(path: Path, batches: list[TickBatch]) -> float:
    from kitefan.recording import Recorder

    began = time.process_time()
    async with Recorder(path, symbols=lambda: {}) as recorder:
        for i, batch in enumerate(batches):
            recorder.add(batch)
            if i % 64 == 0:
                await asyncio.sleep(0)  # let the writer hand chunks on, as the loop would
    return time.process_time() - began


def run_recording_benchmark(
    rounds: int = 3,
    seconds: float = 10.0,
    progress: Callable[[str], None] | None = None,
) -> RecordingResult:
    """Record, measure and export ``seconds`` simulated seconds of the realistic load, ``rounds``
    times.

    Raises:
        BenchmarkError: pyarrow is missing (the Parquet figures need it).
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise BenchmarkError(
            "kitefan bench recording needs pyarrow: pip install -e '.[parquet]'"
        ) from None
    from kitefan.recording import Recording
    from kitefan.recording.export import export

    batches = realistic_batches(max(1, round(seconds)))
    ticks = sum(len(b) for b in batches)
    raw = sum(len(b.frame) for b in batches)
    samples: dict[str, list[float]] = {
        name: []
        for name in (
            "cpu_us_per_tick",
            "cpu_share",
            "disk_bytes_per_tick",
            "raw_bytes_per_tick",
            "parquet_bytes_per_tick",
            "parquet_zstd_bytes_per_tick",
            "export_ticks_per_s",
            "export_zstd_ticks_per_s",
        )
    }
    with tempfile.TemporaryDirectory(prefix="kitefan-bench-record-") as tmp:
        for index in range(rounds):
            path = Path(tmp) / f"round{index}.kfr"
            cpu = asyncio.run(_record(path, batches))
            longer = Path(tmp) / f"round{index}-x{EXPORT_REPEATS}.kfr"
            span = batches[-1].received_wall - batches[0].received_wall + 1.0
            for k in range(EXPORT_REPEATS):  # each pass a Recorder of its own, appended
                asyncio.run(_record(longer, [_later(b, k * span) for b in batches]))
            rates = {}
            for codec in ("lz4", "zstd"):
                parquet = Path(tmp) / f"round{index}-{codec}.parquet"
                began = time.perf_counter()
                result = export(Recording(longer), parquet, compression=codec)
                took = time.perf_counter() - began
                if result.rows != ticks * EXPORT_REPEATS:
                    raise BenchmarkError(
                        f"the export wrote {result.rows:,} rows of {ticks * EXPORT_REPEATS:,} ticks"
                    )
                rates[codec] = result.rows / took
                size = parquet.stat().st_size / result.rows
                samples[
                    "parquet_bytes_per_tick" if codec == "lz4" else "parquet_zstd_bytes_per_tick"
                ].append(size)
            samples["cpu_us_per_tick"].append(cpu / ticks * 1e6)
            samples["cpu_share"].append(cpu / ticks * LOAD_TICKS_PER_S * 100)
            samples["disk_bytes_per_tick"].append(path.stat().st_size / ticks)
            samples["raw_bytes_per_tick"].append(raw / ticks)
            samples["export_ticks_per_s"].append(rates["lz4"])
            samples["export_zstd_ticks_per_s"].append(rates["zstd"])
            if progress is not None:
                progress(
                    f"recording round {index + 1}/{rounds}: {cpu / ticks * 1e6:.2f} µs CPU per "
                    f"tick, {path.stat().st_size / ticks:.1f} bytes per tick on disk, export "
                    f"{rates['lz4']:,.0f} ticks/s (zstd {rates['zstd']:,.0f})"
                )
    return RecordingResult(ticks, len(batches), samples, rounds)
