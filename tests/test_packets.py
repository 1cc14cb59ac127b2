"""The packet-field table (kitefan/packets.py) against everything that reads or writes packets.

The table's own shape (sizes 8/28/32/44/184, contiguous offsets, the prefixes the simulator relies
on); the codec's layouts are the table's; exact-byte round trips of every packet kind, from the
fixtures and from frames built field by field from the table, checked field by field by name; the
simulator's market encodes its named state where the table says and the codec reads it back; and
the compiled record writer (kitefan/_records.c, which cannot import the table) writes every field
of every kind that the table says, read from the offset the table gives.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from kitefan import _records
from kitefan.codec import LAYOUTS, decode_frame, encode_frame, frame_of_packets
from kitefan.events import TickBatch
from kitefan.models import Mode, Tick, divisor_for
from kitefan.packets import DEPTH_LEVELS, FIELDS, PACKETS, Field, PacketKind, Unit
from kitefan.render.records import reference_csv_rows, reference_json_lines
from kitefan.simulator.market import Market, packet_kind

FIXTURES = Path(__file__).resolve().parent / "fixtures"
IST = timezone(timedelta(hours=5, minutes=30))
NOW = 1_764_567_000  # 2025-12-01 10:50 IST

NSE = 1  # segment 1: divisor 100
CDS = 3  # divisor 1e7
BCD = 6  # divisor 1e4
INDICES = 9


def token(exchange_token: int, segment: int) -> int:
    return exchange_token << 8 | segment


def hex_fixture(name: str) -> bytes:
    return bytes.fromhex("".join((FIXTURES / name).read_text().split()))


def packet_fixture(name: str) -> bytes:
    packet = base64.b64decode((FIXTURES / "kiteconnect-mocks" / name).read_text())
    return frame_of_packets([packet])


FIXTURE_FRAMES = {
    "frame_a": hex_fixture("frame_a.hex"),
    "frame_b": hex_fixture("frame_b.hex"),
    "ticker_full": packet_fixture("ticker_full.packet"),
    "ticker_quote": packet_fixture("ticker_quote.packet"),
}


def read_field(packet: bytes | memoryview, field: Field) -> int:
    """One field straight from the bytes, where the table puts it (not through the codec)."""
    (value,) = struct.unpack_from(">" + field.code, packet, field.offset)
    assert isinstance(value, int)
    return value


def packets_of(frame: bytes) -> list[bytes]:
    """The packets of a well-formed frame, by its length fields."""
    out: list[bytes] = []
    offset = 2
    for _ in range(int.from_bytes(frame[:2], "big")):
        length = int.from_bytes(frame[offset : offset + 2], "big")
        out.append(frame[offset + 2 : offset + 2 + length])
        offset += 2 + length
    assert offset == len(frame)
    return out


def distinct_values(kind: int, instrument_token: int) -> dict[str, int]:
    """A value for every field of ``kind``, no two alike, each fitting its wire type."""
    named: dict[str, int] = {}
    for number, field in enumerate(PACKETS[kind].values):
        if field.name == "instrument_token":
            named[field.name] = instrument_token
        elif field.unit is Unit.TIME:
            named[field.name] = NOW + number
        elif field.code == "i":
            named[field.name] = -(1000 + 7 * number)  # the index change, negative
        elif field.code == "H":
            named[field.name] = 40_000 + number
        else:
            named[field.name] = 1_234_567 * (number + 1) + kind
    return named


def build_packet(kind: int, named: dict[str, int]) -> bytes:
    """A packet written field by field at the table's offsets (zeros where it says padding)."""
    packet = bytearray(kind)
    for field in PACKETS[kind].values:
        struct.pack_into(">" + field.code, packet, field.offset, named[field.name])
    return bytes(packet)


TOKENS = {
    PacketKind.LTP: token(2885, NSE),
    PacketKind.INDEX_QUOTE: token(1, INDICES),
    PacketKind.INDEX_FULL: token(1001, INDICES),
    PacketKind.QUOTE: token(1050, CDS),
    PacketKind.FULL: token(408065 >> 8, NSE),
}


# The table's shape ------------------------------------------------------------------------------


def test_there_are_five_kinds_of_the_documented_sizes() -> None:
    assert sorted(PACKETS) == [8, 28, 32, 44, 184]
    for length, packet in PACKETS.items():
        assert packet.kind == length
        assert struct.calcsize(packet.format) == length
        assert sum(field.size for field in packet.fields) == length


@pytest.mark.parametrize("kind", list(PacketKind))
def test_each_kinds_fields_are_contiguous_from_zero_to_its_length(kind: PacketKind) -> None:
    packet = PACKETS[kind]
    offset = 0
    for field in packet.fields:
        assert field.offset == offset, f"{field.name} of {kind.name}"
        offset += field.size
    assert offset == int(kind)
    assert len(set(packet.names)) == len(packet.names)


def test_every_row_of_the_table_is_in_some_kind_and_no_two_rows_collide() -> None:
    for field in FIELDS:
        assert field.kinds
        for kind in field.kinds:
            assert field in PACKETS[kind].fields
    # the same name twice only where two families of kinds carry it at different offsets
    for one in FIELDS:
        for other in FIELDS:
            if one is not other and one.name == other.name:
                assert not one.kinds & other.kinds
                assert one.offset != other.offset


def test_the_documented_offsets_and_types() -> None:
    # docs/protocol.md §3.4-§3.7, restated.
    def where(kind: int) -> list[tuple[int, str, str]]:
        return [(f.offset, f.name, f.code) for f in PACKETS[kind].values]

    assert where(8) == [(0, "instrument_token", "I"), (4, "last_price", "I")]
    assert where(32) == [
        (0, "instrument_token", "I"),
        (4, "last_price", "I"),
        (8, "high", "I"),
        (12, "low", "I"),
        (16, "open", "I"),
        (20, "close", "I"),
        (24, "index_change", "i"),
        (28, "exchange_timestamp", "I"),
    ]
    assert where(28) == where(32)[:-1]
    assert [name for _, name, _ in where(44)] == [
        "instrument_token",
        "last_price",
        "last_traded_quantity",
        "average_traded_price",
        "volume_traded",
        "total_buy_quantity",
        "total_sell_quantity",
        "open",
        "high",
        "low",
        "close",
    ]
    assert [offset for offset, _, _ in where(44)] == list(range(0, 44, 4))
    assert where(184)[11:16] == [
        (44, "last_trade_time", "I"),
        (48, "oi", "I"),
        (52, "oi_day_high", "I"),
        (56, "oi_day_low", "I"),
        (60, "exchange_timestamp", "I"),
    ]
    assert where(184)[16:19] == [
        (64, "bid_quantity_1", "I"),
        (68, "bid_price_1", "I"),
        (72, "bid_orders_1", "H"),
    ]
    assert where(184)[-3:] == [
        (172, "ask_quantity_5", "I"),
        (176, "ask_price_5", "I"),
        (180, "ask_orders_5", "H"),
    ]
    assert [f.offset for f in PACKETS[184].fields if f.unit is Unit.PAD] == list(range(74, 184, 12))
    prices = {f.name for f in PACKETS[184].values if f.price}
    assert prices == {"last_price", "average_traded_price", "open", "high", "low", "close"} | {
        f"{side}_price_{n}" for side in ("bid", "ask") for n in range(1, DEPTH_LEVELS + 1)
    }
    assert {f.name for f in PACKETS[32].values if f.price} == {
        "last_price",
        "high",
        "low",
        "open",
        "close",
        "index_change",
    }


def test_each_modes_packet_is_a_prefix_of_the_longest_of_its_family() -> None:
    # The simulator sends every mode as a prefix of one buffer (simulator/market.py).
    def prefix(short: int, long: int) -> bool:
        return PACKETS[long].fields[: len(PACKETS[short].fields)] == PACKETS[short].fields

    assert prefix(8, 44) and prefix(44, 184) and prefix(8, 28) and prefix(28, 32)


def test_the_modes_of_the_kinds() -> None:
    assert {length: packet.mode for length, packet in PACKETS.items()} == {
        8: "ltp",
        28: "quote",
        32: "full",
        44: "quote",
        184: "full",
    }
    assert [length for length, packet in PACKETS.items() if packet.index] == [28, 32]


def test_the_codecs_layouts_are_the_tables() -> None:
    assert sorted(LAYOUTS) == sorted(PACKETS)
    for length, layout in LAYOUTS.items():
        assert layout.format == PACKETS[length].format
        assert layout.size == length
        assert len(layout.unpack(bytes(length))) == len(PACKETS[length].values)
    # runs of one code are counted, as the hand-written layouts were
    assert PACKETS[44].format == ">11I"
    assert PACKETS[184].format == ">18IH2x" + "2IH2x" * 9


# Round trips through the codec --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURE_FRAMES))
def test_the_fixtures_decode_field_by_field_where_the_table_says(name: str) -> None:
    frame = FIXTURE_FRAMES[name]
    ticks = decode_frame(frame)
    packets = packets_of(frame)
    assert [tick.kind for tick in ticks] == [len(packet) for packet in packets]
    for tick, packet in zip(ticks, packets, strict=True):
        table = PACKETS[tick.kind]
        assert tick.values == tuple(read_field(packet, field) for field in table.values)
        for field in table.values:
            assert tick.values[table.index_of(field.name)] == read_field(packet, field)
    assert encode_frame(ticks) == frame


@pytest.mark.parametrize("kind", list(PacketKind))
def test_a_packet_built_from_the_table_round_trips_exactly(kind: PacketKind) -> None:
    named = distinct_values(kind, TOKENS[kind])
    packet = build_packet(kind, named)
    frame = frame_of_packets([packet, packet])
    ticks = decode_frame(frame)
    assert len(ticks) == 2 and ticks[0] == ticks[1]
    tick = ticks[0]
    assert tick.kind == int(kind)
    assert tick.values == PACKETS[kind].pack_values(named)
    assert encode_frame(ticks) == frame
    # The accessors, by the table's names and units.
    divisor = divisor_for(named["instrument_token"])
    expected: dict[str, Any] = {}
    for field in PACKETS[kind].values:
        value = named[field.name]
        expected[field.name] = value / divisor if field.price else value
    assert tick.instrument_token == expected["instrument_token"]
    assert tick.last_price == expected["last_price"]
    assert tick.mode == Mode(PACKETS[kind].mode)
    if kind in (PacketKind.QUOTE, PacketKind.FULL):
        assert tick.last_traded_quantity == expected["last_traded_quantity"]
        assert tick.average_traded_price == expected["average_traded_price"]
        assert tick.volume_traded == expected["volume_traded"]
        assert tick.total_buy_quantity == expected["total_buy_quantity"]
        assert tick.total_sell_quantity == expected["total_sell_quantity"]
    else:
        assert tick.last_traded_quantity is None and tick.volume_traded is None
    if kind == PacketKind.LTP:
        assert tick.ohlc is None and tick.change is None
    else:
        assert tick.ohlc is not None
        assert tick.ohlc._asdict() == {
            name: expected[name] for name in ("open", "high", "low", "close")
        }
    if kind in (PacketKind.INDEX_QUOTE, PacketKind.INDEX_FULL):
        assert tick.index_change == expected["index_change"]
        assert tick.index_change is not None and tick.index_change < 0
    else:
        assert tick.index_change is None
    if kind in (PacketKind.INDEX_FULL, PacketKind.FULL):
        assert tick.exchange_epoch_s == expected["exchange_timestamp"]
    else:
        assert tick.exchange_epoch_s is None
    if kind == PacketKind.FULL:
        assert tick.oi == expected["oi"]
        assert tick.oi_day_high == expected["oi_day_high"]
        assert tick.oi_day_low == expected["oi_day_low"]
        assert tick.last_trade_time == datetime.fromtimestamp(expected["last_trade_time"], IST)
        assert tick.depth is not None
        for side, levels in (("bid", tick.depth.buy), ("ask", tick.depth.sell)):
            assert [tuple(level) for level in levels] == [
                (
                    expected[f"{side}_quantity_{n}"],
                    expected[f"{side}_price_{n}"],
                    expected[f"{side}_orders_{n}"],
                )
                for n in range(1, DEPTH_LEVELS + 1)
            ]
    else:
        assert tick.depth is None and tick.oi is None


@pytest.mark.parametrize("kind", list(PacketKind))
def test_the_named_constructors_follow_the_table(kind: PacketKind) -> None:
    named = distinct_values(kind, TOKENS[kind])
    if kind == PacketKind.LTP:
        tick = Tick.ltp(named["instrument_token"], named["last_price"])
    elif kind in (PacketKind.INDEX_QUOTE, PacketKind.INDEX_FULL):
        tick = Tick.index(
            named["instrument_token"],
            last_price=named["last_price"],
            high=named["high"],
            low=named["low"],
            open=named["open"],
            close=named["close"],
            change=named["index_change"],
            exchange_timestamp=named.get("exchange_timestamp"),
        )
    else:
        quote_names = PACKETS[PacketKind.QUOTE].names[1:]
        quote = Tick.quote(named["instrument_token"], **{n: named[n] for n in quote_names})
        if kind == PacketKind.QUOTE:
            tick = quote
        else:
            tick = Tick.full(
                quote,
                last_trade_time=named["last_trade_time"],
                oi=named["oi"],
                oi_day_high=named["oi_day_high"],
                oi_day_low=named["oi_day_low"],
                exchange_timestamp=named["exchange_timestamp"],
                depth=[
                    (named[f"{s}_quantity_{n}"], named[f"{s}_price_{n}"], named[f"{s}_orders_{n}"])
                    for s in ("bid", "ask")
                    for n in range(1, DEPTH_LEVELS + 1)
                ],
            )
    assert tick.kind == int(kind)
    assert encode_frame([tick]) == frame_of_packets([build_packet(kind, named)])


# The simulator's market -------------------------------------------------------------------------

MARKET_TOKENS = [token(t, s) for t, s in ((2885, NSE), (9001, 2), (1050, CDS), (77, BCD))] + [
    token(256, INDICES),
    token(1001, INDICES),
]


@pytest.mark.parametrize("instrument_token", MARKET_TOKENS)
def test_the_codec_reads_what_the_market_encodes_field_by_field(instrument_token: int) -> None:
    instrument = Market(seed=11).instrument(instrument_token, NOW)
    for i in range(300):
        now = NOW + i // 40
        if i % 2:
            instrument.trade(now)
        else:
            instrument.step(now)
        state = instrument.fields()
        for mode in Mode:
            kind = packet_kind(instrument_token, mode)
            packet = instrument.packet(mode)
            assert len(packet) == kind
            (tick,) = decode_frame(frame_of_packets([packet]))
            table = PACKETS[kind]
            for field in table.values:
                assert read_field(packet, field) == state[field.name], field.name
                assert tick.values[table.index_of(field.name)] == state[field.name]
            for field in table.fields:
                if field.unit is Unit.PAD:
                    assert packet[field.offset : field.offset + field.size] == bytes(field.size)
            assert encode_frame([tick]) == frame_of_packets([packet])


# The compiled record writer ---------------------------------------------------------------------


def iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, IST).isoformat()


def record_from_table(kind: int, named: dict[str, int]) -> dict[str, Any]:
    """The JSON record of a packet, built from the table's names and units alone (the keys of
    ``Tick.as_dict()`` in its order: ``ohlc`` and ``depth`` nested, the change computed)."""
    divisor = divisor_for(named["instrument_token"])
    value: dict[str, Any] = {}
    for field in PACKETS[kind].values:
        raw = named[field.name]
        if field.price:
            value[field.name] = raw / divisor
        elif field.unit is Unit.TIME:
            value[field.name] = iso(raw)
        else:
            value[field.name] = raw
    record: dict[str, Any] = {
        "type": "tick",
        "key": "k",
        "connection": 0,
        "symbol": "S",
        "tradable": named["instrument_token"] & 0xFF != INDICES,
        "mode": PACKETS[kind].mode,
    }
    flat = (
        "instrument_token",
        "last_price",
        "last_traded_quantity",
        "average_traded_price",
        "volume_traded",
        "total_buy_quantity",
        "total_sell_quantity",
    )
    for name in flat:
        if name in value:
            record[name] = value[name]
    if kind == PacketKind.LTP:
        return record
    order = ("high", "low", "open", "close") if PACKETS[kind].index else ("open", "high", "low")
    record["ohlc"] = {name: value[name] for name in (*order, "close")}
    close = value["close"]
    record["change"] = (value["last_price"] - close) * 100 / close
    for name in ("last_trade_time", "oi", "oi_day_high", "oi_day_low", "exchange_timestamp"):
        if name in value:
            record[name] = value[name]
    if kind == PacketKind.FULL:
        record["depth"] = {
            side: [
                {
                    "quantity": value[f"{prefix}_quantity_{n}"],
                    "price": value[f"{prefix}_price_{n}"],
                    "orders": value[f"{prefix}_orders_{n}"],
                }
                for n in range(1, DEPTH_LEVELS + 1)
            ]
            for side, prefix in (("buy", "bid"), ("sell", "ask"))
        }
    return record


#: Index packets for index tokens, quote and full packets for the others, LTP for both.
WRITER_CASES = [
    (kind, segment)
    for kind in PacketKind
    for segment in (NSE, CDS, BCD, INDICES)
    if kind == PacketKind.LTP or PACKETS[kind].index == (segment == INDICES)
]


@pytest.mark.parametrize(("kind", "segment"), WRITER_CASES)
def test_the_compiled_writer_reads_every_field_where_the_table_says(
    kind: PacketKind, segment: int
) -> None:
    named = distinct_values(kind, token(4242, segment))
    frame = frame_of_packets([build_packet(kind, named)])
    head = b'{"type":"tick","key":"k","connection":0,"symbol":'
    lines = _records.jsonl(frame, head, lambda _token: "S")
    assert lines is not None  # written by the compiled writer, not handed back
    assert json.loads(lines) == record_from_table(kind, named)
    # and byte for byte what the reference (Tick.as_dict() and json) writes
    batch = TickBatch("k", 0, frame, 0.0, NOW)
    assert lines.decode() == reference_json_lines([batch], lambda _token: "S")
    rows = _records.csv(frame, b"x,k,0,", lambda _token: "S")
    assert rows is not None
    reference = reference_csv_rows([batch], lambda _token: "S")
    assert rows.decode() == "x" + reference[reference.index(",k,0,") :]


def test_a_reader_reads_only_the_named_fields_of_a_run_of_packets() -> None:
    named = [distinct_values(32, token(n, INDICES)) for n in (1, 2, 3)]
    frame = frame_of_packets([build_packet(32, values) for values in named])
    names = ("instrument_token", "last_price", "exchange_timestamp")
    reader = PACKETS[32].reader(names, before=2)
    assert reader.format == ">2xII20xI"
    assert list(reader.iter_unpack(frame[2:])) == [
        tuple(values[name] for name in names) for values in named
    ]
    assert PACKETS[184].reader(("oi",)).format == ">48xI132x"
    assert PACKETS[184].indexes_of("instrument_token", "oi") == (0, 12)
    with pytest.raises(ValueError, match="last_price is not after the fields before it in FULL"):
        PACKETS[184].reader(("oi", "last_price"))
    with pytest.raises(KeyError):
        PACKETS[8].reader(("oi",))
