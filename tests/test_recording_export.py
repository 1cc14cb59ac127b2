"""``kitefan export``: Parquet rows equal the recorded ticks (every packet kind and segment, the
receive time to the nanosecond, names), CSV and JSON lines are exactly what ``stream`` writes for
the same frames, and --symbols, --from and --to keep what they say."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from processes import invoke

from kitefan.bench.decode import mixed_frames
from kitefan.codec import frame_tokens
from kitefan.columnar import frames_to_arrow
from kitefan.events import ErrorEvent, Status, StatusEvent, TickBatch
from kitefan.models import IST
from kitefan.recording import Recorder, Recording, export as export_module
from kitefan.recording.export import export, select_packets
from kitefan.render.records import csv_header, encode_csv, encode_jsonl

# 09:14:59 IST, then a frame every 0.5 s: 09:14:59 .. 09:15:18.5
T0 = datetime(2026, 12, 1, 9, 14, 59, tzinfo=IST).timestamp()
FRAMES = mixed_frames(40, 25, seed=11)
TOKENS = sorted({t for f in FRAMES for t in frame_tokens(f)})
NAMES = {token: f"NSE:SYM{i}" for i, token in enumerate(TOKENS[::3])}


@pytest.fixture(scope="module")
def recording_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "day.kfr"

    async def write() -> None:
        async with Recorder(path, symbols=lambda: NAMES, chunk_bytes=16384) as recorder:
            for i, frame in enumerate(FRAMES):
                recorder.add(TickBatch(f"k{i % 2}", i % 3, frame, 0.0, T0 + i * 0.5 + 0.000123))
                if i == 20:
                    recorder.add(StatusEvent("k0", 1, Status.RECONNECTING, "lost", T0 + i * 0.5))
                    recorder.add(ErrorEvent("k1", 0, "odd \x1b text", T0 + i * 0.5))

    asyncio.run(write())
    return path


def test_parquet_rows_are_the_recorded_ticks(recording_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "day.parquet"
    result = invoke("export", str(recording_path), "--output", str(out))
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    recording = Recording(recording_path)
    batches = list(recording.ticks())
    assert [b.frame for b in batches] == FRAMES
    expected = frames_to_arrow(FRAMES)
    assert table.num_rows == expected.num_rows == sum(len(b) for b in batches)
    assert table.column_names[:4] == ["received_at", "key", "connection", "symbol"]
    assert table.column_names[4:] == expected.column_names
    for name in expected.column_names:
        assert table[name].to_pylist() == expected[name].to_pylist(), name
    # Against the decoder's own dict too, on a few columns.
    ticks = [t.as_dict() for b in batches for t in b.ticks]
    assert table["instrument_token"].to_pylist() == [t["instrument_token"] for t in ticks]
    assert table["last_price"].to_pylist() == [t["last_price"] for t in ticks]
    assert table["exchange_timestamp"].to_pylist() == [t.get("exchange_timestamp") for t in ticks]
    assert table["bid_price_1"].to_pylist() == [
        t["depth"]["buy"][0]["price"] if "depth" in t else None for t in ticks
    ]
    assert table.schema.field("received_at").type == pa.timestamp("ns", tz="Asia/Kolkata")
    received = table["received_at"].cast(pa.int64()).to_pylist()
    assert received == [round(b.received_wall * 1e9) for b in batches for _ in b.ticks]
    first = table["received_at"].cast(pa.timestamp("us", tz="Asia/Kolkata"), safe=False)[0]
    assert first.as_py().isoformat() == "2026-12-01T09:14:59.000123+05:30"
    assert table["key"].to_pylist() == [b.key for b in batches for _ in b.ticks]
    assert table["connection"].to_pylist() == [b.connection for b in batches for _ in b.ticks]
    assert table["symbol"].to_pylist() == [
        NAMES.get(t["instrument_token"], str(t["instrument_token"])) for t in ticks
    ]
    assert result.stderr.startswith(
        f"kitefan: wrote {table.num_rows:,} ticks from 40 frames to {out} (parquet) in "
    )


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_records_are_what_stream_writes(recording_path: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"day.{suffix}"
    result = invoke("export", str(recording_path), "-o", str(out))
    assert result.exit_code == 0, result.output
    recording = Recording(recording_path)
    events = list(recording.events())
    assert len(events) == len(FRAMES) + 2
    if suffix == "jsonl":
        expected = encode_jsonl(events, recording.name_of)
    else:
        expected = csv_header().encode() + encode_csv(events, recording.name_of)
    assert out.read_bytes() == expected


def test_symbols_and_hours_keep_what_they_say(recording_path: Path, tmp_path: Path) -> None:
    token, name = next(iter(NAMES.items()))
    other = TOKENS[1]
    out = tmp_path / "some.jsonl"
    result = invoke(
        "export", str(recording_path), "-o", str(out), "--symbols", f"{name},{other}",
        "--from", "09:15", "--to", "09:16",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    ticks = [line for line in lines if line["type"] == "tick"]
    recording = Recording(recording_path)
    kept = [
        TickBatch(b.key, b.connection, select_packets(b.frame, {token, other}), 0, b.received_wall)
        for b in recording.ticks()
        if b.received_wall >= T0 + 1
    ]
    expected = [json.loads(x) for x in encode_jsonl(kept, recording.name_of).decode().splitlines()]
    assert ticks == expected
    assert {t["instrument_token"] for t in ticks} == {token, other}
    assert {t["symbol"] for t in ticks} == {name, str(other)}
    assert [line["type"] for line in lines if line["type"] != "tick"] == ["status", "error"]

    parquet = tmp_path / "some.parquet"
    result = invoke("export", str(recording_path), "-o", str(parquet), "--symbols", str(token))
    assert result.exit_code == 0, result.output
    table = pq.read_table(parquet)
    full = frames_to_arrow(FRAMES)
    assert table["last_price"].to_pylist() == [
        p
        for t, p in zip(
            full["instrument_token"].to_pylist(), full["last_price"].to_pylist(), strict=True
        )
        if t == token
    ]
    # the symbol column's dictionary holds the symbols kept, not every one the recording has
    for group in range(pq.ParquetFile(parquet).num_row_groups):
        column = pq.ParquetFile(parquet).read_row_group(group, columns=["symbol"])["symbol"]
        assert column.chunk(0).dictionary.to_pylist() == [NAMES.get(token, str(token))]


def test_bad_arguments_are_one_clear_line(recording_path: Path, tmp_path: Path) -> None:
    result = invoke("export", str(recording_path), "-o", str(tmp_path / "x.txt"))
    assert result.exit_code == 2
    assert "the file's suffix says the format: .parquet, .csv or .jsonl" in result.stderr
    result = invoke("export", str(recording_path), "-o", str(tmp_path / "x.csv"), "--from", "9")
    assert result.exit_code == 2
    assert "must be a time of day HH:MM in IST (like 09:15), not '9'" in result.stderr
    result = invoke(
        "export", str(recording_path), "-o", str(tmp_path / "x.csv"), "--symbols", "NSE:SYM1X"
    )
    assert result.exit_code == 2
    assert "'NSE:SYM1X' is not a symbol this recording names (did you mean NSE:SYM1" in (
        result.stderr
    )
    result = invoke("export", str(tmp_path / "nothing.kfr"), "-o", str(tmp_path / "x.csv"))
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: {tmp_path / 'nothing.kfr'}: no such file or directory\n",
    )


def test_parquet_without_pyarrow_names_the_extra(
    recording_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    result = invoke("export", str(recording_path), "-o", str(tmp_path / "x.parquet"))
    assert (result.exit_code, result.stderr) == (
        1,
        "error: exporting to Parquet needs pyarrow: pip install 'kitefan[parquet]'\n",
    )


def test_parquet_is_written_with_the_documented_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Row groups of 1,000 ticks (of 64k): several are written while the next is decoded.
    monkeypatch.setattr(export_module, "ROW_GROUP_TICKS", 1000)
    frames = mixed_frames(37, 100)
    path = tmp_path / "many.kfr"

    async def record() -> None:
        async with Recorder(path, symbols=lambda: {}) as recorder:
            for i, frame in enumerate(frames):
                recorder.add(TickBatch("alpha", i % 2, frame, float(i), 1_764_567_890.0 + i))

    asyncio.run(record())
    out = tmp_path / "many.parquet"
    result = export(Recording(path), out)
    table = pq.read_table(out)
    assert result.rows == table.num_rows == sum(len(frames_to_arrow(f)) for f in frames)
    expected = frames_to_arrow(frames)
    assert table["instrument_token"].to_pylist() == expected["instrument_token"].to_pylist()
    assert table["ask_price_5"].to_pylist() == expected["ask_price_5"].to_pylist()
    metadata = pq.ParquetFile(out).metadata
    assert metadata.num_row_groups == 4
    group = metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert {c.compression for c in columns.values()} == {
        "LZ4"
    }  # LZ4_RAW in the file; pyarrow names it LZ4
    with_dictionary = {n for n, c in columns.items() if c.dictionary_page_offset is not None}
    assert with_dictionary == {"key", "symbol", "mode"}
    with_statistics = {n for n, c in columns.items() if c.is_stats_set}
    assert with_statistics == {
        "received_at",
        "connection",
        "instrument_token",
        "exchange_timestamp",
    }
    assert "BYTE_STREAM_SPLIT" in columns["bid_price_1"].encodings
    for name in ("bid_quantity_1", "bid_orders_1", "instrument_token", "exchange_timestamp"):
        assert "DELTA_BINARY_PACKED" in columns[name].encodings, name
    # one symbol dictionary for the file: every row group's holds every name seen so far
    symbols = pq.ParquetFile(out).read_row_group(3, columns=["symbol"])["symbol"]
    assert len(symbols.chunk(0).dictionary) == len(set(table["symbol"].to_pylist()))
    assert symbols.to_pylist() == [
        str(t) for t in table["instrument_token"].to_pylist()[-symbols.length() :]
    ]


@pytest.mark.parametrize(
    ("codec", "written"), [("zstd", "ZSTD"), ("snappy", "SNAPPY"), ("none", "UNCOMPRESSED")]
)
def test_parquet_takes_the_codec_asked_for(
    recording_path: Path, tmp_path: Path, codec: str, written: str
) -> None:
    out = tmp_path / f"{codec}.parquet"
    result = invoke("export", str(recording_path), "-o", str(out), "--compression", codec)
    assert result.exit_code == 0, result.stderr
    lz4 = tmp_path / "lz4.parquet"
    assert invoke("export", str(recording_path), "-o", str(lz4)).exit_code == 0
    group = pq.ParquetFile(out).metadata.row_group(0)
    assert {group.column(i).compression for i in range(group.num_columns)} == {written}
    assert pq.read_table(out).equals(pq.read_table(lz4))


def test_an_unknown_codec_says_which_there_are(recording_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    result = invoke("export", str(recording_path), "-o", str(out), "--compression", "brotli")
    assert result.exit_code == 2
    assert "brotli" in result.stderr and "lz4" in result.stderr and not out.exists()
