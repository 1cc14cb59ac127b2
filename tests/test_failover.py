"""The feed's health and failover on the pure core (kitefan.failover): no sockets, no loop, no time.

Each test tells a :class:`FeedHealth` what happened to a key (a refusal, a connection opened, an
edit) and checks the actions it answers with: the exact status events, the plan the feed moves
to, and whether the feed ends. tests/integration/test_manager.py keeps the same stories end to
end against the simulator (a token expiring and renewed, every key refused, a slot taken).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from app_configs import app_config, key

from kitefan.errors import NoUsableKeyError, PlanError, UnreachableError
from kitefan.events import Status, StatusEvent
from kitefan.failover import Action, Announce, ApplyPlan, EndFeed, FeedHealth
from kitefan.models import Mode
from kitefan.planner import Plan
from kitefan.retry import Refusal
from kitefan.settings import AppConfig, Credential, SymbolSpec

NOW = 1_764_000_000.0
ADVICE = "renew the token"


def config(
    symbols: int, keys: tuple[str, ...] = ("alpha", "bravo", "charlie"), *, per_conn: int = 3000
) -> AppConfig:
    return app_config(
        [key(k, f"{k}-api-key-01", f"{k}-token-01") for k in keys],
        range(1000, 1000 + symbols),
        max_symbols_per_connection=per_conn,
    )


def health(cfg: AppConfig, *, failover: bool = True) -> FeedHealth:
    return FeedHealth(cfg, failover=failover, token_advice=ADVICE, clock=lambda: NOW)


def tokens_of(plan: Plan, key_id: str) -> set[int]:
    key = plan.key(key_id)
    return set() if key is None else {s.token for c in key.connections for s in c.symbols}


def places(plan: Plan, key_id: str) -> set[tuple[int, int]]:
    """(token, connection index) of every symbol the key carries."""
    key = plan.key(key_id)
    return (
        set() if key is None else {(s.token, c.index) for c in key.connections for s in c.symbols}
    )


def slot_sizes(plan: Plan, key_id: str) -> list[int]:
    key = plan.key(key_id)
    return [] if key is None else [len(c.symbols) for c in key.connections]


def status(key: str, connection: int | None, state: Status, message: str) -> Announce:
    return Announce(StatusEvent(key, connection, state, message, NOW))


def applied(actions: list[Action]) -> ApplyPlan:
    (move,) = [a for a in actions if isinstance(a, ApplyPlan)]
    return move


AUTH_FAILED = (
    f"refused with HTTP 403: the access token is invalid or expired; {ADVICE}"  # the key's text
)


def test_a_refused_token_moves_only_its_symbols_to_the_healthy_keys_and_back_home() -> None:
    h = health(config(300))
    home = h.home
    bravo_home = tokens_of(home, "bravo")
    assert len(bravo_home) == 100
    actions = h.refused("bravo", 1, Refusal.AUTH, 403)
    assert actions[0] == status("bravo", None, Status.AUTH_FAILED, AUTH_FAILED)
    assert isinstance(actions[0], Announce) and actions[0].event.state is Status.AUTH_FAILED
    move = applied(actions)
    assert len(actions) == 2 and h.current is move.plan
    assert tokens_of(move.plan, "bravo") == set()
    assert tokens_of(move.plan, "alpha") | tokens_of(move.plan, "charlie") == set(range(1000, 1300))
    # Only bravo's symbols moved: alpha's and charlie's stay where they were.
    assert {m.token for m in move.change.moves} == bravo_home
    assert tokens_of(move.plan, "alpha") >= tokens_of(home, "alpha")
    assert h.keys["bravo"].message == AUTH_FAILED
    # The connection refused keeps probing, empty; the others of the key may go.
    assert h.keeps("bravo", 1) and not h.keeps("bravo", 0) and not h.keeps("alpha", 1)
    # Said once: the key's other connections being refused too changes nothing.
    assert h.refused("bravo", 0, Refusal.AUTH, 403) == []
    # The token is accepted again: the symbols go home.
    back = h.opened("bravo", 1)
    assert back[0] == status("bravo", None, Status.CONNECTED, "token accepted again")
    assert applied(back).plan == home == h.current
    assert {m.token for m in applied(back).change.moves} == bravo_home
    assert not h.keeps("bravo", 1)


def test_a_connection_opening_with_nothing_refused_changes_nothing() -> None:
    h = health(config(30))
    assert h.opened("alpha", 0) == []
    assert h.ever_connected() and h.current is h.home


def test_without_failover_a_refused_key_keeps_its_symbols_and_nothing_moves() -> None:
    h = health(config(300), failover=False)
    actions = h.refused("bravo", 0, Refusal.AUTH, 403)
    assert actions == [status("bravo", None, Status.AUTH_FAILED, AUTH_FAILED)]
    assert h.current is h.home
    assert [c.connections for c in h.capacities()] == [3, 3, 3]
    assert not h.keeps("bravo", 0)


def test_every_key_refused_before_any_connected_ends_the_feed_without_a_replan() -> None:
    h = health(config(10, ("alpha", "bravo")))
    first = h.refused("alpha", 0, Refusal.AUTH, 403)
    assert len(first) == 2 and isinstance(first[1], ApplyPlan)
    last = h.refused("bravo", 0, Refusal.AUTH, 403)
    assert last[0] == status("bravo", None, Status.AUTH_FAILED, AUTH_FAILED)
    assert len(last) == 2 and isinstance(last[1], EndFeed)
    error = last[1].error
    assert isinstance(error, NoUsableKeyError) and h.failure is error
    assert str(error) == (
        "every key was refused with HTTP 403: their access tokens are invalid or expired; "
        "put fresh tokens in the config"
    )


def test_every_key_refused_after_one_streamed_says_nothing_streams_until_a_fresh_token() -> None:
    h = health(config(10, ("alpha", "bravo")))
    h.opened("alpha", 0)
    h.refused("alpha", 0, Refusal.AUTH, 403)
    before = h.current
    actions = h.refused("bravo", 0, Refusal.AUTH, 403)
    assert actions == [
        status("bravo", None, Status.AUTH_FAILED, AUTH_FAILED),
        status(
            "*",
            None,
            Status.REPLAN_FAILED,
            "every key is refused with HTTP 403: nothing streams until a fresh token is "
            f"accepted; {ADVICE}",
        ),
    ]
    assert h.current is before and h.failure is None


def test_too_little_room_on_the_healthy_keys_keeps_the_plan_and_says_why() -> None:
    h = health(config(500, ("alpha", "bravo"), per_conn=100))
    before = h.current
    actions = h.refused("bravo", 2, Refusal.AUTH, 403)
    assert actions[1] == status(
        "*",
        None,
        Status.REPLAN_FAILED,
        "cannot re-plan around the failed keys: over capacity: 500 symbols asked, 300 fit "
        "(1 key × 3 connections × 100); drop 200 symbols, add a key or raise "
        "max_symbols_per_connection (up to 3000)",
    )
    assert len(actions) == 2 and h.current is before and h.failure is None
    # The probe still runs: when it is let in, the plan is whole again (nothing had moved).
    assert h.keeps("bravo", 2)
    back = h.opened("bravo", 2)
    assert applied(back).plan == h.home and applied(back).change.is_empty


def _more(n: int) -> dict[int, SymbolSpec]:
    return {t: SymbolSpec(t, str(t), Mode.QUOTE) for t in range(5000, 5000 + n)}


def test_a_taken_slot_is_planned_around_and_won_back() -> None:
    h = health(config(90, ("alpha",)))
    assert slot_sizes(h.home, "alpha") == [30, 30, 30]
    actions = h.refused("alpha", 2, Refusal.SLOTS, 429)
    assert actions[0] == status(
        "alpha",
        2,
        Status.SLOT_LIMITED,
        "refused a connection with HTTP 429: another program holds this key's connections; "
        "using 2 of 3",
    )
    plan = applied(actions).plan
    assert slot_sizes(plan, "alpha")[:2] == [45, 45] and sum(slot_sizes(plan, "alpha")) == 90
    assert h.keeps("alpha", 2) and not h.keeps("alpha", 0)
    assert h.capacities()[0].blocked == frozenset({2})
    assert h.refused("alpha", 2, Refusal.SLOTS, 429) == []
    second = h.refused("alpha", 1, Refusal.SLOTS, 429)
    assert second[0].event.message.endswith("using 1 of 3")  # type: ignore[union-attr]  # an Announce
    assert sum(slot_sizes(applied(second).plan, "alpha")[:1]) == 90
    back = h.opened("alpha", 2)
    assert back[0] == status("alpha", 2, Status.CONNECTED, "connection 2 slot won back")
    assert slot_sizes(applied(back).plan, "alpha")[:1] == [45]
    again = h.opened("alpha", 1)
    assert applied(again).plan == h.home and slot_sizes(h.current, "alpha") == [30, 30, 30]


def test_symbols_wanted_during_a_failover_avoid_the_refused_key_and_go_home_after() -> None:
    h = health(config(30))
    h.refused("charlie", 0, Refusal.AUTH, 403)
    added = {t: SymbolSpec(t, str(t), Mode.FULL) for t in range(2000, 2030)}
    move = applied(h.want(dict(h.symbols) | added))
    assert set(added) <= tokens_of(move.plan, "alpha") | tokens_of(move.plan, "bravo")
    assert {s.token for s in move.change.added} == set(added)
    assert tokens_of(h.home, "charlie") & set(added)  # at home, charlie takes its share
    assert applied(h.opened("charlie", 0)).plan == h.home


def test_a_refused_want_changes_nothing() -> None:
    h = health(config(10, ("alpha",), per_conn=10))
    home, symbols = h.home, h.symbols
    with pytest.raises(PlanError):
        h.want(symbols | _more(100))
    assert h.home is home and h.symbols is symbols and h.current is home


def test_reconfigure_takes_fresh_credentials_and_symbols_and_preview_changes_nothing() -> None:
    cfg = config(30)
    h = health(cfg)
    h.refused("bravo", 0, Refusal.AUTH, 403)
    fresh = Credential("bravo-api-key-01", "bravo-token-02")
    edited = replace(
        cfg,
        keys=tuple(replace(k, credential=fresh) if k.id == "bravo" else k for k in cfg.keys),
        symbols=cfg.symbols[:20],
    )
    preview = h.preview(edited)
    assert sorted(preview.removed) == list(range(1020, 1030))
    assert set(h.symbols) == set(range(1000, 1030))  # a preview changes nothing
    move = applied(h.reconfigure(edited))
    assert move.change == preview
    assert h.keys["bravo"].config.credential == fresh
    assert tokens_of(move.plan, "bravo") == set()  # still refused until a connection opens
    assert set(h.symbols) == set(range(1000, 1020))


def test_give_up_keeps_the_first_error_and_stops_replanning_on_refusals() -> None:
    h = health(config(30))
    first, second = NoUsableKeyError("first"), NoUsableKeyError("second")
    assert h.give_up(first) == [EndFeed(first)]
    h.give_up(second)
    assert h.failure is first
    before = h.current
    assert h.refused("alpha", 0, Refusal.AUTH, 403) == [
        status("alpha", None, Status.AUTH_FAILED, AUTH_FAILED)
    ]
    assert h.current is before


def test_while_keys_are_held_apart_a_refusal_moves_nothing_between_keys() -> None:
    h = health(config(300))
    h.held = frozenset({"alpha"})
    assert h.holds("alpha") and not h.holds("bravo")
    actions = h.refused("bravo", 1, Refusal.AUTH, 403)
    assert actions[0] == status("bravo", None, Status.AUTH_FAILED, AUTH_FAILED)
    move = applied(actions)
    assert move.plan == h.home and move.change.is_empty
    assert [c.connections for c in h.capacities()] == [3, 3, 3]
    h.held = None
    assert tokens_of(applied(h.replan()).plan, "bravo") == set()  # failover again


def test_with_redundancy_a_refused_key_moves_only_its_own_copies_each_to_the_other_key() -> None:
    h = health(replace(config(300, per_conn=100), redundancy=2))
    home = h.home
    homes = {k: tokens_of(home, k) for k in ("alpha", "bravo", "charlie")}
    assert sorted(len(t) for t in homes.values()) == [200, 200, 200]
    move = applied(h.refused("bravo", 0, Refusal.AUTH, 403))
    after = {k: tokens_of(move.plan, k) for k in ("alpha", "bravo", "charlie")}
    assert after["bravo"] == set()
    # Every symbol is still on two keys: now alpha and charlie, both of them.
    assert after["alpha"] == after["charlie"] == set(range(1000, 1300))
    # Only bravo's copies moved, each to the key that did not hold the symbol already; alpha's
    # and charlie's own copies stay on the connections they were on.
    assert sorted(m.token for m in move.change.moves) == sorted(homes["bravo"])
    for key_id in ("alpha", "charlie"):
        assert places(home, key_id) <= places(move.plan, key_id)
    # The token is accepted again: the copies go home.
    assert applied(h.opened("bravo", 0)).plan == home == h.current


def deadlined(seconds: float | None = 5.0) -> FeedHealth:
    return FeedHealth(
        config(30),
        failover=True,
        token_advice=ADVICE,
        clock=lambda: NOW,
        connect_deadline_s=seconds,
    )


def test_the_connect_deadline_is_armed_once_and_ends_a_feed_that_never_connected() -> None:
    h = deadlined(5.0)
    assert h.deadline_passed() == []  # never armed: a stray call decides nothing
    assert h.connection_wanted() == 5.0
    assert h.connection_wanted() is None  # the next connections wanted do not arm it again
    h.attempt_ended("alpha#0 reconnecting: connection refused")
    h.attempt_ended("bravo#0 reconnecting: timed out during the handshake")
    (end,) = h.deadline_passed()
    assert isinstance(end, EndFeed)
    error = end.error
    assert isinstance(error, UnreachableError)
    assert (error.deadline_s, error.url, error.last) == (
        5.0,
        "ws://127.0.0.1:9",
        "bravo#0 reconnecting: timed out during the handshake",
    )
    assert str(error) == (
        "no connection to ws://127.0.0.1:9 opened in 5 s (last: bravo#0 reconnecting: timed out "
        "during the handshake); check the url, the network and that the server is up"
    )
    assert h.failure is error
    assert h.deadline_passed() == []  # the feed has ended: nothing more
    assert h.connection_wanted() is None


def test_a_connection_opening_in_time_or_an_earlier_end_disarms_the_deadline() -> None:
    h = deadlined(5.0)
    assert h.connection_wanted() == 5.0
    h.opened("charlie", 0)
    assert h.deadline_passed() == []
    assert h.failure is None
    later = deadlined(5.0)
    later.opened("alpha", 0)
    assert later.connection_wanted() is None  # connected before the first wanted: no deadline
    refused = deadlined(5.0)
    assert refused.connection_wanted() == 5.0
    first = NoUsableKeyError("every key refused")
    refused.give_up(first)
    assert refused.deadline_passed() == []
    assert refused.failure is first
    assert deadlined(None).connection_wanted() is None
