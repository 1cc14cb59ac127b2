"""Tick records written from the frame bytes are exactly the reference's, byte for byte.

The reference (``reference_json_lines``, ``reference_csv_rows``) builds ``Tick.as_dict()``-based
records and hands them to the standard library's ``json`` and ``csv``: it is what ``json_lines``
and ``csv_rows`` wrote before the compiled encoder. Frames of every packet kind and segment, with
extreme values, and names and keys that need escaping or quoting, must give the same text.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from kitefan.codec import encode_frame, frame_of_packets
from kitefan.errors import CodecError
from kitefan.events import ErrorEvent, Event, Status, StatusEvent, TickBatch
from kitefan.models import Tick
from kitefan.render.records import (
    COMPILED,
    CSV_COLUMNS,
    csv_rows,
    encode_csv,
    encode_jsonl,
    json_lines,
    record_pieces,
    reference_csv_rows,
    reference_json_lines,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FRAME_A = bytes.fromhex("".join((FIXTURES / "frame_a.hex").read_text().split()))
FRAME_B = bytes.fromhex("".join((FIXTURES / "frame_b.hex").read_text().split()))
AT = 1700023532.25  # 2023-11-15 10:15:32.250 IST
NAMES = {
    408065: "NSE:INFY",
    268803: "CDS:USDINR26DECFUT",
    265: "BSE:SENSEX",
    256265: "NSE:NIFTY 50",
    268806: "BCD:EURINR",
}

# Every segment kitefan knows (9 is the indices), and two it does not (divisor 100).
SEGMENTS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 0, 200]
U32_EDGES = [0, 1, 99, 100, 999, 1000, 9_999_999, 10_000_000, 2**31, 2**32 - 1]


def name_of(token: int) -> str:
    return NAMES.get(token, str(token))


def u32() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(U32_EDGES), st.integers(0, 2**32 - 1))


@st.composite
def ticks(draw: st.DrawFn) -> Tick:
    token = draw(st.integers(0, 2**24 - 1)) << 8 | draw(st.sampled_from(SEGMENTS))
    kind = draw(st.sampled_from([8, 28, 32, 44, 184]))
    if kind == 8:
        return Tick(8, (token, draw(u32())))
    if kind in (28, 32):
        values = [token, *(draw(u32()) for _ in range(5)), draw(st.integers(-(2**31), 2**31 - 1))]
        if kind == 32:
            values.append(draw(u32()))
        return Tick(kind, tuple(values))
    values = [token, *(draw(u32()) for _ in range(10))]
    if kind == 184:
        values += [draw(u32()) for _ in range(5)]
        for _ in range(10):
            values += [draw(u32()), draw(u32()), draw(st.integers(0, 0xFFFF))]
    return Tick(kind, tuple(values))


# Names with what JSON escapes (quotes, backslashes, control characters), what CSV quotes
# (commas, quotes, CR, LF) and what neither touches (non-ASCII, DEL), but no lone surrogates.
NAME_TEXT = st.text(
    st.one_of(
        st.sampled_from('",\\\r\n\t\b\f\x00\x1f\x7f é₹😀'),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=12,
)


@st.composite
def batches(draw: st.DrawFn) -> tuple[TickBatch, dict[int, str]]:
    frame_ticks = draw(st.lists(ticks(), max_size=6))
    names = {tick.values[0]: draw(NAME_TEXT) for tick in frame_ticks}
    key = draw(st.one_of(st.sampled_from(["alpha", 'q"uo,te\\']), NAME_TEXT))
    connection = draw(st.integers(0, 2))
    wall = draw(st.floats(0, 4_000_000_000, allow_nan=False))
    return TickBatch(key, connection, encode_frame(frame_ticks), 0.0, wall), names


@settings(max_examples=300, deadline=None)
@given(st.lists(batches(), min_size=1, max_size=3))
def test_fast_records_are_the_reference_byte_for_byte(
    drawn: list[tuple[TickBatch, dict[int, str]]],
) -> None:
    names: dict[int, str] = {}
    for _, more in drawn:
        names.update(more)
    events = [b for b, _ in drawn]

    def lookup(token: int) -> str:
        return names[token]

    assert json_lines(events, lookup) == reference_json_lines(events, lookup)
    assert csv_rows(events, lookup) == reference_csv_rows(events, lookup)
    assert encode_jsonl(events, lookup) == reference_json_lines(events, lookup).encode()
    assert encode_csv(events, lookup) == reference_csv_rows(events, lookup).encode()
    # The names as a dict, looked up in C: the same bytes; a token the dict lacks is named by
    # its number, as the feed's name_of names it.
    assert encode_jsonl(events, names) == encode_jsonl(events, lookup)
    assert encode_csv(events, names) == encode_csv(events, lookup)
    fewer = dict(list(names.items())[: len(names) // 2])

    def by_number(token: int) -> str:
        return fewer.get(token, str(token))

    assert encode_jsonl(events, fewer) == reference_json_lines(events, by_number).encode()
    assert encode_csv(events, fewer) == reference_csv_rows(events, by_number).encode()


def test_names_in_a_dict_are_what_feed_name_of_gives() -> None:
    batch = TickBatch.of_ticks("k", 1, [Tick.ltp(408065 << 8 | 1, 150000), Tick.ltp(7, 1)])
    names = {408065 << 8 | 1: "NSE:INFY"}
    lines = [json.loads(line) for line in encode_jsonl([batch], names).decode().splitlines()]
    assert [line["symbol"] for line in lines] == ["NSE:INFY", "7"]
    rows = encode_csv([batch], names).decode().splitlines()
    assert [row.split(",")[3] for row in rows] == ["NSE:INFY", "7"]


def test_the_compiled_encoder_is_built() -> None:
    # The supported installs (pip install -e . / pip install .) compile kitefan/_records.c;
    # without it the records are right but about twenty times slower.
    assert COMPILED


def test_writing_records_does_not_decode_the_batch() -> None:
    batch = TickBatch("alpha", 2, FRAME_A, 0.0, AT)
    json_lines([batch], name_of)
    csv_rows([batch], name_of)
    assert not batch.decoded


# The fixtures' exact records (values in docs/protocol.md §10 and tests/test_codec.py).

FRAME_A_JSON = (
    '{"type":"tick","key":"alpha","connection":2,"symbol":"NSE:INFY","tradable":true,'
    '"mode":"full","instrument_token":408065,"last_price":1512.35,"last_traded_quantity":25,'
    '"average_traded_price":1508.72,"volume_traded":4821377,"total_buy_quantity":312450,'
    '"total_sell_quantity":298760,"ohlc":{"open":1500.0,"high":1519.9,"low":1497.05,'
    '"close":1495.5},"change":1.126713473754591,"last_trade_time":"2023-11-15T10:15:30+05:30",'
    '"oi":1000000,"oi_day_high":1050000,"oi_day_low":980000,'
    '"exchange_timestamp":"2023-11-15T10:15:31+05:30","depth":{"buy":['
    '{"quantity":120,"price":1512.3,"orders":3},{"quantity":75,"price":1512.25,"orders":2},'
    '{"quantity":300,"price":1512.2,"orders":5},{"quantity":10,"price":1512.15,"orders":1},'
    '{"quantity":1000,"price":1512.1,"orders":12}],"sell":['
    '{"quantity":50,"price":1512.35,"orders":1},{"quantity":200,"price":1512.4,"orders":4},'
    '{"quantity":80,"price":1512.45,"orders":2},{"quantity":65,"price":1512.5,"orders":3},'
    '{"quantity":900,"price":1512.55,"orders":9}]}}\n'
    '{"type":"tick","key":"alpha","connection":2,"symbol":"CDS:USDINR26DECFUT",'
    '"tradable":true,"mode":"ltp","instrument_token":268803,"last_price":83.2475}\n'
)

FRAME_A_CSV = (
    "2023-11-15T10:15:32.250+05:30,alpha,2,NSE:INFY,408065,full,True,1512.35,25,1508.72,"
    "4821377,312450,298760,1500.0,1519.9,1497.05,1495.5,1.126713473754591,"
    "2023-11-15T10:15:30+05:30,1000000,1050000,980000,2023-11-15T10:15:31+05:30,"
    "1512.3,120,1512.35,50\r\n"
    "2023-11-15T10:15:32.250+05:30,alpha,2,CDS:USDINR26DECFUT,268803,ltp,True,83.2475"
    ",,,,,,,,,,,,,,,,,,,\r\n"
)


def test_frame_a_exact_lines_and_rows() -> None:
    batch = TickBatch("alpha", 2, FRAME_A, 0.0, AT)
    assert json_lines([batch], name_of) == FRAME_A_JSON
    assert csv_rows([batch], name_of) == FRAME_A_CSV
    assert encode_jsonl([batch], name_of) == FRAME_A_JSON.encode()
    assert encode_csv([batch], name_of) == FRAME_A_CSV.encode()
    assert [len(row.split(",")) for row in FRAME_A_CSV.splitlines()] == [len(CSV_COLUMNS)] * 2


FRAME_B_JSON = (
    '{"type":"tick","key":"bravo","connection":0,"symbol":"BSE:SENSEX","tradable":false,'
    '"mode":"quote","instrument_token":265,"last_price":65123.45,"ohlc":{"high":65300.0,'
    '"low":64980.1,"open":65250.0,"close":65243.95},"change":-0.18469145415015492}\n'
    '{"type":"tick","key":"bravo","connection":0,"symbol":"NSE:NIFTY 50","tradable":false,'
    '"mode":"full","instrument_token":256265,"last_price":19675.45,"ohlc":{"high":19700.1,'
    '"low":19600.85,"open":19650.0,"close":19640.3},"change":0.17896875302312826,'
    '"exchange_timestamp":"2023-11-15T10:15:31+05:30"}\n'
    '{"type":"tick","key":"bravo","connection":0,"symbol":"BCD:EURINR","tradable":true,'
    '"mode":"ltp","instrument_token":268806,"last_price":83.2475}\n'
)

FRAME_B_CSV = (
    "2023-11-15T10:15:32.250+05:30,bravo,0,BSE:SENSEX,265,quote,False,65123.45,,,,,,"
    "65250.0,65300.0,64980.1,65243.95,-0.18469145415015492,,,,,,,,,\r\n"
    "2023-11-15T10:15:32.250+05:30,bravo,0,NSE:NIFTY 50,256265,full,False,19675.45,,,,,,"
    "19650.0,19700.1,19600.85,19640.3,0.17896875302312826,,,,,2023-11-15T10:15:31+05:30,"
    ",,,\r\n"
    "2023-11-15T10:15:32.250+05:30,bravo,0,BCD:EURINR,268806,ltp,True,83.2475"
    ",,,,,,,,,,,,,,,,,,,\r\n"
)


def test_frame_b_exact_lines_and_rows() -> None:
    batch = TickBatch("bravo", 0, FRAME_B, 0.0, AT)
    assert json_lines([batch], name_of) == FRAME_B_JSON
    assert csv_rows([batch], name_of) == FRAME_B_CSV
    assert [len(row.split(",")) for row in FRAME_B_CSV.splitlines()] == [len(CSV_COLUMNS)] * 3


def test_zero_close_gives_the_int_zero_change() -> None:
    frame = encode_frame(
        [
            Tick(28, (265, 123456, 0, 0, 0, 0, -5)),
            Tick(44, (408065, 150000, 1, 2, 3, 4, 5, 6, 7, 8, 0)),
        ]
    )
    batch = TickBatch("a", 0, frame, 0.0, AT)
    records = [json.loads(line) for line in json_lines([batch], name_of).splitlines()]
    assert [r["change"] for r in records] == [0, 0]
    assert all(type(r["change"]) is int for r in records)
    assert json_lines([batch], name_of) == reference_json_lines([batch], name_of)
    rows = csv_rows([batch], name_of).splitlines()
    assert [row.split(",")[17] for row in rows] == ["0", "0"]


def test_tiny_cds_prices_take_the_exponent_form_repr_gives() -> None:
    # CDS divides by 1e7: below 1000 units the price is under 1e-4, where repr switches form.
    frame = encode_frame([Tick(8, (268803, raw)) for raw in (0, 1, 12, 999, 1000, 2**32 - 1)])
    batch = TickBatch("a", 0, frame, 0.0, AT)
    prices = [
        line.rsplit('"last_price":', 1)[1].rstrip("}")
        for line in json_lines([batch], name_of).splitlines()
    ]
    assert prices == ["0.0", "1e-07", "1.2e-06", "9.99e-05", "0.0001", "429.4967295"]


def test_timestamps_at_both_ends_of_u32() -> None:
    frame = encode_frame([Tick(32, (256265, 1, 2, 3, 4, 5, 6, ts)) for ts in (0, 2**32 - 1)])
    batch = TickBatch("a", 0, frame, 0.0, AT)
    stamps = [
        json.loads(line)["exchange_timestamp"] for line in json_lines([batch], name_of).splitlines()
    ]
    assert stamps == ["1970-01-01T05:30:00+05:30", "2106-02-07T11:58:15+05:30"]
    assert csv_rows([batch], name_of) == reference_csv_rows([batch], name_of)


def test_packets_of_unknown_length_are_skipped_as_the_decoder_skips_them() -> None:
    ltp = Tick(8, (408065, 150000))
    frame = frame_of_packets([b"\x01" * 12, encode_frame([ltp])[4:], b""])
    batch = TickBatch("a", 0, frame, 0.0, AT)
    assert len(batch) == 1
    expected = (
        '{"type":"tick","key":"a","connection":0,"symbol":"NSE:INFY","tradable":true,'
        '"mode":"ltp","instrument_token":408065,"last_price":1500.0}\n'
    )
    assert json_lines([batch], name_of) == expected
    assert csv_rows([batch], name_of) == reference_csv_rows([batch], name_of)


def test_ticks_and_other_events_keep_their_order() -> None:
    events: list[Event] = [
        StatusEvent("alpha", 0, Status.CONNECTED, "connected", AT),
        TickBatch("alpha", 2, FRAME_A, 0.0, AT),
        ErrorEvent("alpha", 0, "Error parsing instrument tokens", AT),
        TickBatch("bravo", 1, FRAME_B, 0.0, AT),
    ]
    assert json_lines(events, name_of) == reference_json_lines(events, name_of)
    assert json_lines(iter(events), name_of) == reference_json_lines(events, name_of)
    assert csv_rows(iter(events), name_of) == reference_csv_rows(events, name_of)
    types = [json.loads(line)["type"] for line in json_lines(events, name_of).splitlines()]
    assert types == ["status", "tick", "tick", "error", "tick", "tick", "tick"]


def test_status_and_error_lines_are_the_reference_lines_whatever_their_text() -> None:
    # Non-tick lines are written by the same code on both paths, control characters and all.
    text = 'tokens "x\\y"\x1b[31m\x85\u202e\x7f é'
    events: list[Event] = [
        ErrorEvent("alpha", 0, text, AT),
        StatusEvent("alpha", 1, Status.RECONNECTING, text, AT),
        TickBatch("alpha", 2, FRAME_A, 0.0, AT),
    ]
    assert json_lines(events, name_of) == reference_json_lines(events, name_of)
    assert encode_jsonl(events, name_of) == reference_json_lines(events, name_of).encode()


def test_a_name_without_utf8_falls_back_to_the_reference_text() -> None:
    batch = TickBatch("a", 0, FRAME_A, 0.0, AT)

    def lone_surrogate(token: int) -> str:
        return "NSE:\ud800"

    assert json_lines([batch], lone_surrogate) == reference_json_lines([batch], lone_surrogate)
    assert csv_rows([batch], lone_surrogate) == reference_csv_rows([batch], lone_surrogate)
    with pytest.raises(UnicodeEncodeError):
        encode_jsonl([batch], lone_surrogate)
    with pytest.raises(UnicodeEncodeError):
        encode_csv([batch], lone_surrogate)


def test_a_name_that_is_not_a_str_is_written_as_the_reference_writes_it() -> None:
    batch = TickBatch("a", 0, FRAME_A, 0.0, AT)

    def number(token: int) -> str:
        return token  # type: ignore[return-value]  # a name that is not a str: the test

    assert json_lines([batch], number) == reference_json_lines([batch], number)
    assert '"symbol":408065,' in json_lines([batch], number)
    assert csv_rows([batch], number) == reference_csv_rows([batch], number)


def test_an_error_from_name_of_propagates() -> None:
    batch = TickBatch("a", 0, FRAME_A, 0.0, AT)

    def broken(token: int) -> str:
        raise LookupError(f"no name for {token}")

    with pytest.raises(LookupError, match="no name for 408065"):
        json_lines([batch], broken)
    with pytest.raises(LookupError, match="no name for 408065"):
        csv_rows([batch], broken)


def test_a_frame_the_decoder_refuses_raises_its_codec_error() -> None:
    # A batch is made from a checked frame; one that is not gets the decoder's exact error.
    batch = TickBatch("a", 0, FRAME_A[:-1], 0.0, AT, count=2)
    with pytest.raises(CodecError, match="packet 2 of 2 is 8 bytes but only 7 remain"):
        json_lines([batch], name_of)
    with pytest.raises(CodecError, match="packet 2 of 2 is 8 bytes but only 7 remain"):
        csv_rows([batch], name_of)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64),
        st.lists(st.sampled_from([8, 28, 32, 44, 184, 0, 3, 200]), max_size=4).flatmap(
            lambda lengths: st.binary(min_size=sum(lengths), max_size=sum(lengths)).map(
                lambda body: _reframe(lengths, body)
            )
        ),
    )
)
def test_any_bytes_give_the_reference_text_or_its_error(frame: bytes) -> None:
    # Whatever a frame holds, the encoder reads inside it and agrees with the decoder.
    batch = TickBatch("a", 0, frame, 0.0, AT, count=0)
    try:
        expected = reference_json_lines([batch], name_of), reference_csv_rows([batch], name_of)
    except CodecError as error:
        with pytest.raises(CodecError) as raised:
            json_lines([TickBatch("a", 0, frame, 0.0, AT, count=0)], name_of)
        assert str(raised.value) == str(error)
        return
    again = TickBatch("a", 0, frame, 0.0, AT, count=0)
    assert (json_lines([again], name_of), csv_rows([again], name_of)) == expected


def _reframe(lengths: list[int], body: bytes) -> bytes:
    """Packets of the given lengths cut from ``body``, framed, sometimes cut short at the end."""
    packets, at = [], 0
    for length in lengths:
        packets.append(body[at : at + length])
        at += length
    frame = frame_of_packets(packets)
    return frame[: len(frame) - (len(body) % 3 == 1)]


def test_heartbeat_and_empty_frames_write_nothing() -> None:
    events: list[Event] = [
        TickBatch("a", 0, b"\x00", 0.0, AT),
        TickBatch("a", 0, b"\x00\x00", 0.0, AT),
    ]
    assert json_lines(events, name_of) == ""
    assert csv_rows(events, name_of) == ""
    assert encode_jsonl(events, name_of) == b""


def test_record_pieces_are_each_events_bytes_with_the_ticks_it_holds() -> None:
    batch = TickBatch("alpha", 1, FRAME_A, 0.0, 1_700_023_531.0)
    status = StatusEvent("alpha", 1, Status.CONNECTED, "connected", 1_700_023_531.0)
    assert record_pieces([batch, status], str) == [
        (encode_jsonl([batch], str), 2),
        (encode_jsonl([status], str), 0),
    ]
    assert record_pieces([batch], str, csv=True) == [(encode_csv([batch], str), 2)]
    assert encode_jsonl([batch], str).count(b"\n") == 2


# The compiled encoder's own float repr (the change, and CDS prices under 1e-4): the shortest
# decimal that reads back, worked out in integers, with Python's dtoa for what it leaves.
FLOAT_EDGES = [
    0.0,
    -0.0,
    1.0,
    2.5,
    0.1,
    0.3,
    1 / 3,
    1e-4,
    9.999999999999999e-05,
    0.00010000000000000002,
    12.0,
    2.0**52 - 1,
    2.0**52,
    2.0**52 + 1,
    4503599627370495.5,
    1e15,
    1e16,
    2.0**-14,
    float.fromhex("0x1.0000000000000p-1"),
    float.fromhex("0x1.fffffffffffffp-1"),
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    float("inf"),
    float("-inf"),
]


@pytest.mark.skipif(not COMPILED, reason="the compiled encoder is not built here")
@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=False),
        st.floats(-1000, 1000),
        st.sampled_from(FLOAT_EDGES),
        # just below and above a power of two, where the gap below halves
        st.builds(
            lambda e, up, sign: sign * math.nextafter(2.0**e, math.inf if up else 0.0),
            st.integers(-20, 60),
            st.booleans(),
            st.sampled_from([1.0, -1.0]),
        ),
        # a change as Tick.as_dict computes it
        st.builds(
            lambda last, close, divisor: (
                (last / divisor - close / divisor) * 100 / (close / divisor)
            ),
            st.integers(0, 2**32 - 1),
            st.integers(1, 2**32 - 1),
            st.sampled_from([100.0, 10_000.0, 10_000_000.0]),
        ),
    )
)
def test_the_compiled_float_repr_is_repr(x: float) -> None:
    from kitefan import _records

    assert _records.float_repr(x) == repr(x)


def test_the_compiled_float_repr_of_the_edges() -> None:
    if not COMPILED:
        pytest.skip("the compiled encoder is not built here")
    from kitefan import _records

    assert [_records.float_repr(x) for x in FLOAT_EDGES] == [repr(x) for x in FLOAT_EDGES]


@settings(max_examples=50, deadline=None)
@given(st.lists(ticks(), min_size=1, max_size=12), st.lists(ticks(), min_size=1, max_size=12))
def test_big_frames_written_by_two_threads_at_once_are_the_reference(
    some: list[Tick], others: list[Tick]
) -> None:
    # Frames of 300 ticks and more are written with the GIL released (the names looked up
    # before), here in two worker threads at once; a CDS price under 1e-4 in the middle takes
    # the GIL back for Python's own repr, and gives it up again.
    first = some * (300 // len(some) + 1)
    second = others * (300 // len(others) + 1)
    tiny = Tick(8, (268803, 12))
    frames = [
        encode_frame([*first[:150], tiny, *first[150:]]),
        encode_frame([*second[:150], tiny, *second[150:]]),
    ]
    batches = [TickBatch("alpha", n, frame, 0.0, AT) for n, frame in enumerate(frames)]
    expected = [reference_json_lines([b], name_of).encode() for b in batches]
    expected_csv = [reference_csv_rows([b], name_of).encode() for b in batches]
    names = {token: name_of(token) for token in NAMES}
    with ThreadPoolExecutor(2) as pool:
        lines = list(pool.map(lambda b: encode_jsonl([b], names), batches))
        rows = list(pool.map(lambda b: encode_csv([b], names), batches))
    assert lines == expected
    assert rows == expected_csv
    assert b'"last_price":1.2e-06}' in lines[0]
