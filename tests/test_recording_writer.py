"""The recorder and the reader on files: frames and events read back exactly, a directory gets
one file per IST trading day, an existing file is appended to after its partial last chunk is cut
off, a file cut anywhere reads to its last whole chunk and the reader says where it stopped."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from kitefan.bench.decode import mixed_frames
from kitefan.errors import RecordingError
from kitefan.events import ErrorEvent, Event, Status, StatusEvent, TickBatch
from kitefan.models import IST
from kitefan.recording import Recorder, Recording
from kitefan.recording.reader import READ_AHEAD
from kitefan.recording.writer import CHUNK_BYTES

FRAMES = mixed_frames(30, 8, seed=5)
# 23:59:59.5 IST on 2026-12-01, then every 50 ms: the last frames fall on 2026-12-02.
T0 = datetime(2026, 12, 1, 23, 59, 59, 500000, tzinfo=IST).timestamp()


def batches(start: float = T0) -> list[TickBatch]:
    return [TickBatch(f"k{i % 2}", i % 3, f, 0.0, start + i * 0.05) for i, f in enumerate(FRAMES)]


async def record(path: Path, items: Sequence[Event], chunk_bytes: int = CHUNK_BYTES) -> Recorder:
    async with Recorder(
        path, symbols=lambda: {5633: "NSE:ACC"}, chunk_bytes=chunk_bytes
    ) as recorder:
        for item in items:
            recorder.add(item)
    return recorder


async def test_frames_and_events_read_back_exactly(tmp_path: Path) -> None:
    path = tmp_path / "r.kfr"
    written = batches()
    items: list[Event] = [*written, StatusEvent("k0", 1, Status.RECONNECTING, "lost", T0 + 2.0)]
    items.append(ErrorEvent("k1", 2, "\x00odd\u2028", T0 + 2.5))
    recorder = await record(path, items, chunk_bytes=4096)
    got = list(Recording(path).events())
    read = [b for b in got[:-2] if isinstance(b, TickBatch)]
    assert len(read) == len(got) - 2
    assert [(b.key, b.connection, b.frame) for b in read] == [
        (b.key, b.connection, b.frame) for b in written
    ]
    assert [round(b.received_wall * 1e6) for b in read] == [
        round(b.received_wall * 1e6) for b in written
    ]
    assert got[-2:] == items[-2:]
    stats = recorder.stats()
    assert stats.ticks == sum(len(b) for b in batches())
    assert (stats.frames, stats.events, stats.dropped_ticks) == (len(FRAMES), 2, 0)
    assert stats.chunks > 3  # 4 kB chunks
    assert stats.bytes_written == path.stat().st_size
    recording = Recording(path)
    list(recording.records())
    assert recording.symbols == {5633: "NSE:ACC"}


async def test_a_directory_gets_one_file_per_ist_day_each_with_the_names(tmp_path: Path) -> None:
    await record(tmp_path, list(batches()))
    names = sorted(p.name for p in tmp_path.iterdir())  # noqa: ASYNC240 - a test directory
    assert names == ["2026-12-01.kfr", "2026-12-02.kfr"]
    first = Recording(tmp_path / "2026-12-01.kfr")
    second = Recording(tmp_path / "2026-12-02.kfr")
    assert [b.frame for b in first.ticks()] == FRAMES[:10]
    assert [b.frame for b in second.ticks()] == FRAMES[10:]
    assert first.symbols == second.symbols == {5633: "NSE:ACC"}
    assert [b.frame for b in Recording(tmp_path).ticks()] == FRAMES


@pytest.mark.parametrize("ahead", [False, True], ids=["reads-ahead", "decompresses-ahead"])
async def test_a_file_cut_mid_chunk_is_appended_to_after_the_cut(
    tmp_path: Path, ahead: bool
) -> None:
    path = tmp_path / "r.kfr"
    await record(path, list(batches()), chunk_bytes=2048)
    whole = path.read_bytes()
    recording = Recording(path)
    chunks = list(recording.chunks())
    cut = chunks[-1].offset + 7  # the last chunk's header, cut short
    path.write_bytes(whole[:cut])
    cut_read = Recording(path, decompress_ahead=ahead)
    kept = [b.frame for b in cut_read.ticks()]
    (end,) = cut_read.report.truncated
    assert (end.offset, end.truncated) == (chunks[-1].offset, 7)
    assert end.describe() == (
        f"{path}: stopped at byte {chunks[-1].offset:,}, after its last whole chunk; the 7 bytes "
        "after it are a chunk not written whole (a writer killed, or one still writing)"
    )
    await record(path, list(batches(T0 + 100)), chunk_bytes=2048)
    again = Recording(path, decompress_ahead=ahead)
    assert [b.frame for b in again.ticks()] == kept + FRAMES
    assert (again.report.skipped_chunks, again.report.truncated) == (0, [])


async def test_a_file_that_is_not_a_recording_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.kfr"
    path.write_bytes(b"hello")
    with pytest.raises(RecordingError, match="exists and is not a kitefan recording"):
        await record(path, [])
    assert path.read_bytes() == b"hello"
    with pytest.raises(RecordingError, match=r"notes\.kfr: not a kitefan recording"):
        list(Recording(path).chunks())
    with pytest.raises(RecordingError, match="no such file or directory"):
        Recording(tmp_path / "missing.kfr")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RecordingError, match=r"holds no recording \(no \*.kfr file\)"):
        Recording(empty)


async def test_what_is_added_after_close_is_counted_as_dropped(tmp_path: Path) -> None:
    recorder = await record(tmp_path / "r.kfr", list(batches()[:3]))
    recorder.add(batches()[3])
    assert recorder.stats().dropped_ticks == len(batches()[3])


@pytest.mark.parametrize("ahead", [False, True], ids=["reads-ahead", "decompresses-ahead"])
async def test_a_pass_stopped_early_stops_its_read_ahead_and_closes_the_file(
    tmp_path: Path, ahead: bool
) -> None:
    path = tmp_path / "r.kfr"
    await record(path, batches(), chunk_bytes=1024)
    recording = Recording(path, decompress_ahead=ahead)
    passes = [recording.chunks() for _ in range(3)]
    firsts = [next(p) for p in passes]  # each pass's thread reads ahead meanwhile
    assert len({c.offset for c in firsts}) == 1
    for p in passes:
        p.close()
    assert [t for t in threading.enumerate() if t.name == "kitefan-read-ahead"] == []
    whole = list(recording.chunks())
    assert len(whole) > READ_AHEAD + 2  # more chunks than are read ahead
    assert [c.offset for c in whole] == sorted(c.offset for c in whole)
    assert recording.report.chunks == len(whole)
    assert [t for t in threading.enumerate() if t.name == "kitefan-read-ahead"] == []
