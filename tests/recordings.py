"""Recordings written for tests: frames built with the simulator's market and the codec, at
chosen receive times, written by kitefan's own :class:`~kitefan.recording.Recorder`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kitefan.codec import frame_of_packets
from kitefan.events import TickBatch
from kitefan.models import Mode
from kitefan.recording import Recorder
from kitefan.simulator import Market

__all__ = ["market_frames", "write_recording"]


def market_frames(
    tokens: Sequence[int], n: int, *, start_s: float, gap_s: float, seed: int = 0
) -> list[tuple[float, bytes]]:
    """``n`` frames of every token's full packet (the longest it has), ``gap_s`` apart from
    ``start_s`` (Unix seconds), the market stepped between them."""
    market = Market(seed)
    frames = []
    for i in range(n):
        now = int(start_s + i * gap_s)
        packets = []
        for token in tokens:
            instrument = market.instrument(token, now)
            instrument.step(now)
            packets.append(instrument.packet(Mode.FULL))
        frames.append((start_s + i * gap_s, frame_of_packets(packets)))
    return frames


async def write_recording(
    path: Path, frames: Sequence[tuple[float, bytes]], key: str = "alpha", connection: int = 0
) -> Path:
    """A recording at ``path`` of ``frames`` (receive time, bytes), all on one connection."""
    async with Recorder(path) as recorder:
        for wall, data in frames:
            recorder.add(TickBatch(key, connection, data, 0.0, wall))
    return path
