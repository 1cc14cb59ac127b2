"""The distributor: exact layouts, errors with their numbers, incremental plans, failover, diffs,
and the invariants every plan keeps (hypothesis)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings, strategies as st

from kitefan.config import Strategy, SymbolSpec
from kitefan.errors import PlanError
from kitefan.models import Mode
from kitefan.planner import (
    ConnectionPlan,
    KeyCapacity,
    KeyPlan,
    Move,
    Plan,
    PlanDiff,
    SlotChange,
    diff,
    plan,
)

RR, LL, MANUAL = Strategy.ROUND_ROBIN, Strategy.LEAST_LOADED, Strategy.MANUAL


def spec(token: int, mode: Mode = Mode.QUOTE, key: str | None = None) -> SymbolSpec:
    return SymbolSpec(token, f"S{token}", mode, key)


def specs(tokens: range | Sequence[int], key: str | None = None) -> list[SymbolSpec]:
    return [spec(t, key=key) for t in tokens]


def layout(p: Plan, *, unplaced: Sequence[int] = ()) -> dict[str, list[list[int]]]:
    """Each key's connections as lists of tokens (a missing index shows as an empty list).

    Also checks that every symbol is placed once, except the ``unplaced`` ones.
    """
    assert [s.token for s in p.unplaced] == list(unplaced)
    tokens = [s.token for _, c in p.slots() for s in c.symbols]
    assert len(tokens) == len(set(tokens))
    out: dict[str, list[list[int]]] = {}
    for key in p.keys:
        rows: list[list[int]] = []
        for connection in key.connections:
            rows.extend([] for _ in range(connection.index - len(rows)))
            rows.append([s.token for s in connection.symbols])
        out[key.key_id] = rows
    return out


def caps(*pairs: tuple[str, int]) -> list[KeyCapacity]:
    return [KeyCapacity(key_id, n) for key_id, n in pairs]


# Exact layouts ----------------------------------------------------------------------------------


def test_round_robin_deals_to_keys_then_to_their_connections_in_turn() -> None:
    p = plan(
        specs(range(1, 8)), caps(("a", 2), ("b", 2)), strategy=RR, max_symbols_per_connection=9
    )
    assert layout(p) == {"a": [[1, 5], [3, 7]], "b": [[2, 6], [4]]}
    assert p == Plan(
        RR,
        (
            KeyPlan(
                "a", (ConnectionPlan(0, (spec(1), spec(5))), ConnectionPlan(1, (spec(3), spec(7))))
            ),
            KeyPlan("b", (ConnectionPlan(0, (spec(2), spec(6))), ConnectionPlan(1, (spec(4),)))),
        ),
        9,
        tuple(caps(("a", 2), ("b", 2))),
    )
    assert (p.symbol_count, p.connection_count, p.capacity, p.spare) == (7, 4, 36, 29)
    assert p.where(6) == ("b", 0)
    assert p.where(99) is None


def test_round_robin_passes_over_full_keys_and_connections() -> None:
    p = plan(
        specs(range(1, 7)), caps(("a", 1), ("b", 3)), strategy=RR, max_symbols_per_connection=2
    )
    assert layout(p) == {"a": [[1, 3]], "b": [[2, 6], [4], [5]]}


def test_a_key_with_nothing_to_stream_has_no_connections() -> None:
    p = plan(specs([1]), caps(("a", 3), ("b", 3)), strategy=RR, max_symbols_per_connection=5)
    assert p.keys == (KeyPlan("a", (ConnectionPlan(0, (spec(1),)),)), KeyPlan("b", ()))


def test_least_loaded_fills_the_key_with_the_most_room() -> None:
    symbols = specs([1, 2, 3], key="a") + specs([4, 5, 6, 7, 8])
    p = plan(symbols, caps(("a", 2), ("b", 1)), strategy=LL, max_symbols_per_connection=5)
    # Pins 1-3 go to a's emptiest connections. Then a has room 7 and b 5: 4 and 5 go to a;
    # at 5 each, the tie goes to a (the earlier key); then b (5 > 4); then a again (tie).
    assert layout(p) == {"a": [[1, 3, 5, 8], [2, 4, 6]], "b": [[7]]}


def test_manual_places_pins_in_turn_on_their_key() -> None:
    symbols = specs([1, 2, 3, 4], key="b") + specs([5], key="a")
    p = plan(symbols, caps(("a", 3), ("b", 3)), strategy=MANUAL, max_symbols_per_connection=5)
    assert layout(p) == {"a": [[5]], "b": [[1, 4], [2], [3]]}


def test_a_keys_symbols_in_dealing_order_replay_as_pins_to_the_same_connections() -> None:
    p = plan(specs(range(1, 8)), caps(("a", 3)), strategy=RR, max_symbols_per_connection=5)
    assert layout(p) == {"a": [[1, 4, 7], [2, 5], [3, 6]]}
    key = p.keys[0]
    assert [s.token for s in key.dealt()] == [1, 2, 3, 4, 5, 6, 7]
    pins = [spec(s.token, key="a") for s in key.dealt()]
    again = plan(pins, caps(("a", 3)), strategy=MANUAL, max_symbols_per_connection=5)
    assert layout(again) == layout(p)
    assert KeyPlan("b", ()).dealt() == ()


def test_pins_are_honoured_under_every_strategy() -> None:
    symbols = specs(range(1, 11)) + specs([11, 12], key="b")
    for strategy in (RR, LL):
        p = plan(symbols, caps(("a", 1), ("b", 1)), strategy=strategy, max_symbols_per_connection=6)
        assert p.where(11)[0] == p.where(12)[0] == "b"  # type: ignore[index]  # a planned token: where() is not None
        assert p.symbol_count == 12


# Errors ---------------------------------------------------------------------------------------


def test_over_capacity_says_asked_fits_and_what_to_do() -> None:
    with pytest.raises(PlanError) as caught:
        plan(
            specs(range(1, 27002)),
            caps(("a", 3), ("b", 3), ("c", 3)),
            strategy=RR,
            max_symbols_per_connection=3000,
        )
    assert str(caught.value) == (
        "over capacity: 27001 symbols asked, 27000 fit (3 keys × 3 connections × 3000); "
        "drop 1 symbol or add a key"
    )
    assert (caught.value.asked, caught.value.fits) == (27001, 27000)


def test_over_capacity_with_reduced_keys_suggests_the_limits() -> None:
    with pytest.raises(PlanError) as caught:
        plan(
            specs(range(1, 12)),
            caps(("a", 2), ("b", 1), ("c", 0)),
            strategy=LL,
            max_symbols_per_connection=3,
        )
    assert str(caught.value) == (
        "over capacity: 11 symbols asked, 9 fit (3 connections × 3 on 2 keys); drop 2 symbols, "
        "add a key, raise max_connections_per_key (up to 3) or raise max_symbols_per_connection "
        "(up to 3000)"
    )


def test_manual_names_unpinned_symbols() -> None:
    with pytest.raises(PlanError) as caught:
        plan(
            specs([1], key="a") + specs(range(2, 7)),
            caps(("a", 1)),
            strategy=MANUAL,
            max_symbols_per_connection=10,
        )
    assert str(caught.value) == (
        'strategy "manual" places only pinned symbols; not pinned: S2, S3, S4 and 2 more; pin '
        'them in a [[keys]] table\'s symbols, or use strategy "round-robin"'
    )


def test_pins_never_exceed_their_key() -> None:
    with pytest.raises(PlanError) as caught:
        plan(
            specs(range(1, 5), key="a"),
            caps(("a", 1), ("b", 3)),
            strategy=RR,
            max_symbols_per_connection=3,
        )
    assert str(caught.value) == (
        '4 symbols are pinned to key "a", which holds 3 (1 connection × 3); '
        "pin 1 of them to another key"
    )
    assert (caught.value.asked, caught.value.fits) == (4, 3)


@pytest.mark.parametrize(
    ("symbols", "message"),
    [
        ([spec(1), spec(1, Mode.FULL)], "S1 (1) is given twice; list each symbol once"),
        ([spec(1, key="zz")], 'S1 is pinned to key "zz", which is not configured'),
    ],
)
def test_bad_input_is_a_plan_error(symbols: list[SymbolSpec], message: str) -> None:
    with pytest.raises(PlanError) as caught:
        plan(symbols, caps(("a", 1)), strategy=RR, max_symbols_per_connection=5)
    assert str(caught.value) == message


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="max_symbols_per_connection must be at least 1"):
        plan([], caps(("a", 1)), strategy=RR, max_symbols_per_connection=0)
    with pytest.raises(ValueError, match="each key id may appear once in keys"):
        plan([], caps(("a", 1), ("a", 2)), strategy=RR, max_symbols_per_connection=1)


# Failover and reduced capacity ------------------------------------------------------------------


def test_a_down_key_hands_its_pins_to_the_others_and_takes_them_back() -> None:
    symbols = specs([1, 2, 3], key="b") + specs(range(4, 10))
    full = caps(("a", 2), ("b", 2), ("c", 2))
    home = plan(symbols, full, strategy=RR, max_symbols_per_connection=5)
    # Pins first (in turn on b), then everything else dealt a, b, c, a, ...
    assert layout(home) == {"a": [[4], [7]], "b": [[1, 3, 8], [2, 5]], "c": [[6], [9]]}
    down = caps(("a", 2), ("b", 0), ("c", 2))
    failover = plan(symbols, down, strategy=RR, max_symbols_per_connection=5, previous=home)
    # Only b's symbols move, dealt over a and c; everyone else keeps their slot.
    assert layout(failover) == {"a": [[1, 4, 8], [3, 7]], "b": [], "c": [[2, 6], [5, 9]]}
    change = diff(home, failover)
    assert change.moves == (
        Move(1, ("b", 0), ("a", 0)),
        Move(8, ("b", 0), ("a", 0)),
        Move(3, ("b", 0), ("a", 1)),
        Move(2, ("b", 1), ("c", 0)),
        Move(5, ("b", 1), ("c", 1)),
    )
    assert (change.added, change.removed) == ((), ())
    back = plan(symbols, full, strategy=RR, max_symbols_per_connection=5, previous=home)
    assert back == home


def test_under_manual_a_down_keys_pins_go_least_loaded() -> None:
    symbols = specs([1, 2], key="a") + specs([3, 4, 5], key="b")
    p = plan(
        symbols, caps(("a", 1), ("b", 0), ("c", 2)), strategy=MANUAL, max_symbols_per_connection=5
    )
    assert layout(p) == {"a": [[1, 2]], "b": [], "c": [[3, 5], [4]]}


def test_a_blocked_connection_is_skipped_and_keeps_the_other_indices() -> None:
    keys = [KeyCapacity("a", 3, blocked=frozenset({1})), KeyCapacity("b", 1)]
    p = plan(specs(range(1, 7)), keys, strategy=RR, max_symbols_per_connection=5)
    assert layout(p) == {"a": [[1, 5], [], [3]], "b": [[2, 4, 6]]}
    assert p.capacity == 15
    with pytest.raises(
        PlanError, match=r"16 symbols asked, 15 fit \(3 connections × 5 on 2 keys\)"
    ):
        plan(specs(range(1, 17)), keys, strategy=RR, max_symbols_per_connection=5)


def test_allow_unplaced_keeps_what_fits() -> None:
    symbols = specs([1], key="b") + specs(range(2, 9))
    p = plan(
        symbols,
        caps(("a", 1), ("b", 0)),
        strategy=LL,
        max_symbols_per_connection=5,
        allow_unplaced=True,
    )
    assert layout(p, unplaced=[6, 7, 8]) == {"a": [[1, 2, 3, 4, 5]], "b": []}


def test_a_pin_moves_an_unpinned_symbol_out_of_its_full_key() -> None:
    before = plan(
        specs(range(1, 5)), caps(("a", 1), ("b", 1)), strategy=RR, max_symbols_per_connection=2
    )
    assert layout(before) == {"a": [[1, 3]], "b": [[2, 4]]}
    symbols = [*specs(range(1, 4)), spec(4, key="a")]
    after = plan(
        symbols,
        caps(("a", 1), ("b", 1)),
        strategy=RR,
        max_symbols_per_connection=2,
        previous=before,
    )
    assert layout(after) == {"a": [[1, 4]], "b": [[2, 3]]}


# Incremental planning and diffs ---------------------------------------------------------------


def test_20000_symbols_500_in_500_out_moves_nothing_else() -> None:
    # How fast this plans is a benchmark's business (kitefan bench), not a timed test's.
    keys = caps(("a", 3), ("b", 3), ("c", 3))
    symbols = specs(range(1, 20001))
    home = plan(symbols, keys, strategy=RR, max_symbols_per_connection=3000)
    counts = sorted(k.symbol_count for k in home.keys)
    assert counts == [6666, 6667, 6667]
    edited = symbols[500:] + specs(range(30001, 30501))
    after = plan(edited, keys, strategy=RR, max_symbols_per_connection=3000, previous=home)
    change = diff(home, after)
    assert change.moves == ()
    assert sorted(s.token for s in change.added) == list(range(30001, 30501))
    assert sorted(change.removed) == list(range(1, 501))
    assert (change.subscribe_count, change.unsubscribe_count, change.mode_change_count) == (
        500,
        500,
        0,
    )
    for token in range(501, 20001):
        assert after.where(token) == home.where(token)


def test_diff_per_connection() -> None:
    old = Plan(
        RR,
        (
            KeyPlan("a", (ConnectionPlan(0, (spec(1), spec(2))), ConnectionPlan(1, (spec(3),)))),
            KeyPlan("b", (ConnectionPlan(0, (spec(4),)),)),
        ),
        10,
    )
    new = Plan(
        RR,
        (
            KeyPlan("a", (ConnectionPlan(0, (spec(1, Mode.FULL), spec(5))),)),
            KeyPlan("b", (ConnectionPlan(0, (spec(4),)), ConnectionPlan(2, (spec(3, Mode.LTP),)))),
        ),
        10,
    )
    change = diff(old, new)
    assert change == PlanDiff(
        (
            SlotChange("a", 0, (spec(5),), (2,), ((1, Mode.FULL),)),
            SlotChange("a", 1, (), (3,), ()),
            SlotChange("b", 2, (spec(3, Mode.LTP),), (), ()),
        )
    )
    assert change.moves == (Move(3, ("a", 1), ("b", 2)),)
    assert change.added == (spec(5),)
    assert change.removed == (2,)
    assert not change.is_empty
    assert diff(new, new).is_empty
    assert diff(new, new) == PlanDiff(())


def test_diff_lists_keys_only_the_old_plan_has_last() -> None:
    old = Plan(RR, (KeyPlan("z", (ConnectionPlan(0, (spec(9),)),)),), 10)
    new = Plan(RR, (KeyPlan("a", (ConnectionPlan(0, (spec(1),)),)),), 10)
    assert diff(old, new).changes == (
        SlotChange("a", 0, (spec(1),), (), ()),
        SlotChange("z", 0, (), (9,), ()),
    )


# Invariants -------------------------------------------------------------------------------------

MODES = st.sampled_from(list(Mode))


@st.composite
def problems(
    draw: st.DrawFn, *, pins: bool = True
) -> tuple[list[SymbolSpec], list[KeyCapacity], int]:
    key_count = draw(st.integers(1, 4))
    keys = [
        KeyCapacity(
            f"k{i}",
            n := draw(st.integers(0, 3)),
            frozenset(draw(st.sets(st.integers(0, 2), max_size=1))) if n else frozenset(),
        )
        for i in range(key_count)
    ]
    limit = draw(st.integers(1, 6))
    tokens = draw(st.lists(st.integers(1, 10_000), unique=True, max_size=40))
    pin_choices = [None, *(k.key_id for k in keys)] if pins else [None]
    symbols = [
        SymbolSpec(t, f"S{t}", draw(MODES), draw(st.sampled_from(pin_choices))) for t in tokens
    ]
    return symbols, keys, limit


def check_plan(p: Plan, symbols: list[SymbolSpec], keys: list[KeyCapacity], limit: int) -> None:
    placed = [s for _, connection in p.slots() for s in connection.symbols]
    # every symbol exactly once, as given
    assert Counter(s.token for s in placed) == Counter(s.token for s in symbols)
    assert sorted(placed, key=lambda s: s.token) == sorted(symbols, key=lambda s: s.token)
    assert p.unplaced == ()
    capacity = {k.key_id: k for k in keys}
    assert [k.key_id for k in p.keys] == [k.key_id for k in keys]
    for key in p.keys:
        cap = capacity[key.key_id]
        indices = [c.index for c in key.connections]
        assert indices == sorted(set(indices))
        assert len(indices) <= cap.usable
        for connection in key.connections:
            assert 0 < len(connection.symbols) <= limit  # no connection over its limit
            assert connection.index < cap.connections  # no key over its connections
            assert connection.index not in cap.blocked
    usable = {k.key_id for k in keys if k.usable}
    for s in symbols:
        if s.key in usable:
            assert p.where(s.token)[0] == s.key  # type: ignore[index]  # a planned token: where() is not None


@settings(max_examples=300, deadline=None)
@given(problems(), st.sampled_from([RR, LL]))
def test_every_plan_places_each_symbol_once_within_limits(
    case: tuple[list[SymbolSpec], list[KeyCapacity], int], strategy: Strategy
) -> None:
    symbols, keys, limit = case
    try:
        p = plan(symbols, keys, strategy=strategy, max_symbols_per_connection=limit)
    except PlanError:
        capacity = sum(k.usable for k in keys) * limit
        pinned = Counter(s.key for s in symbols if s.key is not None)
        over_key = any(pinned[k.key_id] > k.usable * limit for k in keys if k.usable)
        assert len(symbols) > capacity or over_key
        return
    check_plan(p, symbols, keys, limit)
    # deterministic, and stable against itself
    assert plan(symbols, keys, strategy=strategy, max_symbols_per_connection=limit) == p
    again = plan(symbols, keys, strategy=strategy, max_symbols_per_connection=limit, previous=p)
    assert again == p


@settings(max_examples=300, deadline=None)
@given(problems(pins=False), st.sampled_from([RR, LL]))
def test_over_capacity_is_raised_exactly_when_the_total_exceeds_capacity(
    case: tuple[list[SymbolSpec], list[KeyCapacity], int], strategy: Strategy
) -> None:
    symbols, keys, limit = case
    capacity = sum(k.usable for k in keys) * limit
    if len(symbols) > capacity:
        with pytest.raises(PlanError) as caught:
            plan(symbols, keys, strategy=strategy, max_symbols_per_connection=limit)
        assert (caught.value.asked, caught.value.fits) == (len(symbols), capacity)
    else:
        p = plan(symbols, keys, strategy=strategy, max_symbols_per_connection=limit)
        check_plan(p, symbols, keys, limit)
        assert p.spare == capacity - len(symbols)


@settings(max_examples=300, deadline=None)
@given(problems(pins=False))
def test_round_robin_balances_keys_with_room_within_one(
    case: tuple[list[SymbolSpec], list[KeyCapacity], int],
) -> None:
    symbols, keys, limit = case
    if len(symbols) > sum(k.usable for k in keys) * limit:
        return
    p = plan(symbols, keys, strategy=RR, max_symbols_per_connection=limit)
    room = {k.key_id: k.usable * limit for k in keys}
    counts = [k.symbol_count for k in p.keys if k.symbol_count < room[k.key_id]]
    if counts:
        assert max(counts) - min(counts) <= 1
        # a key that filled up did so while the deal was even, so it is at most one ahead
        full = [
            k.symbol_count for k in p.keys if room[k.key_id] and k.symbol_count == room[k.key_id]
        ]
        assert all(c <= min(counts) + 1 for c in full)


@settings(max_examples=300, deadline=None)
@given(problems(), problems(), st.sampled_from([RR, LL]), st.data())
def test_incremental_plans_keep_what_can_stay_and_diffs_are_exact(
    first: tuple[list[SymbolSpec], list[KeyCapacity], int],
    second: tuple[list[SymbolSpec], list[KeyCapacity], int],
    strategy: Strategy,
    data: st.DataObject,
) -> None:
    symbols, keys, limit = first
    try:
        old = plan(symbols, keys, strategy=strategy, max_symbols_per_connection=limit)
    except PlanError:
        return
    # Keep a random part of the old symbols (some in a new mode), add some new ones, and plan
    # on new capacities (keys going down or coming back) from the old plan.
    kept = [
        SymbolSpec(s.token, s.name, data.draw(MODES), s.key)
        for s in symbols
        if data.draw(st.booleans())
    ]
    known = {s.token for s in kept}
    new_keys = [KeyCapacity(k.key_id, data.draw(st.integers(0, 3))) for k in keys]
    # New symbols may be pinned, which can push kept unpinned symbols off a full key.
    pins = [None, *(k.key_id for k in keys)]
    fresh = [
        SymbolSpec(s.token, s.name, s.mode, data.draw(st.sampled_from(pins)))
        for s in second[0]
        if s.token not in known
    ]
    wanted = kept + fresh
    try:
        new = plan(
            wanted, new_keys, strategy=strategy, max_symbols_per_connection=limit, previous=old
        )
    except PlanError:
        return
    check_plan(new, wanted, new_keys, limit)
    # With unchanged capacities and no new pins, nothing kept moves at all.
    unchanged = new_keys == [KeyCapacity(k.key_id, k.connections) for k in keys]
    if unchanged and all(not k.blocked for k in keys) and all(s.key is None for s in fresh):
        for s in kept:
            assert new.where(s.token) == old.where(s.token)
    # Applying the diff to the old plan gives the new one, slot by slot.
    slots: dict[tuple[str, int], dict[int, Mode]] = {}
    for key_id, connection in old.slots():
        slots[(key_id, connection.index)] = {s.token: s.mode for s in connection.symbols}
    change = diff(old, new)
    for c in change.changes:
        slot = slots.setdefault((c.key_id, c.index), {})
        assert set(c.unsubscribe) <= set(slot)
        for token in c.unsubscribe:
            del slot[token]
        for token, mode in c.mode_changes:
            assert token in slot and slot[token] is not mode
            slot[token] = mode
        for s in c.subscribe:
            assert s.token not in slot
            slot[s.token] = s.mode
    expected = {
        (key_id, connection.index): {s.token: s.mode for s in connection.symbols}
        for key_id, connection in new.slots()
    }
    assert {slot: tokens for slot, tokens in slots.items() if tokens} == expected
    # moves, added and removed partition the changes
    moved = {m.token for m in change.moves}
    assert moved | {s.token for s in change.added} == {
        s.token for c in change.changes for s in c.subscribe
    }
    assert moved | set(change.removed) == {t for c in change.changes for t in c.unsubscribe}
    assert {s.token for s in change.added} == {s.token for s in wanted} - {s.token for s in symbols}
    assert set(change.removed) == {s.token for s in symbols} - {s.token for s in wanted}


@settings(max_examples=200, deadline=None)
@given(st.data(), st.sampled_from([RR, LL]))
def test_new_pins_on_full_keys_displace_one_symbol_each(
    data: st.DataObject, strategy: Strategy
) -> None:
    keys = [
        KeyCapacity(f"k{i}", data.draw(st.integers(1, 3)))
        for i in range(data.draw(st.integers(1, 4)))
    ]
    limit = data.draw(st.integers(1, 5))
    capacity = sum(k.connections for k in keys) * limit
    symbols = specs(range(1, capacity + 1))  # every connection full
    old = plan(symbols, keys, strategy=strategy, max_symbols_per_connection=limit)
    room = {k.key_id: k.connections * limit for k in keys}
    repinned: list[SymbolSpec] = []
    for s in symbols:
        key_id = data.draw(st.sampled_from([None, *room]))
        if key_id is not None and room[key_id] > 0 and old.where(s.token)[0] != key_id:  # type: ignore[index]  # a planned token: where() is not None
            room[key_id] -= 1
            s = SymbolSpec(s.token, s.name, s.mode, key_id)
        repinned.append(s)
    new = plan(repinned, keys, strategy=strategy, max_symbols_per_connection=limit, previous=old)
    check_plan(new, repinned, keys, limit)
    moved = [s.token for s in repinned if new.where(s.token) != old.where(s.token)]
    pinned_now = sum(1 for s in repinned if s.key is not None)
    # each new pin moves itself and at most one symbol out of its way
    assert len(moved) <= 2 * pinned_now
