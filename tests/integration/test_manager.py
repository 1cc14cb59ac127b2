"""The manager against the real simulator on loopback: streaming, and staying up through faults.

Every case of issue 4's "Staying up" has a test here that fails if the behaviour breaks. Waits
are on conditions (stats, events, the simulator's own view), each under a timeout.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypeVar

import pytest
from app_configs import app_config
from polling import eventually
from rich.console import Console
from simulators import KEYS, account, nse, sim_until, simulator
from websockets.asyncio.client import connect

import kitefan.connection as connection_module
from kitefan.codec import decode_text, error_message, order_message
from kitefan.config import AppConfig, Credential, Strategy, SymbolSpec, Tuning
from kitefan.errors import FeedError, NoUsableKeyError, SymbolError
from kitefan.events import ErrorEvent, Event, Gap, KeyState, OrderEvent, StatusEvent, TickBatch
from kitefan.manager import EventStream, FeedManager
from kitefan.models import Mode, ServerMessage
from kitefan.planner import Plan
from kitefan.render.dashboard import TickBoard, dashboard
from kitefan.render.records import json_lines
from kitefan.simulator import Simulator

pytestmark = pytest.mark.integration

T = TypeVar("T")

FAST = Tuning(
    connect_timeout_s=2.0,
    liveness_timeout_s=0.6,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    backoff_jitter=0.1,
    auth_retry_s=300.0,
    slot_retry_s=0.2,
    subscribe_batch=200,
    close_timeout_s=1.0,
)


def make_config(
    url: str,
    tokens: Iterable[int],
    *,
    keys: Iterable[str] = KEYS,
    mode: Mode = Mode.QUOTE,
    tuning: Tuning = FAST,
    strategy: Strategy = Strategy.ROUND_ROBIN,
    max_connections_per_key: int = 3,
    max_symbols_per_connection: int = 3000,
) -> AppConfig:
    """The keys' config for the simulator at ``url``, with the fast tuning of these tests."""
    return app_config(
        keys,
        tokens,
        url=url,
        mode=mode,
        tuning=tuning,
        strategy=strategy,
        max_connections_per_key=max_connections_per_key,
        max_symbols_per_connection=max_symbols_per_connection,
    )


async def next_matching(
    stream: EventStream[Event], match: Callable[[Event], bool], within: float = 10.0
) -> Event:
    async with asyncio.timeout(within):
        async for event in stream:
            if match(event):
                return event
    raise AssertionError("the stream ended")


async def tokens_ticking(
    stream: EventStream[TickBatch], tokens: set[int], within: float = 15.0
) -> set[str]:
    """Read the stream until every token has ticked; return the keys they came from."""
    missing = set(tokens)
    keys: set[str] = set()
    async with asyncio.timeout(within):
        async for batch in stream:
            for tick in batch.ticks:
                missing.discard(tick.instrument_token)
            keys.add(batch.key)
            if not missing:
                return keys
    raise AssertionError(f"{len(missing)} tokens never ticked")


def planned_tokens(plan: Plan, key_id: str) -> set[int]:
    """The tokens ``plan`` gives key ``key_id`` (which it must have)."""
    key = plan.key(key_id)
    assert key is not None, f"the plan has no key {key_id}"
    return {s.token for slot in key.connections for s in slot.symbols}


def status(state: str, key: str | None = None) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        return (
            isinstance(event, StatusEvent)
            and event.state == state
            and (key is None or event.key == key)
        )

    return match


def sim_tokens_of(sim: Simulator, key_id: str) -> set[int]:
    return {
        token for conn in sim.connections(account(key_id).api_key) for token in conn.subscriptions
    }


# Streaming ---------------------------------------------------------------------------------


async def test_every_symbol_streams_in_its_mode_across_keys() -> None:
    tokens = nse(600)
    modes = {
        t: (Mode.FULL if i % 3 == 0 else Mode.QUOTE if i % 3 == 1 else Mode.LTP)
        for i, t in enumerate(tokens)
    }
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens)
        config = replace(
            config, symbols=tuple(SymbolSpec(t, f"NSE:S{t}", m) for t, m in modes.items())
        )
        async with FeedManager(config) as feed:
            stream = feed.ticks()
            seen: dict[int, int] = {}
            async with asyncio.timeout(15):
                async for batch in stream:
                    for tick in batch.ticks:
                        if tick.mode is modes[tick.instrument_token]:
                            seen[tick.instrument_token] = tick.kind
                    if len(seen) == len(tokens):
                        break
            assert {seen[t] for t in tokens if modes[t] is Mode.FULL} == {184}
            assert {seen[t] for t in tokens if modes[t] is Mode.QUOTE} == {44}
            assert {seen[t] for t in tokens if modes[t] is Mode.LTP} == {8}
            # Round-robin: 200 symbols per key, dealt to each key's 3 connections in turn.
            for key_id in KEYS:
                conns = sim.connections(account(key_id).api_key)
                assert sorted(len(c.subscriptions) for c in conns) == [66, 67, 67]
                for conn in conns:
                    assert all(modes[t] is m for t, m in conn.subscriptions.items())
            stats = feed.stats()
            assert stats.totals.symbols == 600
            assert [k.state for k in stats.keys] == [KeyState.CONNECTED] * 3
        # Leaving closes every connection with a close frame, and leaves no task behind.
        await sim_until(sim, lambda: not sim.connections())
        assert sim.close_codes() == {1000: 9}
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_27000_symbols_over_3_keys_all_tick_within_the_limits() -> None:
    tokens = nse(27_000)
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens, tuning=replace(FAST, subscribe_batch=500))
        async with FeedManager(config) as feed:
            keys = await tokens_ticking(feed.ticks(), set(tokens), within=60)
            assert keys == set(KEYS)
            for key_id in KEYS:
                conns = sim.connections(account(key_id).api_key)
                assert len(conns) == 3
                assert [len(c.subscriptions) for c in conns] == [3000, 3000, 3000]
            assert sim.refusals() == {}


async def test_order_updates_are_delivered_once_per_key() -> None:
    async with simulator(seed=7) as sim, FeedManager(make_config(sim.url, nse(30))) as feed:
        events = feed.events()
        await sim.wait_for_connections(3, account("alpha").api_key)
        await sim.push_order(account("alpha").api_key, {"order_id": "A1", "status": "OPEN"})
        await sim.push_order(account("alpha").api_key, {"order_id": "A1", "status": "COMPLETE"})
        first = await next_matching(events, lambda e: isinstance(e, OrderEvent))
        second = await next_matching(events, lambda e: isinstance(e, OrderEvent))
        assert isinstance(first, OrderEvent)
        assert isinstance(second, OrderEvent)
        assert (first.key, first.update.data["status"]) == ("alpha", "OPEN")
        assert (second.key, second.update.data["status"]) == ("alpha", "COMPLETE")
        # Each update reached all three connections; the other two copies were dropped.
        await eventually(lambda: sum(c.orders for c in feed.key_stats("alpha").connections) == 6)
        assert feed.key_stats("alpha").orders == 2
        assert not [e for e in events.drain() if isinstance(e, OrderEvent)]


async def test_server_error_texts_are_surfaced() -> None:
    # A server that allows 5 tokens a connection refuses the 6th with Kite's own text.
    async with simulator(seed=7, max_tokens_per_connection=5) as sim:
        config = make_config(sim.url, nse(8), keys=("alpha",), max_connections_per_key=1)
        async with FeedManager(config) as feed:
            events = feed.events()
            error = await next_matching(events, lambda e: isinstance(e, ErrorEvent))
            assert isinstance(error, ErrorEvent)
            assert (error.key, error.connection) == ("alpha", 0)
            assert error.text == "Can't subscribe to more than 5 instruments."
            # Kitefan sends subscribe, then mode for the same tokens; the mode message subscribes
            # implicitly (docs/protocol.md §2), so the server refuses twice.
            second = await next_matching(events, lambda e: isinstance(e, ErrorEvent))
            assert isinstance(second, ErrorEvent)
            assert second == replace(error, at=second.at)
            assert feed.key_stats("alpha").server_errors == 2


# Staying up -------------------------------------------------------------------------------


async def test_a_silent_connection_is_caught_and_reconnected() -> None:
    tokens = nse(60)
    async with (
        simulator(seed=7) as sim,
        FeedManager(make_config(sim.url, tokens, keys=("alpha",))) as feed,
    ):
        events = feed.events()
        await next_matching(events, status("connected", "alpha"))
        sim.set_silent(True)
        lost = await next_matching(events, status("reconnecting", "alpha"))
        assert isinstance(lost, StatusEvent)
        assert lost.message == "lost: no frame for 0.6 s"
        sim.set_silent(False)
        back = await next_matching(events, status("connected", "alpha"))
        assert isinstance(back, StatusEvent)
        assert back.gap is not None
        assert back.gap.reason == "no frame for 0.6 s"
        stream = feed.ticks()
        await tokens_ticking(stream, set(tokens))


async def test_an_abrupt_drop_of_every_connection_ends_with_all_symbols_ticking() -> None:
    tokens = nse(900)
    modes = {t: Mode.FULL if t % 2 else Mode.LTP for t in tokens}
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens)
        config = replace(config, symbols=tuple(SymbolSpec(t, str(t), m) for t, m in modes.items()))
        async with FeedManager(config) as feed:
            events = feed.events()
            await tokens_ticking(feed.ticks(), set(tokens))
            await sim.drop_connections()
            gaps: list[Gap] = []
            while len(gaps) < 9:
                event = await next_matching(events, status("connected"))
                assert isinstance(event, StatusEvent)
                if event.gap is not None:
                    gaps.append(event.gap)
            assert {g.reason for g in gaps} == {"dropped without a close frame"}
            assert sum(len(g.tokens) for g in gaps) == 900
            assert all(g.end >= g.start for g in gaps)
            await tokens_ticking(feed.ticks(), set(tokens))
            # Resubscribed in each symbol's own mode.
            for key_id in KEYS:
                for conn in sim.connections(account(key_id).api_key):
                    assert all(modes[t] is m for t, m in conn.subscriptions.items())
            stats = feed.stats()
            assert stats.totals.reconnects == 9
            assert all(k.last_gap is not None for k in stats.keys)


async def test_a_clean_close_by_the_server_is_reconnected() -> None:
    tokens = nse(30)
    async with (
        simulator(seed=7) as sim,
        FeedManager(make_config(sim.url, tokens, keys=("alpha",))) as feed,
    ):
        events = feed.events()
        await next_matching(events, status("connected", "alpha"))
        await sim.close_connections(code=1000)
        back = await next_matching(
            events,
            lambda e: status("connected")(e) and isinstance(e, StatusEvent) and e.gap is not None,
        )
        assert isinstance(back, StatusEvent) and back.gap is not None
        assert back.gap.reason == "closed by the server with code 1000"
        await tokens_ticking(feed.ticks(), set(tokens))


async def test_an_expired_token_fails_over_and_comes_back_with_a_fresh_one() -> None:
    tokens = nse(300)
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens)
        async with FeedManager(config) as feed:
            events = feed.events()
            await tokens_ticking(feed.ticks(), set(tokens))
            home_bravo = sim_tokens_of(sim, "bravo")
            assert len(home_bravo) == 100
            alpha_before = feed.key_stats("alpha").reconnects
            await sim.expire_token(account("bravo").api_key, drop=True)
            failed = await next_matching(events, status("auth_failed", "bravo"))
            assert isinstance(failed, StatusEvent)
            assert "HTTP 403" in failed.message
            # Bravo's symbols move to alpha and charlie; every symbol ticks again.
            await sim_until(
                sim,
                lambda: sim_tokens_of(sim, "alpha") | sim_tokens_of(sim, "charlie") >= set(tokens),
            )
            await tokens_ticking(feed.ticks(), set(tokens))
            assert feed.key_state("bravo") is KeyState.AUTH_FAILED
            # Retried slowly, not hammered: one refusal per connection that was open, no more.
            refused = sim.refusals().get(403, 0)
            await asyncio.sleep(0.5)
            assert sim.refusals().get(403, 0) == refused <= 3
            # The other keys never noticed: no reconnects.
            assert feed.key_stats("alpha").reconnects == alpha_before
            # A fresh token comes back through the config; the symbols move home.
            sim.set_token(account("bravo").api_key, "bravo-token-0002")
            fresh = replace(
                config,
                keys=tuple(
                    replace(k, credential=Credential(k.credential.api_key, "bravo-token-0002"))
                    if k.id == "bravo"
                    else k
                    for k in config.keys
                ),
            )
            feed.apply_config(fresh)
            await next_matching(events, status("connected", "bravo"))
            await sim_until(sim, lambda: sim_tokens_of(sim, "bravo") == home_bravo)
            assert feed.plan == feed.home_plan
            await tokens_ticking(feed.ticks(), set(tokens))


async def test_every_key_refused_at_start_raises_no_usable_key() -> None:
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, nse(10), keys=("alpha", "bravo"))
        bad = replace(
            config,
            keys=tuple(
                replace(k, credential=Credential(k.credential.api_key, "wrong"))
                for k in config.keys
            ),
        )
        async with FeedManager(bad) as feed:
            stream = feed.ticks()
            with pytest.raises(NoUsableKeyError, match="every key was refused with HTTP 403"):
                await asyncio.wait_for(anext(stream), 10)


async def test_a_taken_slot_is_planned_around_and_won_back() -> None:
    tokens = nse(90)
    alpha = account("alpha")
    async with simulator(seed=7) as sim:
        url = f"{sim.url}/?api_key={alpha.api_key}&access_token={alpha.access_token}"
        config = make_config(sim.url, tokens, keys=("alpha",))
        async with connect(url) as squatter, FeedManager(config) as feed:
            events = feed.events()
            limited = await next_matching(events, status("slot_limited", "alpha"))
            assert isinstance(limited, StatusEvent)
            assert limited.message == (
                "refused a connection with HTTP 429: another program holds this key's "
                "connections; using 2 of 3"
            )
            await tokens_ticking(feed.ticks(), set(tokens))
            assert feed.key_state("alpha") is KeyState.SLOT_LIMITED
            mine = [c for c in sim.connections(alpha.api_key) if c.subscriptions]
            assert sorted(len(c.subscriptions) for c in mine) == [45, 45]
            await squatter.close()
            await next_matching(
                events, lambda e: isinstance(e, StatusEvent) and e.message.endswith("won back")
            )
            await sim_until(
                sim,
                lambda: (
                    sorted(len(c.subscriptions) for c in sim.connections(alpha.api_key))
                    == [30, 30, 30]
                ),
            )
            await tokens_ticking(feed.ticks(), set(tokens))
            assert feed.plan == feed.home_plan


async def test_a_slow_consumer_is_bounded_and_every_drop_counted() -> None:
    tokens = nse(3000)
    tuning = replace(FAST, queue_max_ticks=5000)
    async with simulator(seed=7, rate=None) as sim:
        config = make_config(sim.url, tokens, keys=("alpha",), tuning=tuning)
        async with FeedManager(config) as feed:
            slow = feed.ticks()  # never read until the end
            fast = feed.ticks(max_ticks=10_000_000)
            read = 0
            async with asyncio.timeout(30):
                async for batch in fast:
                    read += len(batch.ticks)
                    if read > 200_000:
                        break
            # The sockets kept being read (the fast consumer got everything) while the slow
            # consumer's queue stayed within its bound, and what did not fit was counted.
            assert slow.queued_ticks <= 5000
            assert slow.dropped_ticks > 150_000
            assert feed.stats().totals.drops == slow.dropped_ticks
            queued = sum(len(batch.ticks) for batch in slow.drain())
            assert queued + slow.dropped_ticks == read + fast.queued_ticks
            assert fast.dropped_ticks == 0


async def test_malformed_frames_are_counted_and_skipped() -> None:
    tokens = nse(30)
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens, keys=("alpha",), max_connections_per_key=1)
        async with FeedManager(config) as feed:
            events = feed.events()
            await next_matching(events, status("connected", "alpha"))
            assert await sim.send_malformed() == 1
            error = await next_matching(events, lambda e: isinstance(e, ErrorEvent))
            assert isinstance(error, ErrorEvent)
            assert error.text.startswith("skipped a frame: malformed frame at byte ")
            await tokens_ticking(feed.ticks(), set(tokens))
            stats = feed.key_stats("alpha")
            assert stats.decode_errors == 1
            assert stats.reconnects == 0


async def connections_ticking(
    stream: EventStream[TickBatch], connections: set[tuple[str, int]], within: float = 10.0
) -> None:
    """Read the stream until a frame of ticks has come from each of these connections."""
    missing = set(connections)
    async with asyncio.timeout(within):
        async for batch in stream:
            missing.discard((batch.key, batch.connection))
            if not missing:
                return
    raise AssertionError(f"no ticks from {sorted(missing)}")


ONE_EACH = {(key_id, 0) for key_id in KEYS}


async def test_hostile_texts_on_one_connection_leave_every_key_streaming() -> None:
    tokens = nse(60)
    alpha = account("alpha").api_key
    hostile = [
        order_message({"order_id": ["A1"], "status": "OPEN"}),
        '{"type":"error","data":' + "[" * 100_000 + "]" * 100_000 + "}",
        error_message("\x1b[2Jthe screen is cleared"),
    ]
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens, max_connections_per_key=1)
        async with FeedManager(config) as feed:
            events = feed.events()
            assert await tokens_ticking(feed.ticks(), set(tokens)) == set(KEYS)
            opened = {c.id for c in sim.connections()}
            assert len(opened) == 3
            for text in hostile:
                assert await sim.send_text(text, alpha) == 1
            errors: list[ErrorEvent] = []
            async with asyncio.timeout(10):
                async for event in events:
                    assert not isinstance(event, OrderEvent)
                    if isinstance(event, ErrorEvent):
                        errors.append(event)
                        if len(errors) == 3:
                            break
            assert [(e.key, e.connection, e.text) for e in errors] == [
                (
                    "alpha",
                    0,
                    "skipped a text message: order message whose order_id is a list, "
                    "not a string or a number",
                ),
                ("alpha", 0, "skipped a text message: text message nests deeper than 32 levels"),
                ("alpha", 0, "\x1b[2Jthe screen is cleared"),
            ]
            # Every connection of every key goes on ticking, on the sockets it had.
            await connections_ticking(feed.ticks(), ONE_EACH)
            assert {c.id for c in sim.connections()} == opened
            stats = feed.stats()
            counts = {
                key.key_id: (
                    key.decode_errors,
                    key.server_errors,
                    key.internal_errors,
                    key.reconnects,
                )
                for key in stats.keys
            }
            assert counts == {"alpha": (2, 1, 0, 0), "bravo": (0, 0, 0, 0), "charlie": (0, 0, 0, 0)}
            assert stats.key("alpha").orders == 0
            assert [k.state for k in stats.keys] == [KeyState.CONNECTED] * 3
            # The JSON line keeps the exact text; the dashboard shows it without the escape.
            line = json_lines(errors[2:], feed.name_of)
            assert json.loads(line)["message"] == "\x1b[2Jthe screen is cleared"
            assert "\x1b" not in line
            screen = Console(file=io.StringIO(), width=160, color_system=None)
            screen.print(
                dashboard(
                    TickBoard(tokens),
                    stats,
                    feed.name_of,
                    errors,
                    now=time.time(),
                    title="kitefan",
                    width=160,
                    height=40,
                )
            )
            shown = screen.file.getvalue()  # type: ignore[attr-defined]  # the console writes to a StringIO
            assert "\x1b" not in shown
            assert "alpha#0 error: [2Jthe screen is cleared" in shown


async def test_a_bug_in_one_connection_restarts_only_that_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The fault injected is a bug: the text handling of every connection raises on this text.
    decode = decode_text  # what kitefan.connection calls, patched there below

    def buggy(text: str | bytes) -> ServerMessage:
        if text == "trigger the bug":
            raise RuntimeError("a bug in kitefan")
        return decode(text)

    monkeypatch.setattr(connection_module, "decode_text", buggy)
    caplog.set_level(logging.DEBUG, logger="kitefan.manager")
    tokens = nse(60)
    alpha = account("alpha").api_key
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens, max_connections_per_key=1)
        async with FeedManager(config) as feed:
            events = feed.events()
            assert await tokens_ticking(feed.ticks(), set(tokens)) == set(KEYS)
            others = {
                c.id for k in ("bravo", "charlie") for c in sim.connections(account(k).api_key)
            }
            assert await sim.send_text("trigger the bug", alpha) == 1
            error = await next_matching(events, lambda e: isinstance(e, ErrorEvent))
            assert isinstance(error, ErrorEvent)
            assert (error.key, error.connection, error.text) == (
                "alpha",
                0,
                "internal error (RuntimeError) in kitefan: restarting the connection",
            )
            lost = await next_matching(events, status("reconnecting"))
            assert isinstance(lost, StatusEvent)
            assert (lost.key, lost.connection, lost.message) == (
                "alpha",
                0,
                "lost: internal error (RuntimeError)",
            )
            back = await next_matching(events, status("connected"))
            assert isinstance(back, StatusEvent)
            assert (back.key, back.connection) == ("alpha", 0)
            assert back.gap is not None
            assert back.gap.reason == "internal error (RuntimeError)"
            assert len(back.gap.tokens) == 20
            # The restarted connection resubscribed; every key streams, the others untouched.
            gap_tokens = set(back.gap.tokens)
            await sim_until(sim, lambda: sim_tokens_of(sim, "alpha") == gap_tokens)
            await connections_ticking(feed.ticks(), ONE_EACH)
            assert {
                c.id for k in ("bravo", "charlie") for c in sim.connections(account(k).api_key)
            } == others
            assert sim.close_codes() == {1006: 1}  # the old socket was aborted
            counts = {
                key.key_id: (key.internal_errors, key.reconnects) for key in feed.stats().keys
            }
            assert counts == {"alpha": (1, 1), "bravo": (0, 0), "charlie": (0, 0)}
            assert feed.stats().as_dict()["totals"]["internal_errors"] == 1
    # One line at error level, without the traceback; the traceback at debug level only.
    failures = [
        r
        for r in caplog.records
        if r.name == "kitefan.manager" and (r.levelno >= logging.WARNING or r.exc_info)
    ]
    assert [(r.levelno, r.getMessage(), r.exc_info is not None) for r in failures] == [
        (
            logging.ERROR,
            "connection alpha#0: internal error (RuntimeError) in kitefan; restarting the "
            "connection (the traceback is logged at debug level)",
            False,
        ),
        (logging.DEBUG, "the traceback of that internal error", True),
    ]


async def test_a_bug_while_opening_a_connection_aborts_its_socket_and_restarts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fault injected is a bug in the manager's handling of alpha's first open.
    opened = FeedManager._on_opened
    bugs = [("alpha", 0)]

    def buggy(self: FeedManager, conn: connection_module.FeedConnection) -> None:
        if (conn.key_id, conn.index) in bugs:
            bugs.remove((conn.key_id, conn.index))
            raise KeyError("a bug in kitefan")
        opened(self, conn)

    monkeypatch.setattr(FeedManager, "_on_opened", buggy)
    tokens = nse(30)
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens, max_connections_per_key=1)
        async with FeedManager(config) as feed:
            events = feed.events()
            error = await next_matching(events, lambda e: isinstance(e, ErrorEvent))
            assert isinstance(error, ErrorEvent)
            assert (error.key, error.connection, error.text) == (
                "alpha",
                0,
                "internal error (KeyError) in kitefan: restarting the connection",
            )
            assert await tokens_ticking(feed.ticks(), set(tokens)) == set(KEYS)
            await sim_until(sim, lambda: sim.close_codes() == {1006: 1})
            assert len(sim.connections()) == 3
            counts = {
                key.key_id: (key.internal_errors, key.reconnects) for key in feed.stats().keys
            }
            assert counts == {"alpha": (1, 1), "bravo": (0, 0), "charlie": (0, 0)}


async def test_live_changes_use_the_plan_and_diff() -> None:
    tokens = nse(30)
    bravo = account("bravo").api_key
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens, keys=("alpha", "bravo"))
        async with FeedManager(config) as feed:
            await tokens_ticking(feed.ticks(), set(tokens))
            added = nse(4, start=9000)
            change = feed.subscribe(added, mode=Mode.FULL, key="bravo")
            assert change.subscribe_count == 4
            await sim_until(sim, lambda: set(added) <= sim_tokens_of(sim, "bravo"))
            assert {feed.plan.where(t)[0] for t in added} == {"bravo"}  # type: ignore[index]  # planned tokens: where() is not None
            change = feed.set_mode(added[:2], Mode.LTP)
            assert change.mode_change_count == 2
            await sim_until(
                sim,
                lambda: (
                    [
                        mode
                        for c in sim.connections(bravo)
                        for token, mode in c.subscriptions.items()
                        if token in added
                    ].count(Mode.LTP)
                    == 2
                ),
            )
            change = feed.unsubscribe(tokens[:5])
            assert change.unsubscribe_count == 5
            await sim_until(
                sim,
                lambda: (
                    not set(tokens[:5])
                    & (sim_tokens_of(sim, "alpha") | sim_tokens_of(sim, "bravo"))
                ),
            )
            assert feed.stats().totals.symbols == 29


async def test_a_refused_subscribe_sends_nothing_and_the_connection_streams_on() -> None:
    tokens = nse(6)
    added = nse(1, start=9000)[0]
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens, keys=("alpha",), max_connections_per_key=1)
        async with FeedManager(config) as feed:
            events = feed.events()
            await tokens_ticking(feed.ticks(), set(tokens))
            (conn,) = sim.connections(account("alpha").api_key)
            before = replace(conn.requests)
            # Issue 8: each of these used to reach the wire, or the feed's state, and poison it.
            with pytest.raises(SymbolError, match="needs the instruments dump"):
                feed.subscribe(["NSE:INFY"])  # this config has no dump
            with pytest.raises(SymbolError, match="not an instrument token"):
                feed.subscribe([added, 2**32])
            with pytest.raises(SymbolError, match="not a mode"):
                feed.subscribe([added], mode="FULL")
            with pytest.raises(SymbolError, match="neither an instrument token"):
                feed.set_mode(["408065x"], Mode.LTP)
            # A good request after them: when it has arrived, anything sent before it has too.
            feed.subscribe([str(added)], mode="full")
            await sim_until(sim, lambda: conn.subscriptions.get(added) is Mode.FULL)
            assert conn.requests == replace(
                before,
                subscribe_messages=before.subscribe_messages + 1,
                subscribe_tokens=before.subscribe_tokens + 1,
                mode_messages=before.mode_messages + 1,
                mode_tokens=before.mode_tokens + 1,
            )
            assert conn.requests.invalid_messages == 0
            assert feed.stats().totals.symbols == 7
            assert all(isinstance(spec.token, int) for spec in feed.never_ticked())
            # After a reconnect the whole batch is accepted: every symbol ticks again.
            assert await sim.drop_connections() == 1
            (again,) = await sim.wait_for_connections(1)
            await tokens_ticking(feed.ticks(), {*tokens, added})
            assert again.subscriptions == {**dict.fromkeys(tokens, Mode.QUOTE), added: Mode.FULL}
            assert again.requests.invalid_messages == 0
            assert [e for e in events.drain() if isinstance(e, ErrorEvent)] == []
            assert feed.key_stats("alpha").server_errors == 0


async def test_exchange_delay_leaves_out_the_cached_ticks_sent_on_subscribe() -> None:
    tokens = nse(20)
    async with simulator(seed=7) as sim:
        started = int(time.time())
        for token in tokens:  # the market has known these for a while: cached ticks are old
            sim.market.instrument(token, started - 100)
        config = make_config(sim.url, tokens, keys=("alpha",), mode=Mode.FULL)
        async with FeedManager(config) as feed:
            stream = feed.ticks()
            stale = fresh = 0
            async with asyncio.timeout(15):
                async for batch in stream:
                    for tick in batch.ticks:
                        if tick.kind == 184:
                            stale += tick.exchange_epoch_s < started  # type: ignore[operator]  # full ticks carry the exchange time
                            fresh += tick.exchange_epoch_s >= started  # type: ignore[operator]  # full ticks carry the exchange time
                    if stale and fresh >= 40:
                        break
            delays = [c.exchange_delay_p99_s for c in feed.key_stats("alpha").connections]
            assert delays
            assert all(d is not None and 0 <= d <= 1 for d in delays)


async def test_an_applied_config_keeps_the_running_tuning_and_unknown_keys_are_refused() -> None:
    tokens = nse(10)
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens, keys=("alpha",))
        async with FeedManager(config) as feed:
            edited = replace(config, tuning=replace(FAST, liveness_timeout_s=9.0))
            change = feed.apply_config(edited)
            assert change.is_empty
            assert feed.config.tuning == FAST
            with pytest.raises(FeedError, match="no key 'nope' in the config; the keys are alpha"):
                feed.never_ticked("nope")
            with pytest.raises(FeedError, match="adds, removes or reorders keys"):
                feed.preview_config(make_config(sim.url, tokens, keys=("alpha", "bravo")))


# Holding some keys (--share) ---------------------------------------------------------------


async def test_held_keys_stream_their_part_of_the_whole_plan_and_a_key_let_go_is_closed() -> None:
    tokens = nse(30)
    async with simulator(seed=7) as sim:
        config = make_config(sim.url, tokens, max_connections_per_key=2)
        feed = FeedManager(config)
        await feed.hold_keys(())  # before entering: entering opens nothing
        async with feed:
            plan = feed.plan
            assert sim.connections() == []
            await feed.hold_keys(["bravo"])
            bravo = planned_tokens(plan, "bravo")
            assert len(bravo) == 10
            await sim_until(sim, lambda: sim_tokens_of(sim, "bravo") == bravo)
            assert sim.connections(account("alpha").api_key) == []
            assert feed.plan is plan  # the same whole-config plan
            stream = feed.ticks()
            assert await tokens_ticking(stream, bravo) == {"bravo"}
            # Letting bravo go returns once its connections are closed; alpha takes its part.
            await feed.hold_keys(["alpha"])
            assert sim.connections(account("bravo").api_key) == []
            alpha = planned_tokens(plan, "alpha")
            await sim_until(sim, lambda: sim_tokens_of(sim, "alpha") == alpha)
            assert {c.state for c in feed.key_stats("bravo").connections} == {"closed"}
            # A refused key's symbols stay on it: the plan never changes while keys are held.
            await sim.expire_token(account("alpha").api_key)
            await eventually(lambda: feed.key_state("alpha") is KeyState.AUTH_FAILED)
            assert feed.plan == plan
            with pytest.raises(FeedError, match="no key 'delta'"):
                await feed.hold_keys(["delta"])
        await sim_until(sim, lambda: not sim.connections())
        assert sim.refusals().get(429, 0) == 0
