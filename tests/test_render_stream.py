"""The stream's output forms: JSON lines, CSV, and the dashboard, from known events."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.live import Live
from rich.text import Text

from kitefan.codec import encode_frame, packet_at, packet_runs, run_columns
from kitefan.events import (
    ConnState,
    ErrorEvent,
    Event,
    Gap,
    KeyState,
    OrderEvent,
    Status,
    StatusEvent,
    TickBatch,
)
from kitefan.models import OrderUpdate, Tick
from kitefan.render.dashboard import (
    BoardView,
    Screen,
    SortBy,
    TickBoard,
    dashboard,
    event_text,
    format_age,
    plural,
)
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
    events: list[Event] = [
        StatusEvent("bravo", 1, Status.CONNECTED, "reconnected after 2.5 s", AT, gap),
        OrderEvent("alpha", 0, OrderUpdate({"order_id": "1", "status": "COMPLETE"}), AT),
        ErrorEvent("alpha", 0, "Error parsing instrument tokens", AT),
        StatusEvent("bravo", None, Status.AUTH_FAILED, "refused with HTTP 403", AT),
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
    board = TickBoard([408065, 268803, 999], name_of)
    board.update(batch())
    # By name: CDS:USDINR26DECFUT, NSE:INFY; 999 has not ticked.
    assert [row.tick.instrument_token for row in board.rows(10)] == [268803, 408065]
    events = [StatusEvent("bravo", None, Status.AUTH_FAILED, "refused with HTTP 403", AT)]
    view = dashboard(
        board, _stats(), name_of, events, now=AT + 1.0, title="kitefan", width=160, height=40
    )
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(view)
    text = console.file.getvalue()  # type: ignore[attr-defined]  # the console writes to a StringIO
    assert "kitefan  2 symbols on 2 keys, 1/1 connections up, 2 ticks/s, 2 ticks" in text
    assert "ticks by symbol: +1 more, 1 yet to tick (--sort, --watch choose)" in text
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
    assert "events (IST)" in text
    assert "10:15:32 bravo auth_failed: refused with HTTP 403" in text
    # A narrow terminal stacks the tables instead of putting them side by side.
    narrow = Console(file=io.StringIO(), width=100, color_system=None)
    narrow.print(dashboard(board, _stats(), name_of, [], now=AT, title="k", width=100, height=40))
    assert "NSE:INFY" in narrow.file.getvalue()  # type: ignore[attr-defined]  # the console writes to a StringIO


def test_the_dashboard_styles_exactly_the_cells_it_colours() -> None:
    board = TickBoard([408065, 268803], name_of)
    board.update(batch())
    screen = dashboard(
        board, _stats(), name_of, [], now=AT + 1.0, title="kitefan", width=160, height=40
    )
    joined = Text("\n").join(screen.lines)  # each line's own style a span too
    styled = [
        (joined.plain[s.start : s.end], str(s.style)) for s in joined.spans if s.end > s.start
    ]
    # the change, each key's state (in the keys and the distribution), the totals' label
    assert ("+1.13%", "green") in styled
    assert styled.count(("connected", "green")) == 2
    assert styled.count(("auth_failed", "bold red")) == 2
    assert ("all", "bold") in styled
    # the depth: orders, quantity and price of the bids green, of the asks red, level by level
    depth = styled[styled.index(("depth NSE:INFY", "bold")) + 3 :][:6]
    assert depth == [
        ("3", "green"),
        ("120", "green"),
        ("1,512.30", "green"),
        ("1,512.35", "red"),
        ("50", "red"),
        ("1", "red"),
    ]
    # every styled piece starts and ends on its cell: none takes the padding with it
    assert all(text == text.strip() for text, style in styled if style in ("green", "red"))


@pytest.mark.parametrize(("width", "height"), [(200, 50), (100, 40), (60, 24)])
def test_the_screen_draws_the_bytes_of_its_lines_joined_in_one_text(
    width: int, height: int
) -> None:
    # What kitefan stream draws (a Live on a colour terminal), against the one Text of every
    # line that dashboard() gave before Screen.
    board = _many()
    board.update(batch())
    events = [StatusEvent("bravo", None, Status.AUTH_FAILED, "refused with HTTP 403", AT)]
    screen = dashboard(
        board, _stats(), name_of, events, now=AT + 1.0, title="kitefan", width=width, height=height
    )
    joined = Text("\n").join(screen.lines)
    joined.no_wrap = True

    def drawn(renderable: Screen | Text) -> str:
        out = io.StringIO()
        console = Console(
            file=out, width=width, height=height, force_terminal=True, color_system="truecolor"
        )
        with Live(console=console, auto_refresh=False, redirect_stdout=False) as live:
            live.update(renderable, refresh=True)
        return out.getvalue()

    assert drawn(screen) == drawn(joined)
    assert "\x1b[32m" in drawn(screen)  # in colour: a state or a change is green
    assert screen.plain == joined.plain


def test_ages() -> None:
    assert format_age(None) == "-"
    assert format_age(0.44) == "0.4s"
    assert format_age(-0.1) == "0.0s"
    assert format_age(42) == "42s"
    assert format_age(600) == "10m"


def quote(token: int, last: int, close: int, volume: int) -> Tick:
    """A quote tick (prices in paise)."""
    return Tick(44, (token, last, 1, last, volume, 10, 20, close, last, last, close))


def ltp(token: int, last: int) -> Tick:
    return Tick(8, (token, last))


A, B, C, D = (((1000 + i) << 8) | 1 for i in range(4))
SYMBOLS = {A: "NSE:AAA", B: "NSE:BBB", C: "NSE:CCC", D: "NSE:DDD"}


def symbol_of(token: int) -> str:
    return SYMBOLS.get(token, str(token))


def shown(board: TickBoard, limit: int = 10) -> list[str]:
    return [symbol_of(token) for token in board.chosen(limit)]


def test_frames_are_read_in_runs_of_one_length_without_decoding() -> None:
    ticks = [quote(A, 10_100, 10_000, 5), quote(B, 9_000, 10_000, 7), ltp(C, 3), quote(D, 1, 2, 3)]
    frame = encode_frame(ticks)
    # 44-byte packets at 4 and 50, an 8-byte one at 96, a 44-byte one at 106.
    assert packet_runs(frame) == [(4, 44, 2), (96, 8, 1), (106, 44, 1)]
    assert run_columns(frame, (4, 44, 2), (0, 1, 4, 10)) == [
        [A, B],
        [10_100, 9_000],
        [5, 7],
        [10_000, 10_000],
    ]
    assert run_columns(frame, (106, 44, 1), (0, 4, 10)) == [[D], [3], [2]]
    # A long run is read with strided slices, a short one with a struct: the same values.
    many = [quote(((3000 + i) << 8) | 1, 100 + i, 200 + i, 7 * i) for i in range(70)]
    long_frame = encode_frame(many)
    assert packet_runs(long_frame) == [(4, 44, 70)]
    expected = [[t.values[f] for t in many] for f in (0, 1, 4, 10)]
    assert run_columns(long_frame, (4, 44, 70), (0, 1, 4, 10)) == expected
    assert run_columns(long_frame, (4, 44, 10), (0, 1, 4, 10)) == [c[:10] for c in expected]
    with pytest.raises(ValueError, match="in packet order"):
        run_columns(frame, (4, 44, 2), (10, 0))
    assert [packet_at(frame, offset) for offset in (4, 50, 96, 106)] == ticks
    assert packet_runs(FRAME_A) == [(4, 184, 1), (190, 8, 1)]
    assert packet_runs(b"\x00") == packet_runs(b"\x00\x00") == []
    with pytest.raises(ValueError, match="field 2 is not an unsigned 4-byte field of 8-byte"):
        run_columns(frame, (96, 8, 1), (2,))
    board = TickBoard([A, B, C, D], symbol_of)
    live = TickBatch("alpha", 1, frame, 0.0, AT)
    board.update(live)
    assert not live.decoded  # the board read what it needs from the bytes
    row = board.latest(C)
    assert row is not None
    assert (row.tick, row.key, row.connection, row.received_wall) == (ticks[2], "alpha", 1, AT)


def sorted_board(sort: SortBy, watch: tuple[int, ...] = ()) -> TickBoard:
    board = TickBoard([A, B, C, D], symbol_of, sort=sort, watch=watch)
    # A +1%, B -10%, C +5%; D in LTP mode has no change or volume.
    board.update(TickBatch.of_ticks("alpha", 0, [quote(A, 10_100, 10_000, 500), ltp(D, 7)]))
    board.update(TickBatch.of_ticks("alpha", 0, [quote(B, 9_000, 10_000, 100)]))
    board.update(TickBatch.of_ticks("alpha", 0, [quote(C, 10_500, 10_000, 300)] * 3))
    return board


def test_the_sorts_choose_movers_volume_activity_or_names_after_the_watched() -> None:
    assert shown(sorted_board(SortBy.MOVERS)) == ["NSE:BBB", "NSE:CCC", "NSE:AAA", "NSE:DDD"]
    assert shown(sorted_board(SortBy.MOVERS), 2) == ["NSE:BBB", "NSE:CCC"]
    assert shown(sorted_board(SortBy.VOLUME)) == ["NSE:AAA", "NSE:CCC", "NSE:BBB", "NSE:DDD"]
    assert shown(sorted_board(SortBy.ACTIVE))[0] == "NSE:CCC"  # three ticks
    assert shown(sorted_board(SortBy.SYMBOL)) == ["NSE:AAA", "NSE:BBB", "NSE:CCC", "NSE:DDD"]
    watched = sorted_board(SortBy.SYMBOL, watch=(D, B))
    assert shown(watched, 3) == ["NSE:DDD", "NSE:BBB", "NSE:AAA"]
    watched = sorted_board(SortBy.MOVERS, watch=(D, B))
    assert shown(watched) == ["NSE:DDD", "NSE:BBB", "NSE:CCC", "NSE:AAA"]
    # A symbol that falls back to LTP mode has no change to rank it by any more.
    board = sorted_board(SortBy.MOVERS)
    board.update(TickBatch.of_ticks("alpha", 0, [ltp(B, 9_100)]))
    assert shown(board) == ["NSE:CCC", "NSE:AAA", "NSE:BBB", "NSE:DDD"]


def test_the_board_follows_the_plan_added_symbols_appear_removed_ones_go() -> None:
    board = TickBoard([A, B], symbol_of)
    board.update(TickBatch.of_ticks("alpha", 0, [quote(A, 1, 1, 1), quote(B, 1, 1, 1)]))
    assert (len(board), board.ticked, shown(board)) == (2, 2, ["NSE:AAA", "NSE:BBB"])
    board.follow([B, C], symbol_of)  # kitefan distribute: A removed, C added
    assert (len(board), board.ticked, shown(board)) == (2, 1, ["NSE:BBB"])
    assert board.latest(A) is None
    # A frame of the old plan still in flight does not bring A back.
    board.update(TickBatch.of_ticks("alpha", 0, [quote(A, 2, 1, 1), quote(C, 2, 1, 1)]))
    board.update(TickBatch.of_ticks("alpha", 0, [quote(A, 2, 1, 1), ltp(C, 3)]))
    assert (board.ticked, shown(board)) == (2, ["NSE:BBB", "NSE:CCC"])
    assert board.latest(A) is None


def _screen(board: TickBoard, events: list[StatusEvent], width: int, height: int) -> list[str]:
    view = dashboard(
        board, _stats(), name_of, events, now=AT + 1.0, title="kitefan", width=width, height=height
    )
    console = Console(file=io.StringIO(), width=width, height=height, color_system=None)
    console.print(view)
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined,no-any-return]  # the console writes to a StringIO


def _many() -> TickBoard:
    tokens = [((2000 + i) << 8) | 1 for i in range(64)]
    board = TickBoard(tokens, name_of)
    board.update(
        TickBatch.of_ticks(
            "charlie",
            2,
            [quote(t, 2_638_745, 2_600_000, 2_274_812_345) for t in tokens[:60]],
            received_wall=AT,
        )
    )
    return board


def test_a_small_terminal_keeps_the_header_key_states_and_latest_events_with_fewer_rows() -> None:
    events = [StatusEvent("bravo", 0, Status.CONNECTED, "connected", AT + i) for i in range(10)]
    lines = _screen(_many(), events, 80, 24)
    assert len(lines) <= 24
    assert max(len(line) for line in lines) <= 80
    assert lines[0].startswith("kitefan  2 symbols on 2 keys")
    text = "\n".join(lines)
    assert "…" not in text and "..." not in text
    rows = [line for line in lines if re.match(r"5\d{5} ", line)]  # the tokens 512001, ...
    assert 5 <= len(rows) < 60
    assert f"ticks by symbol: +{64 - len(rows)} more, 4 yet to tick" in text
    assert "26,387.45" in rows[0]
    assert any(line.split()[:2] == ["bravo", "auth_failed"] for line in lines)  # key states
    assert lines[-4:] == [
        "events (IST)    Ctrl-C to stop",
        "10:15:39 bravo#0 connected",
        "10:15:40 bravo#0 connected",
        "10:15:41 bravo#0 connected",
    ]


def test_a_big_terminal_shows_every_value_whole_and_says_how_many_are_hidden() -> None:
    lines = _screen(_many(), [], 200, 50)
    assert len(lines) <= 50
    text = "\n".join(lines)
    assert "…" not in text
    rows = [line for line in lines if re.match(r"5\d{5} ", line)]
    assert len(rows) == 44
    assert rows[0].split()[:8] == [
        "512001",
        "26,387.45",
        "+1.49%",
        "2,274,812,345",
        "-",
        "-",
        "1.0s",
        "charlie#2",
    ]
    assert "ticks by symbol: +20 more, 4 yet to tick" in text
    for title in ("keys", "distribution"):
        assert any(line.rstrip().endswith(title) for line in lines)
    header = next(line for line in lines if line.startswith("symbol "))
    assert header.split()[:8] == ["symbol", "ltp", "chg", "volume", "bid", "ask", "age", "key"]


def test_event_wording_and_plurals() -> None:
    assert event_text(StatusEvent("bravo", 0, Status.CONNECTED, "connected", AT)).plain == (
        "10:15:32 bravo#0 connected"
    )
    gap = Gap(AT - 1, AT, (1,), "dropped")
    assert event_text(StatusEvent("bravo", 1, Status.CONNECTED, "reconnected", AT, gap)).plain == (
        "10:15:32 bravo#1 connected: reconnected (gap 1.0s, 1 symbol)"
    )
    assert [plural(1, "key"), plural(0, "key"), plural(27_000, "symbol")] == [
        "1 key",
        "0 keys",
        "27,000 symbols",
    ]


def test_a_ranked_sort_chooses_again_once_a_second_when_given_the_time() -> None:
    board = sorted_board(SortBy.MOVERS)
    assert [symbol_of(t) for t in board.chosen(2, now=100.0)] == ["NSE:BBB", "NSE:CCC"]
    board.update(TickBatch.of_ticks("alpha", 0, [quote(A, 13_000, 10_000, 1)]))  # A +30%
    assert [symbol_of(t) for t in board.chosen(2, now=100.9)] == ["NSE:BBB", "NSE:CCC"]
    assert [symbol_of(t) for t in board.chosen(2, now=101.0)] == ["NSE:AAA", "NSE:BBB"]
    assert [symbol_of(t) for t in board.chosen(2)] == ["NSE:AAA", "NSE:BBB"]  # no time: now
    row = board.rows(1, now=101.5)[0]
    assert row.tick.last_price == 130.0  # the values come from the latest tick


@pytest.mark.parametrize(("width", "height"), [(200, 50), (100, 40), (60, 24)])
@pytest.mark.parametrize("sort", list(SortBy))
def test_a_view_of_the_board_draws_the_same_screen(sort: SortBy, width: int, height: int) -> None:
    # The stream lays the dashboard out in a thread from a view taken on the loop.
    tokens = [((2000 + i) << 8) | 1 for i in range(64)]
    board = TickBoard(tokens, name_of, sort=sort, watch=(tokens[9],), depth=tokens[3])
    board.update(
        TickBatch.of_ticks(
            "charlie",
            2,
            [
                quote(t, 2_638_745 + 1000 * i, 2_600_000, 2_274_812 * i)
                for i, t in enumerate(tokens[:60])
            ],
            received_wall=AT,
        )
    )

    def screen(of: TickBoard | BoardView) -> str:
        view = dashboard(
            of, _stats(), name_of, [], now=AT + 1.0, title="kitefan", width=width, height=height
        )
        console = Console(file=io.StringIO(), width=width, height=height, color_system=None)
        console.print(view)
        return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]  # a StringIO

    seen = board.view(height, AT + 1.0)
    assert (len(seen), seen.ticked, seen.sort, seen.watch) == (64, 60, sort, (tokens[9],))
    assert screen(seen) == screen(board)
    assert " more" in screen(seen)  # rows were left out: the view holds what a screen shows
