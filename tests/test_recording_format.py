"""The recording's bytes: records and events round-trip exactly; a log cut anywhere reads up to its
last whole chunk and says where it stopped; a corrupted chunk (or chunk header) is skipped and
counted, and every other chunk still reads; bytes fed in any pieces read the same."""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings, strategies as st

from kitefan.bench.decode import mixed_frames
from kitefan.errors import RecordingError
from kitefan.events import ErrorEvent, Gap, OrderEvent, Status, StatusEvent, TickBatch
from kitefan.models import OrderUpdate
from kitefan.recording.format import (
    CHUNK_HEADER,
    FILE_MAGIC,
    KIND_FRAME,
    KIND_SYMBOLS,
    Chunk,
    ChunkBuilder,
    End,
    Header,
    LogScanner,
    Record,
    Skipped,
    decode_header,
    encode_header,
    event_record,
    parse_records,
    payload_crcs,
    record_event,
    symbols_body,
    symbols_of,
    zstd_compressor,
)

COMPRESS = zstd_compressor()
FRAMES = mixed_frames(12, 6, seed=3)


def frame_records(frames: list[bytes], start_ns: int = 1_764_567_890_123_456_789) -> list[Record]:
    return [
        Record(KIND_FRAME, f"key{i % 2}", i % 3, start_ns + i * 1_000_000, f)
        for i, f in enumerate(frames)
    ]


def build_log(records: list[Record], per_chunk: int) -> tuple[bytes, list[tuple[int, int]]]:
    """A log's bytes and each chunk's (offset, size)."""
    data = bytearray(encode_header({"source": "test"}))
    spans = []
    for at in range(0, len(records), per_chunk):
        builder = ChunkBuilder()
        builder.add_all(records[at : at + per_chunk])
        chunk = builder.seal(COMPRESS)
        spans.append((len(data), len(chunk)))
        data += chunk
    return bytes(data), spans


def scan(data: bytes, pieces: list[int] | None = None) -> list[object]:
    scanner = LogScanner()
    items: list[object] = []
    cuts = [0, *(pieces or []), len(data)]
    for a, b in itertools.pairwise(cuts):
        scanner.receive_data(data[a:b])
        while (item := scanner.next_item()) is not None:
            items.append(item)
    scanner.end_of_data()
    while (item := scanner.next_item()) is not None:
        items.append(item)
    return items


def scan_together(data: bytes, pieces: list[int], max_raw: int) -> list[object]:
    """As :func:`scan`, through ``next_items``: the chunks that are all there, together."""
    scanner = LogScanner()
    items: list[object] = []
    cuts = [0, *pieces, len(data)]
    for a, b in itertools.pairwise(cuts):
        scanner.receive_data(data[a:b])
        while batch := scanner.next_items(max_raw):
            items += batch
    scanner.end_of_data()
    while batch := scanner.next_items(max_raw):
        items += batch
    assert scanner.next_items(max_raw) == [] and scanner.next_item() is None
    return items


RECORDS = frame_records(FRAMES)
LOG, SPANS = build_log(RECORDS, per_chunk=4)
HEADER_SIZE = SPANS[0][0]


def test_the_file_header_is_laid_out_as_documented() -> None:
    header = encode_header({"source": "test"})
    meta = b'{"source":"test"}'
    assert header[:8] == b"\x89KFR\r\n\x1a\n" == FILE_MAGIC
    assert header[8:16] == struct.pack("<HHI", 1, 0, len(meta))
    assert header[16:-4] == meta
    assert header[-4:] == struct.pack("<I", zlib.crc32(header[:-4]))
    assert decode_header(header) == Header(1, {"source": "test"}, len(header))


def test_a_chunk_and_its_records_are_laid_out_as_documented() -> None:
    builder = ChunkBuilder()
    builder.add(Record(KIND_FRAME, "k1", 2, 1_000_000_007, b"\x00\x01AB"), ticks=1)
    builder.add(Record(KIND_SYMBOLS, "", None, 1_000_000_009, b"{}"))
    assert bytes(builder.raw) == (
        struct.pack("<BBHIQ", 1, 2, 2, 4, 1_000_000_007)
        + b"k1\x00\x01AB"
        + struct.pack("<BBHIQ", 5, 255, 0, 2, 1_000_000_009)
        + b"{}"
    )
    chunk = builder.seal(COMPRESS)
    magic, clen, rlen, count, first, last, pcrc, hcrc = struct.unpack_from("<4sIIIQQII", chunk)
    payload = chunk[CHUNK_HEADER:]
    assert (magic, clen, rlen, count) == (b"KFCK", len(payload), len(builder.raw), 2)
    assert (first, last) == (1_000_000_007, 1_000_000_009)
    assert pcrc == zlib.crc32(payload)
    assert hcrc == zlib.crc32(chunk[:36])
    import zstandard

    assert zstandard.ZstdDecompressor().decompress(payload) == bytes(builder.raw)


def test_records_read_back_exactly() -> None:
    items = scan(LOG)
    assert isinstance(items[0], Header)
    chunks = [i for i in items if isinstance(i, Chunk)]
    assert [(c.offset, c.size) for c in chunks] == SPANS
    assert [r for c in chunks for r in c.records] == RECORDS
    assert items[-1] == End(len(LOG), 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(LOG) - 1), max_size=12))
def test_bytes_fed_in_any_pieces_read_the_same(cuts: list[int]) -> None:
    assert scan(LOG, sorted(set(cuts))) == scan(LOG)


def test_a_log_cut_anywhere_reads_up_to_its_last_whole_chunk() -> None:
    for cut in range(len(LOG) + 1):
        items = scan(LOG[:cut])
        end = items[-1]
        assert isinstance(end, End)
        whole = [s for s in SPANS if s[0] + s[1] <= cut]
        chunks = [i for i in items if isinstance(i, Chunk)]
        assert [(c.offset, c.size) for c in chunks] == whole, cut
        if cut < HEADER_SIZE:
            assert items == [End(0, cut)]
            continue
        stopped = whole[-1][0] + whole[-1][1] if whole else HEADER_SIZE
        assert end == End(stopped, cut - stopped), cut
        assert not any(isinstance(i, Skipped) for i in items)


def chunk_of(position: int) -> tuple[int, int]:
    return next(s for s in SPANS if s[0] <= position < s[0] + s[1])


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=HEADER_SIZE, max_value=len(LOG) - 1), st.integers(1, 255))
def test_a_corrupted_chunk_is_skipped_and_the_others_read(position: int, xor: int) -> None:
    data = bytearray(LOG)
    data[position] ^= xor
    items = scan(bytes(data))
    offset, size = chunk_of(position)
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert len(skipped) == 1
    assert (skipped[0].offset, skipped[0].size) == (offset, size)
    # Damage in the payload is one chunk skipped; in the chunk header, a stretch resynced past.
    assert skipped[0].chunk is (position >= offset + CHUNK_HEADER)
    chunks = [i for i in items if isinstance(i, Chunk)]
    assert [(c.offset, c.size) for c in chunks] == [s for s in SPANS if s[0] != offset]
    assert items[-1] == End(len(LOG), 0)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=0, max_value=len(LOG) - 1),
    st.integers(0, 255),
    st.lists(st.integers(min_value=1, max_value=len(LOG) - 1), max_size=6),
    st.sampled_from([0, 1, 5_000, 1 << 20]),
    st.integers(min_value=HEADER_SIZE, max_value=len(LOG)),
)
def test_chunks_taken_together_read_as_one_by_one(
    position: int, xor: int, cuts: list[int], max_raw: int, length: int
) -> None:
    # Damaged anywhere (or not: xor 0), cut anywhere, fed in any pieces: next_items gives the
    # items next_item gives, in the same order, whatever the batch's bound (or the same error,
    # where the damage is in the file's magic or version).
    data = bytearray(LOG)
    data[position] ^= xor
    data = data[:length]
    pieces = sorted({c for c in cuts if c < length})

    def outcome(read: Callable[[], list[object]]) -> list[object] | str:
        try:
            return read()
        except RecordingError as exc:
            return str(exc)

    together = outcome(lambda: scan_together(bytes(data), pieces, max_raw))
    assert together == outcome(lambda: scan(bytes(data), pieces))
    assert isinstance(together, str) or isinstance(together[-1], End)


def test_payload_checksums_are_zlibs_in_one_call() -> None:
    payloads = [b"", b"a", bytes(range(256)) * 9, bytes(3 << 20)]  # the last over the GIL bound
    assert payload_crcs(payloads) == [zlib.crc32(p) for p in payloads]
    assert payload_crcs([]) == []
    from kitefan import _records

    assert _records.crc32s([bytearray(b"ab"), memoryview(b"xabc")[1:]]) == [
        zlib.crc32(b"ab"),
        zlib.crc32(b"abc"),
    ]
    with pytest.raises(TypeError, match=r"^a bytes-like object is required, not 'int'$"):
        _records.crc32s([b"ok", 7])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"^crc32s: buffers must be a sequence$"):
        _records.crc32s(7)  # type: ignore[arg-type]


def test_garbage_between_chunks_is_skipped_as_one_stretch() -> None:
    (a, asize), (b, _) = SPANS[0], SPANS[1]
    data = LOG[: a + asize] + b"\x00KFCK junk" * 7 + LOG[b:]
    items = scan(data)
    assert [i for i in items if isinstance(i, Skipped)] == [
        Skipped(a + asize, 70, "not a chunk header", chunk=False)
    ]
    assert len([i for i in items if isinstance(i, Chunk)]) == len(SPANS)


def test_what_is_not_a_recording_is_refused() -> None:
    with pytest.raises(RecordingError, match="not a kitefan recording"):
        scan(b"PAR1 some parquet bytes")
    newer = bytearray(encode_header({}))
    newer[8:10] = struct.pack("<H", 2)
    with pytest.raises(RecordingError, match="format version 2; this kitefan reads version 1"):
        scan(bytes(newer))


def test_a_corrupt_file_header_still_reads_the_chunks() -> None:
    data = bytearray(LOG)
    data[17] ^= 0x40  # inside the metadata
    items = scan(bytes(data))
    assert isinstance(items[0], Header) and items[0].corrupt
    assert [(c.offset, c.size) for c in items if isinstance(c, Chunk)] == SPANS


def test_records_that_do_not_add_up_are_refused() -> None:
    builder = ChunkBuilder()
    builder.add_all(RECORDS[:2])
    with pytest.raises(ValueError, match="after the chunk's last record"):
        parse_records(bytes(builder.raw), 1)
    with pytest.raises(ValueError, match="runs past the chunk"):
        parse_records(bytes(builder.raw)[:-1], 2)


EVENTS = [
    StatusEvent(
        "k1",
        2,
        Status.CONNECTED,
        "reconnected after 1.5 s",
        1764567890.1234567,
        Gap(1764567888.6, 1764567890.1, (256265, 738561), "connection lost"),
    ),
    StatusEvent("k1", None, Status.CONNECTED, "all keys up", 1764567891.0),
    OrderEvent(
        "k2", 1, OrderUpdate({"order_id": "1", "status": "COMPLETE", "price": 12.5}), 1764567892.25
    ),
    ErrorEvent("k2", 0, "bad\x1b[31m text \u202e", 1764567893.5),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_events_round_trip_exactly(event: object) -> None:
    record = event_record(event)  # type: ignore[arg-type]  # EVENTS holds events only
    assert record.ns == round(event.at * 1e9)  # type: ignore[attr-defined]  # EVENTS holds events only
    assert record_event(record) == event


def test_frames_round_trip_with_their_receive_time_in_nanoseconds() -> None:
    batch = TickBatch("k1", 2, FRAMES[0], 5.0, 1764567890.123456)
    record = event_record(batch)
    assert record == Record(KIND_FRAME, "k1", 2, 1764567890123456000, FRAMES[0])
    back = record_event(record, 7.0)
    assert isinstance(back, TickBatch)
    assert (back.key, back.connection, back.frame, back.count) == ("k1", 2, FRAMES[0], batch.count)
    assert back.received_wall == pytest.approx(1764567890.123456, abs=1e-6)
    assert back.received_at == 7.0
    assert [t.as_dict() for t in back.ticks] == [t.as_dict() for t in batch.ticks]


def test_symbols_round_trip() -> None:
    names = {256265: "NSE:NIFTY 50", 5633: "NSE:ACC"}
    record = Record(KIND_SYMBOLS, "", None, 0, symbols_body(names))
    assert symbols_of(record) == names
    assert record_event(record) is None
