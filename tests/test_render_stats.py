"""``kitefan stats`` and ``kitefan distribute`` for people: the renderables, from known data."""

from __future__ import annotations

import io

import pytest
from rich.console import Console, RenderableType

from kitefan.change import ConfigChange, MovedSymbol, PlacedSymbol, SlotCounts
from kitefan.events import ConnState, Gap, KeyState
from kitefan.render.change import change_view
from kitefan.render.stats import (
    DELAY_NOTE,
    format_bytes,
    format_duration,
    never_ticked_table,
    stats_view,
)
from kitefan.stats import ConnectionStats, FeedStats, KeyStats

AT = 1_700_000_000.0


def text_of(renderable: RenderableType, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    output = console.file.getvalue()  # type: ignore[attr-defined]  # the console writes to a StringIO
    assert isinstance(output, str)
    return output


def conn(index: int, **changes: object) -> ConnectionStats:
    values: dict[str, object] = {
        "index": index,
        "state": ConnState.CONNECTED,
        "symbols": 1200,
        "symbols_by_mode": {"ltp": 200, "quote": 600, "full": 400},
        "frames": 5_000,
        "ticks": 1_234_567,
        "bytes": 2_500_000,
        "ticks_per_s": 1200.4,
        "heartbeats": 3,
        "skipped_packets": 0,
        "decode_errors": 0,
        "server_errors": 0,
        "reconnects": 0,
        "drops": 0,
        "orders": 0,
        "last_gap": None,
        "last_frame_age_s": 0.25,
        "uptime_s": 3725.0,
        "never_ticked": 0,
        "exchange_delay_p50_s": 0,
        "exchange_delay_p99_s": 2,
    }
    values.update(changes)
    return ConnectionStats(**values)  # type: ignore[arg-type]  # the fields given, by name


def document() -> dict[str, object]:
    gap = Gap(AT - 70.0, AT - 67.5, (1, 2, 3), "dropped without a close frame")
    stats = FeedStats(
        keys=(
            KeyStats(
                "alpha",
                KeyState.RECONNECTING,
                (
                    conn(0),
                    conn(1, reconnects=2, last_gap=gap, drops=17, never_ticked=3),
                    conn(
                        2,
                        state=ConnState.RECONNECTING,
                        decode_errors=1,
                        server_errors=4,
                        exchange_delay_p50_s=None,
                        exchange_delay_p99_s=None,
                        uptime_s=None,
                    ),
                ),
                orders=0,
            ),
            KeyStats(
                "bravo",
                KeyState.AUTH_FAILED,
                (conn(0, state=ConnState.AUTH_FAILED, symbols=0, symbols_by_mode={}),),
                orders=0,
                message="refused with HTTP 403: the access token is invalid or expired",
            ),
        ),
        updated_at=AT,
        uptime_s=3790.0,
    )
    return stats.as_dict()


@pytest.mark.parametrize(
    ("value", "shown"),
    [(512, "512 B"), (1500, "1.5 kB"), (2_250_000, "2.25 MB"), (1.1e9, "1.10 GB")],
)
def test_bytes(value: int, shown: str) -> None:
    assert format_bytes(int(value)) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (42.9, "42s"), (307, "5m07s"), (11_100, "3h05m"), (187_200, "2d04h")],
)
def test_durations(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


def cells(text: str) -> list[list[str]]:
    """The text's lines, split into words (columns line up by padding, which is not tested)."""
    return [line.split() for line in text.splitlines()]


def test_every_field_of_every_key_and_connection_is_shown_in_80_columns() -> None:
    text = text_of(stats_view(document(), source="/x/kitefan.toml (pid 42)"), width=80)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    # The time of the figures in IST, labelled, whatever the machine's zone (1_700_000_000 is
    # 22:13:20 UTC).
    assert lines[0] == "kitefan stream of /x/kitefan.toml (pid 42), up 1h03m, at 03:43:20 IST"
    assert " ".join(" ".join(lines[1:3]).split()) == (
        "3,600 symbols on 2 keys, 2/4 connections up, 4,802 ticks/s, 4,938,268 ticks, "
        "2 reconnects, 17 dropped"
    )
    rows = cells(text)
    assert [r for r in rows if r in (["connections"], ["traffic"], ["health"])] == [
        ["connections"],
        ["traffic"],
        ["health"],
    ]
    # Per key (its totals) then per connection: state, symbols by mode, uptime, last frame ...
    assert ["key", "conn", "state", "symbols", "full", "quote", "ltp", "uptime", "frame"] in rows
    assert ["alpha", "all", "reconnecting", "3,600", "1,200", "1,800", "600", "0.2s"] in rows
    assert ["0", "connected", "1,200", "400", "600", "200", "1h02m", "0.2s"] in rows
    assert ["2", "reconnecting", "1,200", "400", "600", "200", "-", "0.2s"] in rows
    assert ["bravo", "all", "auth_failed", "0", "0", "0", "0", "0.2s"] in rows
    # ... traffic: ticks, ticks/s, frames, bytes, drops ...
    assert ["key", "conn", "ticks", "ticks/s", "frames", "bytes", "drops"] in rows
    assert ["alpha", "all", "3,703,701", "3,601", "15,000", "7.50", "MB", "17"] in rows
    assert ["1", "1,234,567", "1,200", "5,000", "2.50", "MB", "17"] in rows
    # ... health: reconnects, the last gap, decode and server errors, delay, never ticked.
    assert ["decode", "server", "never"] in rows
    assert ["key", "conn", "reconnects", "last", "gap", "errors", "errors", "delay", "ticked"] in (
        rows
    )
    assert ["alpha", "all", "2", "2.5s,", "68s", "ago", "1", "4", "3"] in rows
    assert ["1", "2", "2.5s,", "68s", "ago", "0", "0", "0/2s", "3"] in rows
    assert ["2", "0", "-", "1", "4", "-", "0"] in rows
    assert "bravo: refused with HTTP 403: the access token is invalid or expired" in text
    flat = " ".join(text.split())
    assert DELAY_NOTE in flat
    assert "1 s resolution (exchange timestamps are whole seconds" in DELAY_NOTE
    assert (
        "never ticked: 3 subscribed symbols have not ticked since they were subscribed; "
        "list them with --never-ticked"
    ) in flat


def test_a_wide_terminal_gets_state_and_traffic_in_one_table() -> None:
    text = text_of(stats_view(document(), source="s", width=140), width=140)
    rows = cells(text)
    assert ["traffic"] not in rows
    assert [
        "0", "connected", "1,200", "400", "600", "200", "1h02m", "0.2s", "1,234,567", "1,200",
        "5,000", "2.50", "MB", "0",
    ] in rows  # fmt: skip


def test_never_ticked_symbols_are_listed_by_name() -> None:
    silent = [
        {
            "instrument_token": 408065,
            "symbol": "NSE:INFY",
            "mode": "quote",
            "key": "alpha",
            "connection": 1,
        },
    ]
    text = text_of(stats_view(document(), source="s", never_ticked=silent))
    rows = cells(text)
    assert ["never", "ticked", "(1)"] in rows
    assert ["symbol", "token", "mode", "key", "conn"] in rows
    assert ["NSE:INFY", "408065", "quote", "alpha", "1"] in rows
    assert "list them with --never-ticked" not in text
    assert text_of(never_ticked_table([])) == "never ticked: every subscribed symbol has ticked\n"


def test_a_change_shows_counts_per_connection_and_names() -> None:
    change = ConfigChange(
        config="/x/kitefan.toml",
        applied=True,
        added=tuple(PlacedSymbol(t, f"NSE:S{t}", "quote", "alpha", 0) for t in range(10)),
        removed=(PlacedSymbol(99, "NSE:OLD", "full", "bravo", 2),),
        moved=(MovedSymbol(7, "NSE:MOVED", "ltp", ("bravo", 1), ("alpha", 0)),),
        connections=(
            SlotCounts("alpha", 0, 11, 0, 0),
            SlotCounts("bravo", 1, 0, 1, 0),
            SlotCounts("bravo", 2, 0, 1, 0),
        ),
        tokens=("bravo",),
    )
    text = text_of(change_view(change, headline="applied it"), width=120)
    lines = text.splitlines()
    assert lines[0] == "applied it"
    assert lines[1] == (
        "10 added, 1 removed, 1 moved, 0 mode changes (11 subscribes, 2 unsubscribes); "
        "new access token for bravo"
    )
    rows = cells(text)
    assert ["key", "conn", "subscribe", "unsubscribe", "mode", "changes"] in rows
    assert ["alpha", "0", "11", "0", "0"] in rows
    assert ["bravo", "1", "0", "1", "0"] in rows
    assert ["total", "3", "11", "2", "0"] in rows
    assert (
        "added (10): NSE:S0 (quote, alpha#0), NSE:S1 (quote, alpha#0), NSE:S2 (quote, alpha#0)"
    ) in text
    assert text.count("NSE:S") == 8  # the first 8 of each kind, then how many more
    assert "NSE:S7 (quote, alpha#0), and 2 more" in text
    assert "removed (1): NSE:OLD (full, bravo#2)" in text
    assert "moved (1): NSE:MOVED bravo#1→alpha#0" in text
    assert lines[-1] == "new access token for: bravo"


def share_document(redis: str = "connected") -> dict[str, object]:
    def node(name: str, streaming: list[str], up: int, rate: float, ticks: int) -> object:
        return {
            "share": {"node": name, "streaming": streaming},
            "totals": {
                "connections_up": up,
                "connections": 2 * len(streaming),
                "ticks_per_s": rate,
                "ticks": ticks,
            },
        }

    return {
        "group": "3f2a9c1d00aa11bb",
        "node": "vm:101",
        "lease_s": 10.0,
        "redis": redis,
        "last_error": "Connection refused" if redis != "connected" else "",
        "members": ["vm:101", "vm:102"],
        "holders": {"alpha": "vm:101", "bravo": "vm:102", "charlie": None},
        "nodes": [
            node("vm:101", ["alpha"], 2, 1200.4, 12_345),
            node("vm:102", ["bravo"], 1, 80.0, 678),
        ],
    }


def test_a_shared_stream_shows_every_process_of_its_group_and_the_keys_nobody_holds() -> None:
    stats = FeedStats(
        keys=(KeyStats("alpha", KeyState.CONNECTED, (conn(0),), 0),), updated_at=AT, uptime_s=5.0
    )
    document = {**stats.as_dict(), "share": share_document()}
    text = text_of(stats_view(document, source="/x/shared.toml (pid 101)"), width=100)
    assert (
        "sharing keys as vm:101 in group 3f2a9c1d00aa11bb (lease 10 s, Redis connected): "
        "2 processes\n"
    ) in text
    rows = [line.rstrip() for line in text.splitlines()]
    assert " process         keys    connections   ticks/s    ticks" in rows
    assert " vm:101 (this)   alpha           2/2     1,200   12,345" in rows
    assert " vm:102          bravo           1/2        80      678" in rows
    assert "held by no process: charlie" in rows
    down = text_of(stats_view({**document, "share": share_document("down")}, source="x"), 140)
    assert "(lease 10 s, Redis down): 2 processes (Connection refused)\n" in down
