"""The recorder's figures where a running stream's figures are shown: the stats document
(``kitefan stats --format json``), the Prometheus metrics, and ``kitefan stats``' view."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry, generate_latest
from test_metrics import STATS, samples
from test_render_stats import text_of

from kitefan.metrics import FeedCollector
from kitefan.recording import RecordStats as ExportedRecordStats
from kitefan.render.stats import stats_view
from kitefan.stats import RecordStats

RECORD = RecordStats(
    path="/data/ticks",
    files=2,
    chunks=31,
    bytes_written=1_234_567,
    frames=900,
    ticks=45_000,
    events=12,
    dropped_ticks=0,
    dropped_events=0,
    write_errors=0,
    last_error="",
)
RECORDING = dataclasses.replace(STATS, record=RECORD)
FAILING = dataclasses.replace(
    STATS,
    record=dataclasses.replace(
        RECORD,
        dropped_ticks=1_500,
        dropped_events=3,
        write_errors=2,
        last_error="No space left on device",
    ),
)


def test_the_recording_package_names_the_same_figures() -> None:
    assert ExportedRecordStats is RecordStats


def test_the_document_has_record_only_while_recording() -> None:
    assert "record" not in STATS.as_dict()
    assert RECORDING.as_dict()["record"] == {
        "path": "/data/ticks",
        "files": 2,
        "chunks": 31,
        "bytes_written": 1_234_567,
        "frames": 900,
        "ticks": 45_000,
        "events": 12,
        "dropped_ticks": 0,
        "dropped_events": 0,
        "write_errors": 0,
        "last_error": "",
    }
    assert {k: v for k, v in RECORDING.as_dict().items() if k != "record"} == STATS.as_dict()


def scraped(stats: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FeedCollector(lambda: stats))  # type: ignore[arg-type, return-value]  # a stats stand-in
    return samples(generate_latest(registry).decode())


def test_the_metrics_count_what_was_recorded_and_dropped() -> None:
    label = (("path", "/data/ticks"),)
    assert {k: v for k, v in scraped(FAILING).items() if k[0].startswith("kitefan_record_")} == {
        ("kitefan_record_ticks_total", label): 45_000,
        ("kitefan_record_frames_total", label): 900,
        ("kitefan_record_bytes_total", label): 1_234_567,
        ("kitefan_record_chunks_total", label): 31,
        ("kitefan_record_dropped_ticks_total", label): 1_500,
        ("kitefan_record_dropped_events_total", label): 3,
        ("kitefan_record_write_errors_total", label): 2,
    }
    assert not [k for k in scraped(STATS) if k[0].startswith("kitefan_record_")]


def test_kitefan_stats_shows_a_line_of_recording() -> None:
    text = text_of(stats_view(RECORDING.as_dict(), source="s"), width=200)
    assert (
        "recording to /data/ticks: 45,000 ticks in 900 frames, 1,234.6 kB in 31 chunks, "
        "0 ticks dropped\n"
    ) in text
    failing = text_of(stats_view(FAILING.as_dict(), source="s"), width=200)
    assert (
        "recording to /data/ticks: 45,000 ticks in 900 frames, 1,234.6 kB in 31 chunks, "
        "1,500 ticks dropped, 3 events dropped, 2 failed writes (No space left on device)\n"
    ) in failing
    assert "recording to" not in text_of(stats_view(STATS.as_dict(), source="s"), width=200)
