"""``kitefan bench recording`` runs and reports its figures (their values are measurements, never
asserted); the realistic load's frames are the simulator's, every one well-formed."""

from __future__ import annotations

from kitefan.bench.recording import realistic_batches, run_recording_benchmark
from kitefan.codec import decode_packets
from kitefan.render.bench import format_value


def test_the_realistic_frames_are_full_mode_ticks_of_27000_symbols() -> None:
    batches = realistic_batches(1)
    tokens = {t.instrument_token for b in batches for t in b.ticks}
    assert 20_000 < len(tokens) <= 27_000  # one step each: most move, some do not
    assert {b.connection for b in batches} == {0, 1, 2}
    assert {b.key for b in batches} == {"key0", "key1", "key2"}
    assert all(len(decode_packets(b.frame)[0]) == len(b) for b in batches)


def test_the_benchmark_reports_every_figure() -> None:
    result = run_recording_benchmark(rounds=1, seconds=1)
    figures = result.figures()
    assert [f.name for f in figures] == [
        "recording's CPU at the realistic load",
        "bytes per tick on disk",
        "bytes per tick, raw frames",
        "bytes per tick, Parquet",
        "bytes per tick, Parquet with zstd",
        "export to Parquet",
        "export to Parquet with zstd",
    ]
    assert all(f.value is not None and f.value > 0 for f in figures)
    assert [f.target for f in figures] == ["< 5%", "", "", "", "", ">= 1M", ""]
    raw = figures[2]
    assert raw.value is not None
    assert format_value(raw) == f"{raw.value:.1f} bytes"
    assert result.as_dict()["ticks"] == result.ticks
