"""Columnar batches: every column of to_numpy and to_arrow equals Tick.as_dict()'s value for every
tick (NaN / -1 / NaT in numpy, null in Arrow, where a packet kind lacks the field), on frames of
every packet kind and segment, mixed or uniform, with skipped packets; exact values for the wire
fixtures; the same CodecError as the decoder on malformed frames."""

from __future__ import annotations

import math
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st
from processes import invoke, run_sync

from kitefan import CodecError, Tick, columnar, decode_packets
from kitefan.codec import LAYOUTS, encode_packet, frame_of_packets
from kitefan.columnar import (
    COMPILED,
    TAG_COLUMNS,
    TICK_COLUMNS,
    batches_to_arrow,
    batches_to_numpy,
    frames_to_arrow,
    frames_to_numpy,
)
from kitefan.events import TickBatch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
IST = timezone(timedelta(hours=5, minutes=30))
KOLKATA = "Asia/Kolkata"


def hex_fixture(name: str) -> bytes:
    return bytes.fromhex("".join((FIXTURES / name).read_text().split()))


FRAME_A = hex_fixture("frame_a.hex")
FRAME_B = hex_fixture("frame_b.hex")

INT_COLUMNS = {
    "last_traded_quantity",
    "volume_traded",
    "total_buy_quantity",
    "total_sell_quantity",
    "oi",
    "oi_day_high",
    "oi_day_low",
    *(
        f"{side}_{what}_{n}"
        for side in ("bid", "ask")
        for what in ("quantity", "orders")
        for n in range(1, 6)
    ),
}
TIME_COLUMNS = {"last_trade_time", "exchange_timestamp"}


def flat(tick: Tick) -> dict[str, Any]:
    """as_dict(), flattened into the table's columns; None where the packet lacks a field."""
    d = tick.as_dict()
    out: dict[str, Any] = dict.fromkeys(TICK_COLUMNS)
    out["kind"] = tick.kind
    for name, value in d.items():
        if name == "ohlc":
            out.update(value)
        elif name == "depth":
            for side, levels in (("bid", value["buy"]), ("ask", value["sell"])):
                for n, level in enumerate(levels, 1):
                    out[f"{side}_quantity_{n}"] = level["quantity"]
                    out[f"{side}_price_{n}"] = level["price"]
                    out[f"{side}_orders_{n}"] = level["orders"]
        else:
            out[name] = value
    assert set(out) == set(TICK_COLUMNS)
    return out


def numpy_value(column: str, value: Any) -> Any:
    """What the numpy column holds for as_dict()'s value (None: the field is absent)."""
    if column in TIME_COLUMNS:
        if value is None:
            return np.datetime64("NaT")
        return np.datetime64(int(value.timestamp()), "s")
    if column in INT_COLUMNS:
        return -1 if value is None else value
    if value is None:
        return math.nan
    return value


def assert_numpy_rows(columns: dict[str, Any], ticks: list[Tick]) -> None:
    assert list(columns)[-len(TICK_COLUMNS) :] == list(TICK_COLUMNS)
    for name, array in columns.items():
        assert array.shape == (len(ticks),), name
    for row, tick in enumerate(ticks):
        for name, want in flat(tick).items():
            got = columns[name][row]
            expected = numpy_value(name, want)
            if isinstance(expected, float) and math.isnan(expected):
                assert math.isnan(got), (name, row, got)
            elif isinstance(expected, np.datetime64) and np.isnat(expected):
                assert np.isnat(got), (name, row, got)
            else:
                assert got == expected, (name, row, got, expected)
                if isinstance(expected, float):
                    assert float(got) == expected  # exactly, not approximately


def assert_arrow_rows(table: pa.Table, ticks: list[Tick]) -> None:
    rows = table.to_pylist()
    assert len(rows) == len(ticks)
    for got, tick in zip(rows, ticks, strict=True):
        want = flat(tick)
        assert {k: got[k] for k in TICK_COLUMNS} == want
        for name in TIME_COLUMNS:
            if got[name] is not None:
                assert str(got[name].tzinfo) == KOLKATA


# Frames of every kind and segment --------------------------------------------------------------

EXTREMES = st.sampled_from([0, 1, 2**31, 2**32 - 1])
U32 = st.one_of(EXTREMES, st.integers(0, 2**32 - 1))
I32 = st.one_of(st.sampled_from([-(2**31), -1, 0, 2**31 - 1]), st.integers(-(2**31), 2**31 - 1))
U16 = st.one_of(st.sampled_from([0, 2**16 - 1]), st.integers(0, 2**16 - 1))
# Every segment with a divisor of its own, the indices, and ones kitefan does not name.
SEGMENTS = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 255])
TOKENS = st.builds(
    lambda exchange, segment: exchange << 8 | segment, st.integers(0, 2**24 - 1), SEGMENTS
)
TIMESTAMPS = st.one_of(st.sampled_from([0, 2**32 - 1]), st.integers(0, 2**32 - 1))

LTP_TICKS = st.builds(Tick.ltp, TOKENS, U32)
INDEX_TICKS = st.builds(
    lambda token, prices, change, ts: Tick.index(
        token,
        last_price=prices[0],
        high=prices[1],
        low=prices[2],
        open=prices[3],
        close=prices[4],
        change=change,
        exchange_timestamp=ts,
    ),
    TOKENS,
    st.tuples(U32, U32, U32, U32, U32),
    I32,
    st.none() | TIMESTAMPS,
)
QUOTE_TICKS = st.builds(
    lambda token, rest: Tick(44, (token, *rest)), TOKENS, st.tuples(*[U32] * 10)
)
FULL_TICKS = st.builds(
    lambda quote, times, ois, depth: Tick.full(
        quote,
        last_trade_time=times[0],
        oi=ois[0],
        oi_day_high=ois[1],
        oi_day_low=ois[2],
        exchange_timestamp=times[1],
        depth=depth,
    ),
    QUOTE_TICKS,
    st.tuples(TIMESTAMPS, TIMESTAMPS),
    st.tuples(U32, U32, U32),
    st.lists(st.tuples(U32, U32, U16), min_size=10, max_size=10),
)
TICKS = st.one_of(LTP_TICKS, INDEX_TICKS, QUOTE_TICKS, FULL_TICKS)
UNKNOWN = (
    st.integers(0, 200)
    .filter(lambda n: n not in LAYOUTS)
    .flatmap(lambda n: st.binary(min_size=n, max_size=n))
)
# A frame: ticks of any kinds, some packets of lengths no layout has; or one kind only (the
# uniform frames of a connection in one mode); or a heartbeat or an empty frame.
MIXED_FRAMES = st.lists(st.one_of(TICKS, TICKS, TICKS, UNKNOWN), max_size=12).map(
    lambda items: frame_of_packets([encode_packet(i) if isinstance(i, Tick) else i for i in items])
)
UNIFORM_FRAMES = (
    st.one_of(LTP_TICKS, INDEX_TICKS, QUOTE_TICKS, FULL_TICKS)
    .flatmap(lambda first: st.lists(st.just(first), min_size=1, max_size=6))
    .map(lambda ticks: frame_of_packets([encode_packet(t) for t in ticks]))
)
FRAMES = st.one_of(MIXED_FRAMES, UNIFORM_FRAMES, st.sampled_from([b"", b"\x00", b"\x00\x00"]))


def ticks_of(frames: list[bytes]) -> list[Tick]:
    return [tick for frame in frames for tick in decode_packets(frame)[0]]


@settings(max_examples=150, deadline=None)
@given(FRAMES)
def test_to_numpy_of_one_frame_equals_as_dict(frame: bytes) -> None:
    assert_numpy_rows(frames_to_numpy(frame), ticks_of([frame]))


@settings(max_examples=150, deadline=None)
@given(FRAMES)
def test_to_arrow_of_one_frame_equals_as_dict(frame: bytes) -> None:
    assert_arrow_rows(frames_to_arrow(frame), ticks_of([frame]))


@settings(max_examples=100, deadline=None)
@given(st.lists(FRAMES, max_size=6))
def test_many_frames_give_one_table_in_frame_order(frames: list[bytes]) -> None:
    ticks = ticks_of(frames)
    assert_numpy_rows(frames_to_numpy(frames), ticks)
    assert_arrow_rows(frames_to_arrow(frames), ticks)


@settings(max_examples=50, deadline=None)
@given(st.lists(UNIFORM_FRAMES, min_size=2, max_size=5), st.integers(1, 3))
def test_runs_of_uniform_frames_of_one_kind(frames: list[bytes], repeat: int) -> None:
    # Consecutive uniform frames of the same length, the fast path, in bulk.
    frames = [f for f in frames for _ in range(repeat)]
    ticks = ticks_of(frames)
    assert_numpy_rows(frames_to_numpy(frames), ticks)
    assert_arrow_rows(frames_to_arrow(frames), ticks)


def without_compiled_copy(convert: Any, frames: Any) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(columnar, "_compiled", None)
        return convert(frames)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(FRAMES, UNIFORM_FRAMES), max_size=6))
def test_the_compiled_copy_and_the_numpy_copy_give_the_same_columns(frames: list[bytes]) -> None:
    compiled = frames_to_numpy(frames)
    fallback = without_compiled_copy(frames_to_numpy, frames)
    assert list(compiled) == list(fallback)
    for name, values in compiled.items():
        assert values.dtype == fallback[name].dtype, name
        np.testing.assert_array_equal(values, fallback[name], strict=True)
    assert frames_to_arrow(frames).equals(without_compiled_copy(frames_to_arrow, frames))
    assert_numpy_rows(fallback, ticks_of(frames))


def test_the_compiled_copy_is_built() -> None:
    # The supported installs compile kitefan/_records.c; without it numpy copies the words.
    assert COMPILED


def test_the_compiled_copy_puts_each_word_where_its_plan_says_and_no_further() -> None:
    from kitefan import _records

    divisors = np.full(256, 100.0)
    divisors[3] = 1e7
    words = np.zeros((3, 3), dtype=np.uint32)
    prices = np.zeros((1, 3), dtype=np.float64)
    orders = np.zeros((1, 3), dtype=np.uint16)
    plan = bytes([0, 1, 0xFF])  # word 0 to words, word 1 to prices row 0, word 2 to orders row 0
    # two packets of 3 words, 14 bytes apart, the first at 2; segments 1 and 3
    source = bytes(2) + bytes.fromhex("00000101 00000457 00070000") + bytes(2)
    source += bytes.fromhex("00000203 00bc614e ffff1234") + bytes(2)
    args = (words, prices, orders, 3, 1, source, 2, 2, 14, plan, divisors)
    _records.fields(*args)
    assert words[0].tolist() == [0, 0x101, 0x203]
    assert words[1:].tolist() == [[0, 0, 0], [0, 0, 0]]  # sent elsewhere: left as they were
    assert prices.tolist() == [[0.0, 1111 / 100, 12345678 / 1e7]]
    assert orders.tolist() == [[0, 7, 0xFFFF]]
    errors = [
        ((words, prices, orders, 3, 1, source, 5, 2, 14, plan, divisors), "the packets run past"),
        ((words, prices, orders, 3, 2, source, 2, 2, 14, plan, divisors), "out of range"),
        ((words, prices, orders, 3, 0, source, 2, 2, 11, plan, divisors), "out of range"),
        (
            (words, prices, orders, 3, 0, source, 2, 1, 14, bytes([0, 2, 0]), divisors),
            "names a row",
        ),
        (
            (words, prices, orders, 3, 0, source, 2, 1, 14, bytes([0, 0xFE, 0]), divisors),
            "names a row",
        ),
        ((words, prices, orders, 3, 0, source, 2, 1, 14, plan, divisors[:8]), "do not match"),
        ((words, prices, orders, 2, 0, source, 2, 1, 14, plan, divisors), "do not match"),
    ]
    for call, message in errors:
        with pytest.raises(ValueError, match=f"^fields: .*{message}"):
            _records.fields(*call)
    with pytest.raises(TypeError):
        _records.fields(source, prices, orders, 3, 0, source, 2, 1, 14, plan, divisors)


def test_a_large_uniform_frame_is_copied_in_blocks_without_losing_a_packet() -> None:
    # More packets than one transposing copy takes (512), one segment and then two.
    ticks = [
        Tick.full(
            Tick.quote(
                i << 8 | (1 if i < 700 else 3),
                last_price=100_000 + i,
                last_traded_quantity=i,
                average_traded_price=2 * i,
                volume_traded=3 * i,
                total_buy_quantity=4 * i,
                total_sell_quantity=5 * i,
                open=6 * i,
                high=7 * i,
                low=8 * i,
                close=i,
            ),
            last_trade_time=1_700_000_000 + i,
            oi=i,
            oi_day_high=i + 1,
            oi_day_low=i + 2,
            exchange_timestamp=1_700_000_001 + i,
            depth=[(i + level, 100 * i + level, level) for level in range(10)],
        )
        for i in range(1300)
    ]
    frame = frame_of_packets([encode_packet(t) for t in ticks])
    columns = frames_to_numpy(frame)
    assert columns["instrument_token"].tolist() == [t.instrument_token for t in ticks]
    assert columns["ask_orders_5"].tolist() == [9] * 1300
    assert columns["last_price"][699] == 100_699 / 100
    assert columns["last_price"][700] == 100_700 / 10_000_000
    assert_numpy_rows(columns, ticks)
    assert_arrow_rows(frames_to_arrow([frame, FRAME_B, frame]), ticks + ticks_of([FRAME_B]) + ticks)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_malformed_bytes_raise_what_the_decoder_raises(data: bytes) -> None:
    try:
        ticks, _ = decode_packets(data)
    except CodecError as exc:
        with pytest.raises(CodecError) as info:
            frames_to_numpy([FRAME_A, data])
        assert (info.value.offset, str(info.value)) == (exc.offset, str(exc))
    else:
        assert_numpy_rows(frames_to_numpy(data), ticks)


@pytest.mark.parametrize(
    ("data", "offset", "message"),
    [
        (FRAME_A[:-1], 190, "packet 2 of 2 is 8 bytes but only 7 remain"),
        (FRAME_A + b"\x00", 198, "1 bytes follow the 2 packets"),
        (b"\x00\x02\x00\x08" + bytes(8), 12, "frame ends before the length of packet 2 of 2"),
        (b"\x00\x00\x00", 2, "1 bytes follow the 0 packets"),
    ],
)
def test_a_malformed_frame_raises_codec_error_with_its_offset(
    data: bytes, offset: int, message: str
) -> None:
    with pytest.raises(CodecError, match=message) as info:
        frames_to_arrow(data)
    assert info.value.offset == offset


# The fixtures, value by value ------------------------------------------------------------------


def at(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=IST)


def test_fixture_frames_give_their_documented_values() -> None:
    table = frames_to_arrow([FRAME_A, FRAME_B])
    rows = table.to_pylist()
    assert [r["instrument_token"] for r in rows] == [408065, 268803, 265, 256265, 268806]
    assert [r["mode"] for r in rows] == ["full", "ltp", "quote", "full", "ltp"]
    assert [r["kind"] for r in rows] == [184, 8, 28, 32, 8]
    assert [r["tradable"] for r in rows] == [True, True, False, False, True]
    assert [r["last_price"] for r in rows] == [1512.35, 83.2475, 65123.45, 19675.45, 83.2475]
    assert [r["close"] for r in rows] == [1495.5, None, 65243.95, 19640.3, None]
    assert [r["change"] for r in rows] == [
        1.126713473754591,
        None,
        -0.18469145415015492,
        0.17896875302312826,
        None,
    ]
    assert [r["exchange_timestamp"] for r in rows] == [
        at(1700023531),
        None,
        None,
        at(1700023531),
        None,
    ]
    full = rows[0]
    assert {k: full[k] for k in list(TICK_COLUMNS)[5:19]} == {
        "last_traded_quantity": 25,
        "average_traded_price": 1508.72,
        "volume_traded": 4821377,
        "total_buy_quantity": 312450,
        "total_sell_quantity": 298760,
        "open": 1500.0,
        "high": 1519.9,
        "low": 1497.05,
        "close": 1495.5,
        "change": 1.126713473754591,
        "last_trade_time": at(1700023530),
        "oi": 1000000,
        "oi_day_high": 1050000,
        "oi_day_low": 980000,
    }
    assert [full[f"bid_price_{n}"] for n in range(1, 6)] == [
        1512.3,
        1512.25,
        1512.2,
        1512.15,
        1512.1,
    ]
    assert [full[f"ask_quantity_{n}"] for n in range(1, 6)] == [50, 200, 80, 65, 900]
    assert [full[f"ask_orders_{n}"] for n in range(1, 6)] == [1, 4, 2, 3, 9]
    assert rows[2]["high"] == 65300.0
    assert rows[2]["low"] == 64980.1
    assert rows[2]["open"] == 65250.0
    assert rows[4]["oi"] is None
    assert rows[4]["bid_orders_1"] is None

    columns = frames_to_numpy([FRAME_A, FRAME_B])
    assert columns["exchange_timestamp"].tolist() == [
        datetime(2023, 11, 15, 4, 45, 31),  # UTC: numpy has no zone
        None,
        None,
        datetime(2023, 11, 15, 4, 45, 31),
        None,
    ]
    assert columns["oi"].tolist() == [1000000, -1, -1, -1, -1]
    assert columns["mode"].tolist() == ["full", "ltp", "quote", "full", "ltp"]


def test_the_schema_is_fixed_whatever_the_frames_hold() -> None:
    empty = frames_to_arrow([])
    full = frames_to_arrow(
        [FRAME_A, FRAME_B],
        key="alpha",
        connection=2,
        received_at=1.5,
        received_wall=1_700_000_000.25,
    )
    assert empty.num_rows == 0
    assert empty.schema.names == list(TICK_COLUMNS)
    assert full.schema.names == [*TAG_COLUMNS, *TICK_COLUMNS]
    assert full.schema.remove(0).remove(0).remove(0).remove(0) == empty.schema
    types = {f.name: str(f.type) for f in full.schema}
    assert types["key"] == "dictionary<values=string, indices=int32, ordered=0>"
    assert types["connection"] == "uint8"
    assert types["received_at"] == "double"
    assert types["received_wall"] == "timestamp[us, tz=Asia/Kolkata]"
    assert types["mode"] == "dictionary<values=string, indices=int8, ordered=0>"
    assert types["kind"] == "uint8"
    assert types["tradable"] == "bool"
    assert types["instrument_token"] == "uint32"
    assert types["exchange_timestamp"] == "timestamp[s, tz=Asia/Kolkata]"
    assert types["last_trade_time"] == "timestamp[s, tz=Asia/Kolkata]"
    assert types["bid_orders_3"] == "uint16"
    assert {types[c] for c in INT_COLUMNS if "orders" not in c} == {"uint32"}
    floats = (
        set(TICK_COLUMNS)
        - INT_COLUMNS
        - TIME_COLUMNS
        - {"tradable", "mode", "kind", "instrument_token"}
    )
    assert {types[c] for c in floats} == {"double"}
    numpy_types = {k: str(v.dtype) for k, v in frames_to_numpy([]).items()}
    assert numpy_types["exchange_timestamp"] == "datetime64[s]"
    assert numpy_types["oi"] == "int64"
    assert numpy_types["bid_orders_1"] == "int64"
    assert numpy_types["instrument_token"] == "uint32"
    assert numpy_types["last_price"] == "float64"
    assert numpy_types["tradable"] == "bool"


# Tags and batches -------------------------------------------------------------------------------


def test_tags_are_repeated_for_each_tick_of_their_frame() -> None:
    columns = frames_to_numpy(
        [FRAME_A, b"\x00", FRAME_B],
        key=["alpha", "bravo", "charlie"],
        connection=[0, 1, 2],
        received_at=[10.0, 11.0, 12.0],
        received_wall=[1_700_000_000.0, 1_700_000_001.0, 1_700_000_002.123456],
    )
    assert list(columns)[:4] == list(TAG_COLUMNS)
    assert columns["key"].tolist() == ["alpha", "alpha", "charlie", "charlie", "charlie"]
    assert columns["connection"].tolist() == [0, 0, 2, 2, 2]
    assert columns["received_at"].tolist() == [10.0, 10.0, 12.0, 12.0, 12.0]
    assert columns["received_wall"][2] == np.datetime64(1_700_000_002_123_456, "us")
    one = frames_to_numpy(FRAME_B, key="alpha")
    assert list(one)[:1] == ["key"]
    assert one["key"].tolist() == ["alpha"] * 3
    assert "connection" not in one


def test_a_tag_sequence_must_have_one_value_per_frame() -> None:
    with pytest.raises(ValueError, match=r"^key has 1 values for 2 frames; give one per frame$"):
        frames_to_arrow([FRAME_A, FRAME_B], key=["alpha"])


def test_tick_batch_to_numpy_and_to_arrow_read_its_frame_with_its_tags() -> None:
    batch = TickBatch("alpha", 1, FRAME_A, 123.5, 1_700_000_000.5)
    columns = batch.to_numpy()
    assert columns["key"].tolist() == ["alpha", "alpha"]
    assert columns["connection"].tolist() == [1, 1]
    assert columns["received_at"].tolist() == [123.5, 123.5]
    assert columns["received_wall"].tolist() == [datetime(2023, 11, 14, 22, 13, 20, 500000)] * 2
    assert_numpy_rows(columns, batch.ticks)
    table = batch.to_arrow()
    rows = table.to_pylist()
    assert [r["key"] for r in rows] == ["alpha", "alpha"]
    assert rows[0]["received_wall"] == datetime(2023, 11, 15, 3, 43, 20, 500000, tzinfo=IST)
    assert_arrow_rows(table, batch.ticks)
    # The columns come from the bytes: a batch converted, and never asked for its ticks, has
    # not decoded them.
    batch = TickBatch("alpha", 1, FRAME_A, 0.0, 0.0)
    batch.to_arrow()
    batch.to_numpy()
    assert not batch.decoded


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["alpha", "bravo"]), st.integers(0, 2), FRAMES), max_size=6)
)
def test_many_batches_give_one_table(items: list[tuple[str, int, bytes]]) -> None:
    batches = [
        TickBatch(key, conn, frame, float(i), 1_700_000_000.0 + i)
        for i, (key, conn, frame) in enumerate(items)
    ]
    ticks = [t for b in batches for t in b.ticks]
    columns = batches_to_numpy(batches)
    table = batches_to_arrow(batches)
    assert_numpy_rows(columns, ticks)
    assert_arrow_rows(table, ticks)
    keys = [b.key for b in batches for _ in b.ticks]
    conns = [b.connection for b in batches for _ in b.ticks]
    assert columns["key"].tolist() == keys
    assert table.column("key").to_pylist() == keys
    assert columns["connection"].tolist() == conns
    assert table.column("connection").to_pylist() == conns
    assert table.column("received_at").to_pylist() == [
        b.received_at for b in batches for _ in b.ticks
    ]


def test_a_batch_of_ticks_not_off_a_socket_gives_the_same_table() -> None:
    ticks = decode_packets(FRAME_B)[0]
    made = TickBatch.of_ticks("alpha", 0, ticks)
    assert made.to_arrow().equals(TickBatch("alpha", 0, FRAME_B, 0.0, 0.0).to_arrow())


def test_importing_kitefan_does_not_import_numpy_or_pyarrow() -> None:
    code = (
        "import sys, kitefan, kitefan.events, kitefan.manager; "
        "print(sorted(m for m in ('numpy', 'pyarrow') if m in sys.modules))"
    )
    done = run_sync(sys.executable, "-c", code)
    assert (done.returncode, done.stdout) == (0, "[]\n")


def test_the_columnar_benchmark_reports_every_way_with_the_target_on_arrow() -> None:
    from kitefan.bench.columnar import run_columnar_benchmark

    lines: list[str] = []
    result = run_columnar_benchmark(rounds=1, min_s=0.001, progress=lines.append, frames=20)
    assert result.ticks == {"full": 2_000, "mixed": 2_000}
    figures = result.figures()
    assert [f.name for f in figures] == [
        "to Arrow, full mode",
        "to Arrow, CPU time, full mode",
        "to numpy, full mode",
        "decode + as_dict(), full mode",
        "to Arrow per batch, full mode",
        "to Arrow / decode + as_dict(), full mode",
        "to Arrow, mixed",
        "to numpy, mixed",
        "decode + as_dict(), mixed",
        "to Arrow / decode + as_dict(), mixed",
    ]
    assert [f.target for f in figures] == [">= 5M", "", "", "", "", "", "", "", "", ""]
    rates = result.rates
    assert figures[5].value == rates["to Arrow, full"] / rates["decode + as_dict(), full"]
    assert figures[1].value == rates["to Arrow, CPU time, full"] > 0
    assert figures[0].ok == (figures[0].value is not None and figures[0].value >= 5_000_000)
    assert all(f.benchmark == "columnar" and f.samples == 1 for f in figures)
    assert [f.unit for f in figures] == ["ticks/s"] * 5 + ["x"] + ["ticks/s"] * 3 + ["x"]
    assert len(lines) == 1
    assert lines[0].startswith("columnar round 1/1: to Arrow, full ")


def test_bytearray_and_memoryview_frames_read_like_bytes() -> None:
    want = frames_to_arrow([FRAME_A, FRAME_B])
    assert frames_to_arrow([bytearray(FRAME_A), memoryview(FRAME_B)]).equals(want)
    assert frames_to_arrow(memoryview(FRAME_A)).equals(frames_to_arrow(FRAME_A))


def test_a_table_round_trips_through_parquet(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    batches = [
        TickBatch("alpha", 0, FRAME_A, 1.0, 1_700_000_000.5),
        TickBatch("bravo", 2, FRAME_B, 2.0, 1_700_000_001.0),
    ]
    table = batches_to_arrow(batches)
    pq.write_table(table, tmp_path / "ticks.parquet")
    back = pq.read_table(tmp_path / "ticks.parquet")
    assert back.to_pylist() == table.to_pylist()
    # Parquet has no unit of seconds: the same instants come back in milliseconds.
    assert str(back.schema.field("exchange_timestamp").type) == "timestamp[ms, tz=Asia/Kolkata]"


def test_kitefan_bench_columnar_prints_its_figures_as_json() -> None:
    import json

    result = invoke("bench", "columnar", "--rounds", "1", "--seconds", "0.01", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["command"] == "kitefan bench columnar --rounds 1 --seconds 0.01"
    assert {f["benchmark"] for f in report["figures"]} == {"columnar"}
    assert report["figures"][0]["name"] == "to Arrow, full mode"
    assert report["figures"][0]["target"] == ">= 5M"
    assert report["details"]["columnar"]["ticks"] == {"full": 40_000, "mixed": 40_000}
    assert "columnar round 1/1" in result.stderr


def test_a_zero_close_gives_a_zero_change_and_extreme_words_read_exactly() -> None:
    top = 2**32 - 1
    quote = Tick.quote(
        0xFFFF_FF03,  # the largest CDS token (segment 3: price divisor 1e7)
        last_price=top,
        last_traded_quantity=top,
        average_traded_price=top,
        volume_traded=top,
        total_buy_quantity=0,
        total_sell_quantity=top,
        open=top,
        high=top,
        low=0,
        close=0,
    )
    index = Tick.index(
        256265, last_price=1, high=2, low=3, open=4, close=0, change=-(2**31), exchange_timestamp=0
    )
    frame = frame_of_packets([encode_packet(quote), encode_packet(index)])
    columns = frames_to_numpy(frame)
    assert columns["change"].tolist() == [0.0, 0.0]
    assert columns["last_price"].tolist() == [top / 10_000_000, 0.01]
    assert columns["volume_traded"].tolist() == [top, -1]
    assert columns["exchange_timestamp"].tolist() == [None, datetime(1970, 1, 1)]
    rows = frames_to_arrow(frame).to_pylist()
    assert [r["change"] for r in rows] == [0.0, 0.0]
    assert [r["total_buy_quantity"] for r in rows] == [0, None]
    assert rows[1]["exchange_timestamp"] == datetime(1970, 1, 1, 5, 30, tzinfo=IST)
