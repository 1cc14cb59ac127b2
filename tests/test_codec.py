"""The wire codec against the fixtures of docs/protocol.md §10, both directions, and its
contract on malformed input: any bytes either decode or raise CodecError with an offset."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from kitefan import (
    CodecError,
    Mode,
    Tick,
    codec as codec_module,
    decode_frame,
    decode_packets,
    encode_frame,
)
from kitefan.codec import (
    ERROR_BAD_TOKENS,
    Action,
    Request,
    RequestError,
    decode_text,
    encode_packet,
    error_message,
    frame_of_packets,
    frame_tokens,
    is_heartbeat,
    mode_message,
    notice_message,
    order_message,
    parse_request,
    scan_frame,
    subscribe_message,
    unsubscribe_message,
)
from kitefan.models import OrderUpdate, ServerError, ServerNotice, UnknownText

FIXTURES = Path(__file__).resolve().parent / "fixtures"
IST = timezone(timedelta(hours=5, minutes=30))


def hex_fixture(name: str) -> bytes:
    return bytes.fromhex("".join((FIXTURES / name).read_text().split()))


def packet_fixture(name: str) -> bytes:
    return base64.b64decode((FIXTURES / "kiteconnect-mocks" / name).read_text())


FRAME_A = hex_fixture("frame_a.hex")
FRAME_B = hex_fixture("frame_b.hex")
MOCK_FULL = packet_fixture("ticker_full.packet")
MOCK_QUOTE = packet_fixture("ticker_quote.packet")


def at(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=IST)


def assert_frame(data: bytes, ticks: list[Tick]) -> None:
    """Decoding the bytes gives the ticks, and encoding the ticks gives the bytes."""
    assert decode_frame(data) == ticks
    assert encode_frame(ticks) == data


# Fixtures, value by value ---------------------------------------------------------------------


FIXTURE_A_DICTS = [
    {
        "tradable": True,
        "mode": "full",
        "instrument_token": 408065,
        "last_price": 1512.35,
        "last_traded_quantity": 25,
        "average_traded_price": 1508.72,
        "volume_traded": 4821377,
        "total_buy_quantity": 312450,
        "total_sell_quantity": 298760,
        "ohlc": {"open": 1500.0, "high": 1519.9, "low": 1497.05, "close": 1495.5},
        "change": 1.126713473754591,
        "last_trade_time": at(1700023530),
        "oi": 1000000,
        "oi_day_high": 1050000,
        "oi_day_low": 980000,
        "exchange_timestamp": at(1700023531),
        "depth": {
            "buy": [
                {"quantity": 120, "price": 1512.3, "orders": 3},
                {"quantity": 75, "price": 1512.25, "orders": 2},
                {"quantity": 300, "price": 1512.2, "orders": 5},
                {"quantity": 10, "price": 1512.15, "orders": 1},
                {"quantity": 1000, "price": 1512.1, "orders": 12},
            ],
            "sell": [
                {"quantity": 50, "price": 1512.35, "orders": 1},
                {"quantity": 200, "price": 1512.4, "orders": 4},
                {"quantity": 80, "price": 1512.45, "orders": 2},
                {"quantity": 65, "price": 1512.5, "orders": 3},
                {"quantity": 900, "price": 1512.55, "orders": 9},
            ],
        },
    },
    {"tradable": True, "mode": "ltp", "instrument_token": 268803, "last_price": 83.2475},
]

FIXTURE_B_DICTS = [
    {
        "tradable": False,
        "mode": "quote",
        "instrument_token": 265,
        "last_price": 65123.45,
        "ohlc": {"high": 65300.0, "low": 64980.1, "open": 65250.0, "close": 65243.95},
        "change": -0.18469145415015492,
    },
    {
        "tradable": False,
        "mode": "full",
        "instrument_token": 256265,
        "last_price": 19675.45,
        "ohlc": {"high": 19700.1, "low": 19600.85, "open": 19650.0, "close": 19640.3},
        "change": 0.17896875302312826,
        "exchange_timestamp": at(1700023531),
    },
    {"tradable": True, "mode": "ltp", "instrument_token": 268806, "last_price": 83.2475},
]


def test_fixture_a_decodes_to_documented_values() -> None:
    ticks = decode_frame(FRAME_A)
    assert len(FRAME_A) == 198
    assert [t.as_dict() for t in ticks] == FIXTURE_A_DICTS
    # Key order is the official client's too, so printed dicts read the same.
    assert list(ticks[0].as_dict()) == list(FIXTURE_A_DICTS[0])


def test_fixture_a_round_trips_byte_exact() -> None:
    assert encode_frame(decode_frame(FRAME_A)) == FRAME_A


def test_fixture_b_decodes_to_documented_values() -> None:
    ticks = decode_frame(FRAME_B)
    assert len(FRAME_B) == 76
    assert [t.as_dict() for t in ticks] == FIXTURE_B_DICTS
    assert encode_frame(ticks) == FRAME_B


def test_index_change_field_is_signed() -> None:
    sensex, nifty, _ = decode_frame(FRAME_B)
    assert sensex.values[6] == -12050
    assert sensex.index_change == -120.5
    assert nifty.index_change == 35.15
    assert nifty.net_change == pytest.approx(35.150000000001455, abs=0)


def test_typed_accessors_of_a_full_tick() -> None:
    full, ltp = decode_frame(FRAME_A)
    assert full.mode is Mode.FULL
    assert full.segment == 1
    assert full.tradable is True
    assert full.ohlc == (1500.0, 1519.9, 1497.05, 1495.5)
    assert full.ohlc is not None and full.ohlc.close == 1495.5
    assert full.net_change == pytest.approx(16.84999999999991, abs=0)
    assert full.exchange_epoch_s == 1700023531
    assert full.exchange_timestamp == datetime(2023, 11, 15, 4, 45, 31, tzinfo=UTC)
    assert full.exchange_timestamp is not None and full.exchange_timestamp.utcoffset() == (
        timedelta(hours=5, minutes=30)
    )
    depth = full.depth
    assert depth is not None
    assert depth.buy[0] == (120, 1512.3, 3)
    assert depth.sell[4] == (900, 1512.55, 9)
    assert ltp.mode is Mode.LTP
    assert ltp.divisor == 10_000_000.0
    assert ltp.ohlc is None and ltp.change is None and ltp.depth is None
    assert ltp.volume_traded is None and ltp.exchange_timestamp is None


def test_official_full_packet_capture() -> None:
    (tick,) = decode_frame(b"\x00\x01\x00\xb8" + MOCK_FULL)
    d = tick.as_dict()
    assert d["instrument_token"] == 408065
    assert d["last_price"] == 1573.7
    assert d["last_traded_quantity"] == 7
    assert d["average_traded_price"] == 1570.37
    assert d["volume_traded"] == 1192471
    assert (d["total_buy_quantity"], d["total_sell_quantity"]) == (256443, 363009)
    assert d["ohlc"] == {"open": 1569.15, "high": 1575.0, "low": 1561.05, "close": 1567.8}
    assert d["change"] == 0.3763235106518747
    assert d["last_trade_time"] == d["exchange_timestamp"] == at(1625461887)
    assert d["last_trade_time"].isoformat() == "2021-07-05T10:41:27+05:30"
    assert (d["oi"], d["oi_day_high"], d["oi_day_low"]) == (0, 0, 0)
    assert [tuple(level.values()) for level in d["depth"]["buy"]] == [
        (5, 1573.4, 1),
        (140, 1573.0, 2),
        (2, 1572.95, 1),
        (219, 1572.9, 7),
        (50, 1572.85, 1),
    ]
    assert [tuple(level.values()) for level in d["depth"]["sell"]] == [
        (172, 1573.7, 3),
        (44, 1573.75, 3),
        (302, 1573.85, 3),
        (141, 1573.9, 2),
        (724, 1573.95, 5),
    ]
    assert tick.net_change == pytest.approx(5.900000000000091, abs=0)
    assert encode_packet(tick) == MOCK_FULL


def test_official_quote_packet_capture() -> None:
    (tick,) = decode_frame(b"\x00\x01\x00\x2c" + MOCK_QUOTE)
    assert tick.as_dict() == {
        "tradable": True,
        "mode": "quote",
        "instrument_token": 408065,
        "last_price": 1573.15,
        "last_traded_quantity": 1,
        "average_traded_price": 1570.33,
        "volume_traded": 1175986,
        "total_buy_quantity": 256511,
        "total_sell_quantity": 360503,
        "ohlc": {"open": 1569.15, "high": 1575.0, "low": 1561.05, "close": 1567.8},
        "change": 0.3412425054216186,
    }
    assert encode_packet(tick) == MOCK_QUOTE


@pytest.mark.parametrize(
    ("segment", "divisor", "price"),
    [
        (1, 100.0, 8324.75),  # NSE
        (3, 10_000_000.0, 0.0832475),  # CDS
        (6, 10_000.0, 83.2475),  # BCD
        (9, 100.0, 8324.75),  # indices
        (12, 10_000.0, 83.2475),  # NCO, as kiteconnect 5.2.2
        (13, 100.0, 8324.75),  # anything else
    ],
)
def test_price_divisor_by_segment(segment: int, divisor: float, price: float) -> None:
    token = (1050 << 8) | segment
    (tick,) = decode_frame(
        frame_of_packets([token.to_bytes(4, "big") + (832475).to_bytes(4, "big")])
    )
    assert tick.divisor == divisor
    assert tick.last_price == price
    assert tick.tradable is (segment != 9)


def test_change_is_zero_when_close_is_zero() -> None:
    tick = Tick.index(265, last_price=100, high=0, low=0, open=0, close=0, change=0)
    assert tick.change == 0
    assert tick.as_dict()["change"] == 0


# Heartbeats, empty frames, unknown packets ----------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x01", b"\xff"])
def test_heartbeats_have_no_ticks(data: bytes) -> None:
    assert is_heartbeat(data)
    assert decode_frame(data) == []


def test_empty_frame_has_no_ticks() -> None:
    assert not is_heartbeat(b"\x00\x00")
    assert decode_packets(b"\x00\x00") == ([], 0)


def test_unknown_packet_length_is_skipped_and_counted() -> None:
    ltp = Tick.ltp(408065, 151235)
    frame = frame_of_packets([encode_packet(ltp), b"\x01\x02\x03", encode_packet(ltp)])
    assert decode_packets(frame) == ([ltp, ltp], 1)
    assert decode_frame(frame) == [ltp, ltp]


def test_one_byte_at_a_time_prefixes_never_escape_as_other_errors() -> None:
    for end in range(2, len(FRAME_A)):
        with pytest.raises(CodecError) as info:
            decode_frame(FRAME_A[:end])
        assert 2 <= info.value.offset <= end


# Malformed frames ------------------------------------------------------------------------------


def test_truncated_packet_reports_offset_and_sizes() -> None:
    with pytest.raises(CodecError) as info:
        decode_frame(FRAME_A[:100])
    assert info.value.offset == 4
    assert str(info.value) == (
        "malformed frame at byte 4: packet 1 of 2 is 184 bytes but only 96 remain"
    )


def test_frame_cut_inside_a_length_field() -> None:
    with pytest.raises(CodecError) as info:
        decode_frame(FRAME_A[:189])
    assert info.value.offset == 188
    assert info.value.reason == "frame ends before the length of packet 2 of 2"


def test_count_smaller_than_packets() -> None:
    frame = b"\x00\x02" + FRAME_B[2:]
    with pytest.raises(CodecError) as info:
        decode_frame(frame)
    assert info.value.offset == 66
    assert info.value.reason == "10 bytes follow the 2 packets the frame announced"


def test_count_larger_than_packets() -> None:
    frame = b"\x00\x04" + FRAME_B[2:]
    with pytest.raises(CodecError) as info:
        decode_frame(frame)
    assert info.value.offset == 76
    assert info.value.reason == "frame ends before the length of packet 4 of 4"


@pytest.mark.parametrize("frame", [FRAME_A, FRAME_B])
def test_truncation_at_every_offset_raises_codec_error(frame: bytes) -> None:
    for end in range(2, len(frame)):
        with pytest.raises(CodecError):
            decode_frame(frame[:end])


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_decode_or_raise_codec_error(data: bytes) -> None:
    try:
        ticks, skipped = decode_packets(data)
    except CodecError as exc:
        assert 0 <= exc.offset <= len(data)
    else:
        assert all(t.kind in (8, 28, 32, 44, 184) for t in ticks)
        assert skipped >= 0


@settings(max_examples=300)
@given(st.lists(st.sampled_from([8, 28, 32, 44, 184]), max_size=5), st.data())
def test_garbage_inside_well_framed_packets_decodes(kinds: list[int], data: st.DataObject) -> None:
    packets = [data.draw(st.binary(min_size=k, max_size=k)) for k in kinds]
    ticks = decode_frame(frame_of_packets(packets))
    assert [t.kind for t in ticks] == kinds
    # Depth padding (2 bytes after each level's orders) is ignored, and encoded as zeros.
    assert [encode_packet(t) for t in ticks] == [without_depth_padding(p) for p in packets]


def without_depth_padding(packet: bytes) -> bytes:
    if len(packet) != 184:
        return packet
    out = bytearray(packet)
    for level in range(10):
        pad = 64 + 12 * level + 10
        out[pad : pad + 2] = b"\x00\x00"
    return bytes(out)


# Round trip ------------------------------------------------------------------------------------

U32 = st.integers(0, 2**32 - 1)
I32 = st.integers(-(2**31), 2**31 - 1)
U16 = st.integers(0, 2**16 - 1)

LTP_TICKS = st.builds(Tick.ltp, U32, U32)
INDEX_TICKS = st.builds(
    lambda token, fields, change, ts: Tick.index(
        token,
        last_price=fields[0],
        high=fields[1],
        low=fields[2],
        open=fields[3],
        close=fields[4],
        change=change,
        exchange_timestamp=ts,
    ),
    U32,
    st.tuples(U32, U32, U32, U32, U32),
    I32,
    st.none() | U32,
)
QUOTE_TICKS = st.builds(lambda values: Tick(44, values), st.tuples(*[U32] * 11))
FULL_TICKS = st.builds(
    lambda head, depth: Tick(184, (*head, *[x for level in depth for x in level])),
    st.tuples(*[U32] * 16),
    st.lists(st.tuples(U32, U32, U16), min_size=10, max_size=10),
)
TICKS = st.one_of(LTP_TICKS, INDEX_TICKS, QUOTE_TICKS, FULL_TICKS)


@settings(max_examples=300)
@given(st.lists(TICKS, max_size=20))
def test_encode_then_decode_gives_the_same_ticks(ticks: list[Tick]) -> None:
    frame = encode_frame(ticks)
    assert decode_frame(frame) == ticks
    assert encode_frame(decode_frame(frame)) == frame


def test_encoder_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(CodecError, match="does not fit its wire type"):
        encode_packet(Tick.ltp(2**32, 1))
    with pytest.raises(CodecError, match="has 2 fields, the tick has 3"):
        encode_packet(Tick(8, (1, 2, 3)))
    with pytest.raises(CodecError, match="no packet layout is 9 bytes long"):
        encode_packet(Tick(9, (1,)))


def test_full_constructor_builds_the_fixture() -> None:
    full = decode_frame(FRAME_A)[0]
    quote = Tick(44, full.values[:11])
    rebuilt = Tick.full(
        quote,
        last_trade_time=1700023530,
        oi=1000000,
        oi_day_high=1050000,
        oi_day_low=980000,
        exchange_timestamp=1700023531,
        depth=[tuple(full.values[i : i + 3]) for i in range(16, 46, 3)],  # type: ignore[misc]  # a depth level's 3 values
    )
    assert rebuilt == full


# Text messages ---------------------------------------------------------------------------------


def test_request_messages_are_compact_json() -> None:
    assert subscribe_message([408065, 884737]) == '{"a":"subscribe","v":[408065,884737]}'
    assert unsubscribe_message([884737]) == '{"a":"unsubscribe","v":[884737]}'
    assert mode_message(Mode.FULL, [408065]) == '{"a":"mode","v":["full",[408065]]}'


@pytest.mark.parametrize(
    ("text", "request_"),
    [
        ('{"a":"subscribe","v":[408065,884737]}', Request(Action.SUBSCRIBE, (408065, 884737))),
        ('{"a": "subscribe", "v": [408065]}', Request(Action.SUBSCRIBE, (408065,))),  # PY
        ('{"v":[1],"a":"unsubscribe"}', Request(Action.UNSUBSCRIBE, (1,))),  # JAVA's key order
        ('{"a":"mode","v":["full", [408065]]}', Request(Action.MODE, (408065,), Mode.FULL)),
        ('{"a":"subscribe","v":[]}', Request(Action.SUBSCRIBE, ())),
        (b'{"a":"mode","v":["ltp",[1]]}', Request(Action.MODE, (1,), Mode.LTP)),
    ],
)
def test_requests_parse_whatever_the_client(text: str, request_: Request) -> None:
    assert parse_request(text) == request_


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a":"subscribe","v":["408065"]}', ERROR_BAD_TOKENS),
        ('{"a":"subscribe","v":[1.5]}', ERROR_BAD_TOKENS),
        ('{"a":"subscribe","v":[true]}', ERROR_BAD_TOKENS),
        ('{"a":"subscribe","v":[-1]}', ERROR_BAD_TOKENS),
        ('{"a":"subscribe","v":[4294967296]}', ERROR_BAD_TOKENS),
        ('{"a":"subscribe","v":408065}', ERROR_BAD_TOKENS),
        ('{"a":"mode","v":["full",["1"]]}', ERROR_BAD_TOKENS),
        ("{not json", "Invalid message: not valid JSON"),
        ("[1,2]", 'Invalid message: expected an object with "a" and "v"'),
        ('{"a":"subscribe"}', 'Invalid message: expected an object with "a" and "v"'),
        ('{"a":"watch","v":[1]}', "Invalid message: unknown action 'watch'"),
        ('{"a":"mode","v":["depth",[1]]}', "Invalid message: unknown mode 'depth'"),
        ('{"a":"mode","v":[[1]]}', 'Invalid message: mode takes ["<mode>", [tokens]]'),
    ],
)
def test_bad_requests_carry_the_servers_answer(text: str, reason: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_request(text)
    assert info.value.reason == reason
    assert str(info.value) == reason


def test_server_texts_round_trip() -> None:
    postback = json.loads((FIXTURES / "kiteconnect-mocks" / "postback.json").read_text())
    text = order_message(postback)
    assert json.loads(text) == {"type": "order", "data": postback}
    update = decode_text(text)
    assert isinstance(update, OrderUpdate)
    assert update.order_id == "220303000308932"
    assert update.data == postback
    assert decode_text(error_message("Error parsing instrument tokens")) == ServerError(
        "Error parsing instrument tokens"
    )
    assert error_message("x") == '{"type":"error","data":"x"}'
    assert decode_text(notice_message("Markets open at 09:15")) == ServerNotice(
        "Markets open at 09:15"
    )
    assert decode_text('{"type":"ping","data":1}') == UnknownText("ping", 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nope", "text message is not valid JSON"),
        ('{"data":1}', 'text message is not an object with a string "type"'),
        ('{"type":"order","data":"x"}', "order message without an object as its data"),
        (
            '{"type":"order","data":{"order_id":["A1"]}}',
            "order message whose order_id is a list, not a string or a number",
        ),
        (
            '{"type":"order","data":{"order_id":"A1","status":{"s":1}}}',
            "order message whose status is an object, not a string or a number",
        ),
        (
            '{"type":"order","data":{"order_id":true}}',
            "order message whose order_id is a boolean, not a string or a number",
        ),
        ("[" * 100_000 + "]" * 100_000, "text message nests deeper than 32 levels"),
        (
            '{"type":"error","data":' + "[" * 100_000 + "]" * 100_000 + "}",
            "text message nests deeper than 32 levels",
        ),
        (
            '{"type":"message","data":' + '{"a":' * 40 + "1" + "}" * 40 + "}",
            "text message nests deeper than 32 levels",
        ),
    ],
    ids=lambda value: value[:40] if isinstance(value, str) else None,
)
def test_bad_server_texts_raise_codec_error(text: str, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        decode_text(text)
    assert info.value.reason == reason
    assert info.value.offset == -1


def test_order_updates_deduplicate_on_content_not_identity() -> None:
    postback = json.loads((FIXTURES / "kiteconnect-mocks" / "postback.json").read_text())
    first = decode_text(order_message(postback))
    again = decode_text(order_message(postback))
    later = decode_text(order_message({**postback, "status": "CANCELLED"}))
    assert isinstance(first, OrderUpdate) and isinstance(again, OrderUpdate)
    assert isinstance(later, OrderUpdate)
    assert first.dedup_key == again.dedup_key
    assert first.dedup_key != later.dedup_key


def test_the_dedup_key_takes_any_json_value() -> None:
    odd = {"order_id": 7, "status": None, "filled_quantity": [1, {"b": 2, "a": [3]}]}
    update = OrderUpdate(odd)
    assert (
        update.dedup_key == '[7,null,null,[1,{"a":[3],"b":2}],null,null,null,null,null,null,null]'
    )
    assert {update.dedup_key, OrderUpdate(dict(odd)).dedup_key} == {update.dedup_key}
    reordered = OrderUpdate({"filled_quantity": [1, {"a": [3], "b": 2}], "order_id": 7})
    assert reordered.dedup_key == update.dedup_key


# scan_frame: the structure check a connection makes before it hands a frame on undecoded ------


@contextlib.contextmanager
def counted_in_python() -> Iterator[None]:
    """``scan_frame`` without its compiled pass (as where the extension is not built)."""
    compiled, codec_module._compiled = codec_module._compiled, None
    try:
        yield
    finally:
        codec_module._compiled = compiled


def scan_agrees_with_decode(data: bytes) -> None:
    """``scan_frame`` counts what ``decode_packets`` gives, and fails exactly as it does, with
    its compiled pass and without."""
    try:
        ticks, skipped = decode_packets(data)
    except CodecError as exc:
        for path in (contextlib.nullcontext, counted_in_python):
            with path(), pytest.raises(CodecError) as info:
                scan_frame(data)
            assert (info.value.offset, info.value.reason) == (exc.offset, exc.reason)
    else:
        assert scan_frame(data) == (len(ticks), skipped)
        with counted_in_python():
            assert scan_frame(data) == (len(ticks), skipped)
        assert frame_tokens(data) == [t.instrument_token for t in ticks]


def test_scan_counts_the_fixtures_without_decoding() -> None:
    assert scan_frame(FRAME_A) == (len(decode_frame(FRAME_A)), 0)
    assert scan_frame(FRAME_B) == (len(decode_frame(FRAME_B)), 0)
    assert scan_frame(b"") == scan_frame(b"\x00") == scan_frame(b"\x00\x00") == (0, 0)


def test_scan_of_a_uniform_frame_of_unknown_packets_counts_them_skipped() -> None:
    assert scan_frame(frame_of_packets([bytes(12)] * 3)) == (0, 3)


@pytest.mark.parametrize("frame", [FRAME_A, FRAME_B])
def test_scan_fails_like_decode_at_every_cut(frame: bytes) -> None:
    for end in range(len(frame) + 1):
        scan_agrees_with_decode(frame[:end])


def test_scan_of_a_uniform_frame_with_one_wrong_length_fails_like_decode() -> None:
    packets = [encode_packet(Tick.ltp(256265, 100 + i)) for i in range(4)]
    frame = bytearray(frame_of_packets(packets))
    frame[2 + 3 * 10 + 1] = 7  # the last packet's length says 7, its bytes are 8
    scan_agrees_with_decode(bytes(frame))


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_scan_agrees_with_decode_on_arbitrary_bytes(data: bytes) -> None:
    scan_agrees_with_decode(data)


@settings(max_examples=300)
@given(st.lists(st.sampled_from([8, 12, 28, 32, 44, 184]), max_size=6), st.data())
def test_scan_agrees_with_decode_on_well_framed_packets(
    kinds: list[int], data: st.DataObject
) -> None:
    packets = [data.draw(st.binary(min_size=k, max_size=k)) for k in kinds]
    frame = frame_of_packets(packets)
    scan_agrees_with_decode(frame)
    scan_agrees_with_decode(frame + b"\x00")
