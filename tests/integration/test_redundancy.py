"""Redundant feeds against the real simulator: every symbol on two keys, one key's connections
dropped again and again or its packets lost, and every snapshot delivered once.

A third key (``charlie``) streams the same symbols without redundancy and is never faulted: it is
the reference for which snapshots the simulator sent. Waits are on conditions, under timeouts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from functools import partial

import pytest
from app_configs import app_config
from polling import eventually
from simulators import KEYS, account, simulator

from kitefan.config import AppConfig, Tuning
from kitefan.events import StatusEvent, TickBatch
from kitefan.manager import FeedManager
from kitefan.models import Mode

pytestmark = pytest.mark.integration

FAST = Tuning(
    connect_timeout_s=2.0,
    liveness_timeout_s=0.6,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    backoff_jitter=0.1,
    close_timeout_s=1.0,
)
TOKENS = [((2000 + i) << 8) | 1 for i in range(20)]


def config(url: str, keys: tuple[str, ...], redundancy: int) -> AppConfig:
    return app_config(
        keys,
        TOKENS,
        url=url,
        mode=Mode.FULL,
        max_connections_per_key=1,
        tuning=FAST,
        redundancy=redundancy,
    )


class Seconds:
    """The (token, exchange second) of every full tick a stream delivered, counted."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[int, int]] = Counter()

    def add(self, batch: TickBatch) -> None:
        for tick in batch.ticks:
            if tick.kind == 184:  # a symbol ticks in quote mode until its mode message is read
                self.seen[(tick.values[0], tick.values[15])] += 1

    def latest(self) -> int:
        return max((second for _, second in self.seen), default=0)

    def past(self, second: int) -> bool:
        """Whether a tick of a later second than ``second`` came."""
        return self.latest() >= second + 1

    def between(self, first: int, last: int) -> Counter[tuple[int, int]]:
        return Counter({k: n for k, n in self.seen.items() if first <= k[1] <= last})


class Both:
    """Reads a redundant feed (its ticks and status events) and a reference feed, in tasks."""

    def __init__(self, feed: FeedManager, reference: FeedManager) -> None:
        self.merged, self.truth = Seconds(), Seconds()
        self.statuses: list[StatusEvent] = []
        events, ticks = feed.events(), reference.ticks()

        async def read() -> None:
            async for item in events:
                if isinstance(item, TickBatch):
                    self.merged.add(item)
                elif isinstance(item, StatusEvent):
                    self.statuses.append(item)

        async def read_reference() -> None:
            async for batch in ticks:
                self.truth.add(batch)

        self.tasks = [asyncio.create_task(read()), asyncio.create_task(read_reference())]


async def test_one_keys_connections_dropped_again_and_again_lose_no_tick() -> None:
    async with simulator(seed=11) as sim:
        feed = FeedManager(config(sim.url, ("alpha", "bravo"), 2))
        reference = FeedManager(config(sim.url, ("charlie",), 1))
        async with feed, reference:
            both = Both(feed, reference)
            merged, truth, statuses, readers = both.merged, both.truth, both.statuses, both.tasks
            for key_id in KEYS:
                await sim.wait_for_subscriptions(len(TOKENS), account(key_id).api_key)
            await eventually(lambda: truth.latest() > 0)
            first = truth.latest() + 1  # the first second every key streamed whole
            for _ in range(3):
                await eventually(lambda: len(truth.seen) > 0 and truth.latest() >= first + 1)
                mark = truth.latest()
                assert await sim.drop_connections(account("alpha").api_key) == 1
                await sim.wait_for_subscriptions(len(TOKENS), account("alpha").api_key)
                await eventually(partial(truth.past, mark))
            last = truth.latest() + 1
            await eventually(lambda: truth.latest() >= last + 1)
            await eventually(lambda: merged.between(last, last) == truth.between(last, last))
            stats = feed.stats()

            for task in readers:
                task.cancel()
        # Every full-mode symbol's every exchange second, once: what the reference got.
        expected = truth.between(first, last)
        assert set(expected.values()) == {1}
        assert {token for token, _ in expected} == set(TOKENS)
        assert merged.between(first, last) == expected
        # none twice, to the end (before `first`, a symbol's subscribe snapshot and its first
        # step can share an exchange second, on the reference too)
        assert set(merged.between(first, merged.latest()).values()) == {1}
        # alpha's reconnects are status events, but bravo carried every symbol: no gap.
        alpha_back = [s for s in statuses if s.key == "alpha" and s.state == "connected"]
        assert len(alpha_back) >= 4  # the first connection, then one per drop
        assert all(s.gap is None for s in statuses)
        redundancy = stats.redundancy
        assert redundancy is not None
        received = stats.totals.ticks
        assert redundancy.delivered + sum(redundancy.duplicates.values()) == received


async def test_packets_lost_on_one_key_are_one_sided_ticks_counted_as_missed() -> None:
    async with simulator(seed=11) as sim:
        sim.set_silent(True)
        feed = FeedManager(config(sim.url, ("alpha", "bravo"), 2))
        alpha, bravo = account("alpha").api_key, account("bravo").api_key
        async with feed:
            ticks = feed.ticks()
            delivered = Seconds()

            async def read() -> None:
                async for batch in ticks:
                    delivered.add(batch)

            reader = asyncio.create_task(read())
            await sim.wait_for_subscriptions(len(TOKENS), alpha)
            await sim.wait_for_subscriptions(len(TOKENS), bravo)
            sim.drop_packets(bravo, 4)
            sim.set_silent(False)

            def sent(api_key: str) -> int:
                return sum(c.ticks_sent for c in sim.connections(api_key))

            await eventually(lambda: sent(alpha) >= 3 * len(TOKENS))
            sim.set_silent(True)
            sent_alpha, sent_bravo = sent(alpha), sent(bravo)

            def settled() -> bool:
                stats = feed.stats()
                assert stats.redundancy is not None
                return (
                    stats.totals.ticks == sent_alpha + sent_bravo and not stats.redundancy.pending
                )

            await eventually(settled)
            redundancy = feed.stats().redundancy
            reader.cancel()
        assert redundancy is not None
        dropped = sim.packets_dropped(bravo)
        assert dropped >= len(TOKENS) * 3 // 4 - 1
        # What the simulator sent, accounted for: each snapshot delivered once, the rest duplicates.
        assert redundancy.delivered + sum(redundancy.duplicates.values()) == sent_alpha + sent_bravo
        assert redundancy.missed["bravo"] - redundancy.missed["alpha"] == sent_alpha - sent_bravo
        # bravo missed exactly the packets the simulator kept from it (alpha missed none), give or
        # take the frames in flight when the silence fell (at most one per connection).
        assert redundancy.missed["alpha"] <= len(TOKENS)
        assert dropped <= redundancy.missed["bravo"] <= dropped + len(TOKENS)
        assert sum(delivered.seen.values()) == redundancy.delivered


def copies(feed: FeedManager, key_id: str) -> int:
    key = feed.plan.key(key_id)
    return 0 if key is None else sum(len(c.symbols) for c in key.connections)


async def test_a_refused_key_moves_only_its_copies_and_every_symbol_keeps_ticking() -> None:
    """bravo's token expires (403) under redundancy 2 on three keys: its copies move to the key
    of each symbol that did not hold it, alpha's and charlie's stay, and every full-mode symbol
    ticks every exchange second, once, through the failover (delta is the reference)."""
    keys = ("alpha", "bravo", "charlie")
    async with simulator(seed=11, keys=(*keys, "delta")) as sim:
        feed = FeedManager(config(sim.url, keys, 2))
        reference = FeedManager(config(sim.url, ("delta",), 1))
        async with feed, reference:
            both = Both(feed, reference)
            merged, truth, statuses, readers = both.merged, both.truth, both.statuses, both.tasks
            home = {k: copies(feed, k) for k in keys}
            assert sum(home.values()) == 2 * len(TOKENS)
            before = feed.plan.routes()
            for key_id in keys:
                await sim.wait_for_subscriptions(home[key_id], account(key_id).api_key)
            await sim.wait_for_subscriptions(len(TOKENS), account("delta").api_key)
            await eventually(lambda: truth.latest() > 0)
            first = truth.latest() + 1
            await eventually(lambda: truth.latest() >= first + 1)
            await sim.expire_token(account("bravo").api_key)
            await eventually(lambda: copies(feed, "bravo") == 0)
            for key_id in ("alpha", "charlie"):
                await sim.wait_for_subscriptions(len(TOKENS), account(key_id).api_key)
            mark = truth.latest()
            await eventually(lambda: truth.latest() >= mark + 2)
            last = mark + 1
            await eventually(lambda: merged.between(last, last) == truth.between(last, last))
            routes = feed.plan.routes()
            for task in readers:
                task.cancel()
        # Only bravo's copies moved: every copy alpha and charlie held, they still hold; and
        # every symbol is now on alpha and charlie, both.
        assert all(set(r) - {"bravo"} <= set(routes[t]) and len(r) == 2 for t, r in before.items())
        assert {t: sorted(r) for t, r in routes.items()} == {
            t: ["alpha", "charlie"] for t in TOKENS
        }
        expected = truth.between(first, last)
        assert set(expected.values()) == {1}
        assert {token for token, _ in expected} == set(TOKENS)
        assert merged.between(first, last) == expected
        assert [s.state for s in statuses if s.key == "bravo" and s.connection is None] == [
            "auth_failed"
        ]
        assert all(s.gap is None for s in statuses)
