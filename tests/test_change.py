"""ConfigChange: a plan diff named and placed, its summary, and its JSON form both ways."""

from __future__ import annotations

from dataclasses import replace

from app_configs import app_config, key

from kitefan.change import ConfigChange, MovedSymbol, PlacedSymbol, SlotCounts
from kitefan.config import AppConfig, SymbolSpec
from kitefan.models import Mode
from kitefan.planner import capacities, diff, plan, plan_config

SECRET_KEY = "SENTINEL-API-KEY-c0ffee"
SECRET_TOKEN = "SENTINEL-TOKEN-c0ffee"


def config(symbols: list[SymbolSpec], token: str = SECRET_TOKEN) -> AppConfig:
    return app_config(
        [key("a", SECRET_KEY + "a", SECRET_TOKEN), key("b", SECRET_KEY + "b", token)],
        symbols,
        url="ws://127.0.0.1:1",
        max_connections_per_key=2,
        max_symbols_per_connection=3,
    )


def spec(token: int, mode: Mode = Mode.QUOTE, key: str | None = None) -> SymbolSpec:
    return SymbolSpec(token, f"NSE:S{token}", mode, key)


def change_between(before: AppConfig, after: AppConfig, *, applied: bool = True) -> ConfigChange:
    old = plan_config(before)
    new = plan(
        after.symbols,
        capacities(after),
        strategy=after.strategy,
        max_symbols_per_connection=after.max_symbols_per_connection,
        previous=old,
    )
    return ConfigChange.from_diff(
        diff(old, new), before, after, config="/x/kitefan.toml", applied=applied
    )


def test_added_removed_moved_and_mode_changes_are_named_and_placed() -> None:
    before = config([spec(1), spec(2), spec(3), spec(4)])
    # Round-robin over a then b, each over its two connections: 1→a#0, 2→b#0, 3→a#1, 4→b#1.
    old = plan_config(before)
    assert [old.where(t) for t in (1, 2, 3, 4)] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    after = config([spec(1, Mode.FULL), spec(2, key="a"), spec(4), spec(5, Mode.LTP)])
    change = change_between(before, after)
    # 2, now pinned to a, moves to a#0; 5 takes the room 3 left on a#1.
    assert change.added == (PlacedSymbol(5, "NSE:S5", "ltp", "a", 1),)
    assert change.removed == (PlacedSymbol(3, "NSE:S3", "quote", "a", 1),)
    assert change.moved == (MovedSymbol(2, "NSE:S2", "quote", ("b", 0), ("a", 0)),)
    assert change.mode_changed == (PlacedSymbol(1, "NSE:S1", "full", "a", 0),)
    assert change.connections == (
        SlotCounts("a", 0, 1, 0, 1),
        SlotCounts("a", 1, 1, 1, 0),
        SlotCounts("b", 0, 0, 1, 0),
    )
    assert (change.subscribe_count, change.unsubscribe_count, change.mode_change_count) == (
        2,
        2,
        1,
    )
    assert change.tokens == ()
    assert change.summary() == (
        "1 added, 1 removed, 1 moved, 1 mode changes (2 subscribes, 2 unsubscribes)"
    )


def test_a_new_token_is_named_by_key_id_only() -> None:
    before = config([spec(1)])
    after = config([spec(1)], token="SENTINEL-TOKEN-fresh")
    change = change_between(before, after)
    assert change.tokens == ("b",)
    assert not change.connections
    assert not change.is_empty
    assert change.summary() == (
        "0 added, 0 removed, 0 moved, 0 mode changes (0 subscribes, 0 unsubscribes); "
        "new access token for b"
    )
    text = repr(change) + str(change.as_dict())
    assert "SENTINEL" not in text


def test_no_change_says_so() -> None:
    before = config([spec(1), spec(2)])
    change = change_between(before, before, applied=False)
    assert change.is_empty
    assert change.summary() == "nothing to change"
    assert change.as_dict() == {
        "config": "/x/kitefan.toml",
        "applied": False,
        "subscribe": 0,
        "unsubscribe": 0,
        "mode_changes": 0,
        "added": [],
        "removed": [],
        "moved": [],
        "mode_changed": [],
        "connections": [],
        "tokens": [],
        "warnings": [],
    }


def test_the_json_form_reads_back_exactly() -> None:
    before = config([spec(1), spec(2), spec(3), spec(4)])
    after = replace(
        config([spec(1, Mode.FULL), spec(2, key="a"), spec(5)], token="fresh"),
        warnings=("5 is listed 2 times",),
    )
    change = change_between(before, after)
    document = change.as_dict()
    assert document["moved"] == [
        {
            "instrument_token": 2,
            "symbol": "NSE:S2",
            "mode": "quote",
            "from": {"key": "b", "connection": 0},
            "to": {"key": "a", "connection": 0},
        }
    ]
    assert document["warnings"] == ["5 is listed 2 times"]
    assert ConfigChange.from_dict(document) == change
