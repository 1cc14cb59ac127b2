"""The stream's output forms: JSON lines, CSV, and the dashboard, from known events."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rich.console import Console

from kitefan.events import (
    ConnState,
    ErrorEvent,
    Gap,
    KeyState,
    OrderEvent,
    StatusEvent,
    TickBatch,
)
from kitefan.models import OrderUpdate
from kitefan.render.dashboard import TickBoard, dashboard, format_age
from kitefan.render.records import CSV_COLUMNS, csv_header, csv_rows, json_lines
from kitefan.stats import ConnectionStats, FeedStats, KeyStats

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FRAME_A = bytes.fromhex("".join((FIXTURES / "frame_a.hex").read_text().split()))
NAMES = {408065: "NSE:INFY", 268803: "CDS:USDINR26DECFUT"}
AT = 1700023532.25  # 2023-11-15 10:15:32.250 IST


def name_of(token: int) -> str:
    return NAMES.get(token, str(token))


def batch() -> TickBatch:
    return TickBatch("alpha", 2, FRAME_A, 123.0, AT)


def test_tick_lines_carry_key_connection_symbol_and_the_official_fields() -> None:
    lines = json_lines([batch()], name_of).splitlines()
    full, ltp = (json.loads(line) for line in lines)
    assert ltp == {
        "type": "tick",
        "key": "alpha",
        "connection": 2,
        "symbol": "CDS:USDINR26DECFUT",
        "tradable": True,
        "mode": "ltp",
        "instrument_token": 268803,
        "last_price": 83.2475,
    }
    assert list(full)[:4] == ["type", "key", "connection", "symbol"]
    assert full["symbol"] == "NSE:INFY"
    assert full["last_trade_time"] == "2023-11-15T10:15:30+05:30"
    assert full["exchange_timestamp"] == "2023-11-15T10:15:31+05:30"
    assert full["depth"]["sell"][4] == {"quantity": 900, "price": 1512.55, "orders": 9}
    assert full["change"] == 1.126713473754591


def test_status_order_and_error_lines() -> None:
    gap = Gap(AT - 2.5, AT, (408065, 268803), "dropped without a close frame")
    events = [
        StatusEvent("bravo", 1, "connected", "reconnected after 2.5 s", AT, gap),
        OrderEvent("alpha", 0, OrderUpdate({"order_id": "1", "status": "COMPLETE"}), AT),
        ErrorEvent("alpha", 0, "Error parsing instrument tokens", AT),
        StatusEvent("bravo", None, KeyState.AUTH_FAILED, "refused with HTTP 403", AT),
    ]
    records = [json.loads(line) for line in json_lines(events, name_of).splitlines()]
    assert records == [
        {
            "type": "status",
            "key": "bravo",
            "connection": 1,
            "at": "2023-11-15T10:15:32.250+05:30",
            "state": "connected",
            "message": "reconnected after 2.5 s",
            "gap": {
                "start": "2023-11-15T10:15:29.750+05:30",
                "end": "2023-11-15T10:15:32.250+05:30",
                "seconds": 2.5,
                "symbols": 2,
                "reason": "dropped without a close frame",
            },
        },
        {
            "type": "order",
            "key": "alpha",
            "connection": 0,
            "at": "2023-11-15T10:15:32.250+05:30",
            "data": {"order_id": "1", "status": "COMPLETE"},
        },
        {
            "type": "error",
            "key": "alpha",
            "connection": 0,
            "at": "2023-11-15T10:15:32.250+05:30",
            "message": "Error parsing instrument tokens",
        },
        {
            "type": "status",
            "key": "bravo",
            "connection": None,
            "at": "2023-11-15T10:15:32.250+05:30",
            "state": "auth_failed",
            "message": "refused with HTTP 403",
        },
    ]


def test_no_events_no_text() -> None:
    assert json_lines([], name_of) == ""
    assert csv_rows([], name_of) == ""


def test_csv_rows_under_the_header() -> None:
    text = csv_header() + csv_rows([batch(), ErrorEvent("a", 0, "x", AT)], name_of)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 2
    full, ltp = rows
    assert full["received_at"] == "2023-11-15T10:15:32.250+05:30"
    assert (full["key"], full["connection"], full["symbol"]) == ("alpha", "2", "NSE:INFY")
    assert (full["last_price"], full["open"], full["close"]) == ("1512.35", "1500.0", "1495.5")
    assert (full["bid_price"], full["bid_quantity"]) == ("1512.3", "120")
    assert (full["ask_price"], full["ask_quantity"]) == ("1512.35", "50")
    assert full["exchange_timestamp"] == "2023-11-15T10:15:31+05:30"
    assert (ltp["mode"], ltp["last_price"], ltp["volume_traded"], ltp["open"]) == (
        "ltp",
        "83.2475",
        "",
        "",
    )


def _stats() -> FeedStats:
    conn = ConnectionStats(
        index=0,
        state=ConnState.CONNECTED,
        symbols=2,
        symbols_by_mode={"ltp": 1, "quote": 0, "full": 1},
        frames=3,
        ticks=2,
        bytes=198,
        ticks_per_s=2.0,
        heartbeats=0,
        skipped_packets=0,
        decode_errors=0,
        server_errors=0,
        reconnects=0,
        drops=0,
        orders=0,
        last_gap=None,
        last_frame_age_s=0.5,
        uptime_s=3.0,
        never_ticked=0,
        exchange_delay_p50_s=1,
        exchange_delay_p99_s=1,
    )
    return FeedStats(
        keys=(
            KeyStats("alpha", KeyState.CONNECTED, (conn,), orders=0),
            KeyStats("bravo", KeyState.AUTH_FAILED, (), orders=0),
        ),
        updated_at=AT,
        uptime_s=3.0,
    )


def test_the_dashboard_shows_ticks_depth_distribution_keys_and_events() -> None:
    board = TickBoard([408065, 268803, 999])
    board.update(batch())
    assert [row.tick.instrument_token for row in board.rows(10)] == [408065, 268803]
    events = [StatusEvent("bravo", None, "auth_failed", "refused with HTTP 403", AT)]
    view = dashboard(
        board, _stats(), name_of, events, now=AT + 1.0, title="kitefan", width=160, height=40
    )
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(view)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "kitefan  2 symbols on 2 keys, 1/1 connections up, 2 ticks/s, 2 ticks" in text
    assert "NSE:INFY" in text
    assert "1,512.35" in text
    assert "+1.13%" in text
    assert "4,821,377" in text
    assert "83.2475" in text  # currencies in four decimals
    assert "1.0s" in text
    assert "alpha#2" in text
    assert "depth NSE:INFY" in text
    assert "1,512.10" in text  # the fifth bid
    assert "auth_failed" in text
    assert "10:15:32 bravo auth_failed: refused with HTTP 403" in text
    # A narrow terminal stacks the tables instead of putting them side by side.
    narrow = Console(file=io.StringIO(), width=100, color_system=None)
    narrow.print(dashboard(board, _stats(), name_of, [], now=AT, title="k", width=100, height=40))
    assert "NSE:INFY" in narrow.file.getvalue()  # type: ignore[attr-defined]


def test_ages() -> None:
    assert format_age(None) == "-"
    assert format_age(0.44) == "0.4s"
    assert format_age(-0.1) == "0.0s"
    assert format_age(42) == "42s"
    assert format_age(600) == "10m"
