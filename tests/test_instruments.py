"""The instruments dump: parsing, indexing, selecting, and fetching it from a local server."""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path

import pytest
from instruments_server import serve_dump

from kitefan.config import Credential
from kitefan.errors import InstrumentsError
from kitefan.fetch import fetch_instruments
from kitefan.instruments import INSTRUMENTS_HEADER, Instrument, InstrumentFilter, parse_instruments
from kitefan.loader import load_instruments
from kitefan.models import segment_of

REPO = Path(__file__).parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kiteconnect-mocks"
HEADER = ",".join(INSTRUMENTS_HEADER)

DUMP = "\n".join(
    [
        HEADER,
        "738561,2885,RELIANCE,RELIANCE INDUSTRIES,1520.4,,0.0,0.1,1,EQ,NSE,NSE",
        "408065,1594,INFY,INFOSYS,1605.25,,0.0,0.1,1,EQ,NSE,NSE",
        "256265,1001,NIFTY 50,NIFTY 50,26150.35,,0.0,0.0,0,EQ,INDICES,NSE",
        '3861249,15083,ADANIPORTS,"ADANI PORT & SEZ, LTD",1482.55,,0.0,0.05,1,EQ,NSE,NSE',
        # an expired weekly, the nearest weekly, a later monthly; futures on their own expiry
        "12000002,46875,NIFTY26N2426000CE,NIFTY,1.0,2026-11-24,26000.0,0.05,75,CE,NFO-OPT,NFO",
        "12100002,47265,NIFTY26D0126100PE,NIFTY,117.25,2026-12-01,26100.0,0.05,75,PE,NFO-OPT,NFO",
        "12100258,47266,NIFTY26D0126000CE,NIFTY,210.5,2026-12-01,26000.0,0.05,75,CE,NFO-OPT,NFO",
        "12200002,47656,NIFTY26DEC26000CE,NIFTY,477.95,2026-12-29,26000.0,0.05,75,CE,NFO-OPT,NFO",
        "12300002,48046,NIFTY26DECFUT,NIFTY,26248.6,2026-12-29,0.0,0.05,75,FUT,NFO-FUT,NFO",
        "12400002,48437,BANKNIFTY26D0159000CE,BANKNIFTY,300.0,2026-12-01,59000.0,0.05,35,CE,"
        "NFO-OPT,NFO",
        "",
    ]
)
TODAY = date(2026, 11, 27)


def test_parse_keeps_every_column_typed() -> None:
    index = parse_instruments(DUMP, source="dump.csv")
    assert len(index) == 10
    assert index.get(3861249) == Instrument(
        instrument_token=3861249,
        exchange_token=15083,
        tradingsymbol="ADANIPORTS",
        name="ADANI PORT & SEZ, LTD",
        last_price=1482.55,
        expiry=None,
        strike=0.0,
        tick_size=0.05,
        lot_size=1,
        instrument_type="EQ",
        segment="NSE",
        exchange="NSE",
    )
    option = index.get(12200002)
    assert option is not None
    assert (option.expiry, option.strike, option.lot_size) == (date(2026, 12, 29), 26000.0, 75)


def test_names_resolve_as_exchange_and_tradingsymbol() -> None:
    index = parse_instruments(DUMP, source="dump.csv")
    reliance = index.resolve("NSE:RELIANCE")
    nifty = index.resolve("NSE:NIFTY 50")
    assert reliance is not None and reliance.instrument_token == 738561
    assert nifty is not None and nifty.instrument_token == 256265
    assert nifty.symbol == "NSE:NIFTY 50"
    assert index.resolve("NSE:reliance") is None
    assert index.resolve("BSE:RELIANCE") is None
    assert index.get(1) is None


def test_closest_names_come_from_the_same_exchange_first() -> None:
    index = parse_instruments(DUMP, source="dump.csv")
    assert index.closest("NSE:RELAINCE") == ["NSE:RELIANCE"]
    assert index.closest("NSE:nifty 5") == ["NSE:NIFTY 50"]
    assert index.closest("NFO:NIFTY26DECFUTX") == ["NFO:NIFTY26DECFUT", "NFO:NIFTY26DEC26000CE"]
    assert index.closest("XYZ:QQQQQQQQ") == []


def test_the_broker_fixtures_parse() -> None:
    for name in ("instruments_all.csv", "instruments_nse.csv"):
        index = load_instruments(FIXTURES / name)
        assert len(index) == 99
    index = load_instruments(FIXTURES / "instruments_all.csv")
    option = index.resolve("NFO:BANKNIFTY18JAN23500CE")
    assert option is not None and option.instrument_token == 12073986


def test_select_filters_and_sorts_by_chain_order() -> None:
    index = parse_instruments(DUMP, source="dump.csv")
    picked = index.select(
        InstrumentFilter(exchange=("NFO",), name=("NIFTY",), instrument_type=("CE", "PE")),
        today=TODAY,
    )
    assert [row.tradingsymbol for row in picked] == [
        "NIFTY26N2426000CE",
        "NIFTY26D0126000CE",
        "NIFTY26D0126100PE",
        "NIFTY26DEC26000CE",
    ]


def test_select_nearest_expiry_skips_past_ones_per_underlying_and_kind() -> None:
    index = parse_instruments(DUMP, source="dump.csv")
    picked = index.select(InstrumentFilter(exchange=("NFO",), expiry="nearest"), today=TODAY)
    assert [row.tradingsymbol for row in picked] == [
        "BANKNIFTY26D0159000CE",
        "NIFTY26D0126000CE",
        "NIFTY26D0126100PE",
        "NIFTY26DECFUT",
    ]


def test_select_explicit_expiry_and_segment() -> None:
    index = parse_instruments(DUMP, source="dump.csv")
    monthly = index.select(InstrumentFilter(expiry=(date(2026, 12, 29),)), today=TODAY)
    assert [row.tradingsymbol for row in monthly] == ["NIFTY26DECFUT", "NIFTY26DEC26000CE"]
    indices = index.select(InstrumentFilter(segment=("INDICES",)), today=TODAY)
    assert [row.symbol for row in indices] == ["NSE:NIFTY 50"]
    assert index.select(InstrumentFilter(name=("SENSEX",)), today=TODAY) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "dump.csv: empty; expected the instruments CSV header"),
        (
            "instrument_token,tradingsymbol\n1,X\n",
            "dump.csv: not an instruments dump: the header lacks exchange_token, name, "
            "last_price, expiry, strike, tick_size, lot_size, instrument_type, segment, exchange",
        ),
        (
            HEADER + "\n738561,2885,RELIANCE,RELIANCE\n",
            "dump.csv:2: expected 12 fields, got 4 (a cut download? run `kitefan instruments "
            "fetch`)",
        ),
        (
            HEADER
            + "\n738561,2885,RELIANCE,R,1.0,,0,0.1,1,EQ,NSE,NSE\nx,1,A,A,1,,0,0,1,EQ,NSE,NSE",
            'dump.csv:3: instrument_token "x" is not valid',
        ),
        (
            HEADER + "\n1,1,A,A,1,2026-13-01,0,0,1,EQ,NSE,NSE",
            'dump.csv:2: expiry "2026-13-01" is not valid',
        ),
    ],
)
def test_a_malformed_dump_names_the_line(text: str, message: str) -> None:
    with pytest.raises(InstrumentsError) as caught:
        parse_instruments(text, source="dump.csv")
    assert str(caught.value) == message


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InstrumentsError) as caught:
        load_instruments(tmp_path / "nope.csv")
    assert str(caught.value) == f"cannot read {tmp_path / 'nope.csv'}: No such file or directory"


# The bundled demo dump -------------------------------------------------------------------------

SEGMENT_IDS = {"NSE": 1, "NFO": 2, "CDS": 3, "BSE": 4, "BFO": 5, "MCX": 7, "INDICES": 9}


def test_demo_dump_is_in_the_broker_format_with_segment_tokens_and_prices() -> None:
    path = REPO / "configs" / "demo-instruments.csv"
    assert path.read_text().splitlines()[0] == HEADER
    index = load_instruments(path)
    assert len(index) == 86
    for row in index:
        segment = "INDICES" if row.segment == "INDICES" else row.segment.split("-")[0]
        assert segment_of(row.instrument_token) == SEGMENT_IDS[segment], row
        assert row.exchange_token == row.instrument_token >> 8, row
        assert row.last_price > 0, row
    assert {row.symbol: row.instrument_token for row in index if row.segment == "INDICES"} == {
        "NSE:NIFTY 50": 256265,
        "NSE:NIFTY BANK": 260105,
        "NSE:NIFTY IT": 259849,
        "NSE:NIFTY FIN SERVICE": 257801,
        "NSE:INDIA VIX": 264969,
        "BSE:SENSEX": 265,
    }
    weekly = index.select(
        InstrumentFilter(name=("NIFTY",), instrument_type=("CE", "PE"), expiry="nearest"),
        today=TODAY,
    )
    assert {row.expiry for row in weekly} == {date(2026, 12, 1)}
    assert len(weekly) == 12


# Fetching ---------------------------------------------------------------------------------------

CREDENTIAL = Credential("fetchkey1234", "fetchtoken5678")
OLD = HEADER + "\n1,1,OLD,OLD,1.0,,0.0,0.05,1,EQ,NSE,NSE\n"


def test_fetch_replaces_the_file_and_sends_the_kite_headers(tmp_path: Path) -> None:
    target = tmp_path / "instruments.csv"
    target.write_text(OLD)
    with serve_dump() as server:
        server.body = DUMP.encode()
        count = fetch_instruments(server.url + "/", CREDENTIAL, target)
    assert count == 10
    assert target.read_text() == DUMP
    [(path, headers)] = server.requests
    assert path == "/instruments"
    assert headers["X-Kite-Version"] == "3"
    assert headers["Authorization"] == "token fetchkey1234:fetchtoken5678"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instruments.csv"]


def test_fetch_creates_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "instruments.csv"
    with serve_dump() as server:
        server.body = DUMP.encode()
        assert fetch_instruments(server.url, CREDENTIAL, target) == 10
    assert target.read_text() == DUMP


def test_fetch_403_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "instruments.csv"
    target.write_text(OLD)
    with serve_dump() as server:
        server.status = 403
        server.body = b'{"status": "error", "message": "Incorrect `api_key` or `access_token`."}'
        with pytest.raises(InstrumentsError) as caught:
            fetch_instruments(server.url, CREDENTIAL, target)
    assert str(caught.value) == (
        f"{server.url}/instruments refused the request with HTTP 403 (Incorrect `api_key` or "
        "`access_token`): the access token is invalid or expired; put a fresh token in the "
        f"config; {target} left unchanged"
    )
    assert target.read_text() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instruments.csv"]


def test_fetch_cut_connection_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "instruments.csv"
    target.write_text(OLD)
    body = DUMP.encode()
    with serve_dump() as server:
        server.body = body
        server.cut = True
        with pytest.raises(InstrumentsError) as caught:
            fetch_instruments(server.url, CREDENTIAL, target)
    assert str(caught.value) == (
        f"download of {server.url}/instruments was cut short after {len(body) // 2} of "
        f"{len(body)} bytes; {target} left unchanged"
    )
    assert target.read_text() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instruments.csv"]


def test_fetch_rejects_a_body_that_is_not_a_dump(tmp_path: Path) -> None:
    target = tmp_path / "instruments.csv"
    target.write_text(OLD)
    with serve_dump() as server:
        server.body = b"<html>maintenance</html>"
        with pytest.raises(InstrumentsError) as caught:
            fetch_instruments(server.url, CREDENTIAL, target)
    assert str(caught.value) == (
        f"{server.url}/instruments: not an instruments dump: the header lacks "
        + ", ".join(INSTRUMENTS_HEADER)
        + f"; {target} left unchanged"
    )
    assert target.read_text() == OLD


def test_a_failed_fetch_of_a_new_file_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "instruments.csv"
    with serve_dump() as server:
        server.status = 500
        with pytest.raises(InstrumentsError) as caught:
            fetch_instruments(server.url, CREDENTIAL, target)
    assert str(caught.value) == f"{server.url}/instruments answered HTTP 500; nothing written"
    assert list(tmp_path.iterdir()) == []


def test_fetch_network_failure_leaves_the_old_file(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = tmp_path / "instruments.csv"
    target.write_text(OLD)
    with pytest.raises(InstrumentsError) as caught:
        fetch_instruments(f"http://127.0.0.1:{port}", CREDENTIAL, target, timeout_s=5)
    assert str(caught.value) == (
        f"cannot download http://127.0.0.1:{port}/instruments: [Errno 111] Connection refused; "
        f"{target} left unchanged"
    )
    assert target.read_text() == OLD
