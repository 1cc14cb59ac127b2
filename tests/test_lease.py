"""The lease machine of ``--share``: timing arithmetic, the spread, takeover, and the safety rule
checked against a model of the Redis round (the semantics of kitefan/share.py's script) on a
virtual clock, with delays, lost answers, deaths and a Redis restart. Milliseconds of real time."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest

from kitefan.lease import (
    EXTENDED,
    HOLD,
    NOT_OURS,
    NOTHING,
    RELEASE,
    RELEASED,
    TAKEN,
    LeaseTiming,
    RoundReply,
    ShareMachine,
    group_id,
    lease_key,
    nodes_key,
    share_key,
    stats_key,
    targets,
)

KEYS = ("k1", "k2", "k3", "k4")
FAST = LeaseTiming(lease_s=2.0, close_s=0.5)


@dataclass
class ModelRedis:
    """The round as the Lua script runs it, on a clock given to each call (seconds)."""

    lease_s: float
    run_id: str = "run-1"
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)
    members: dict[str, float] = field(default_factory=dict)
    proved: dict[str, tuple[float, str]] = field(default_factory=dict)
    born: tuple[str, float] | None = None

    def restart(self) -> None:
        """A restart that lost everything (no persistence), with a new run id."""
        self.run_id += "+"
        self.leases.clear()
        self.members.clear()
        self.proved.clear()

    def round(self, now: float, node: str, ops: str) -> RoundReply:
        if self.born is None or self.born[0] != self.run_id:
            self.born = (self.run_id, now)
        opens_at = self.born[1] + self.lease_s
        self.members[node] = now
        self.members = {n: t for n, t in self.members.items() if t > now - self.lease_s}
        results, holders, proved_ms, proved_by = [], [], [], []
        for key, op in zip(KEYS, ops, strict=True):
            holder = self.leases.get(key)
            if holder is not None and holder[1] <= now:
                holder = None
                del self.leases[key]
            before = self.proved.get(key)
            proved_ms.append(None if before is None else round(before[0] * 1000))
            proved_by.append(None if before is None else before[1])
            result = NOT_OURS
            if op == HOLD:
                if holder is not None and holder[0] == node:
                    result = EXTENDED
                elif holder is None and now >= opens_at:
                    result = TAKEN
                if result != NOT_OURS:
                    self.leases[key] = (node, now + self.lease_s)
                    self.proved[key] = (now, node)
            elif op == RELEASE and holder is not None and holder[0] == node:
                del self.leases[key]
                self.proved[key] = (now, node)
                result = RELEASED
            results.append(result)
            current = self.leases.get(key)
            holders.append(None if current is None else current[0])
        return RoundReply(
            tuple(results),
            tuple(holders),
            tuple(proved_ms),
            tuple(proved_by),
            tuple(sorted(self.members)),
            round(now * 1000),
            max(0.0, opens_at - now),
        )


class Node:
    """One process: its machine, and the keys whose connections are open (closing ones too)."""

    def __init__(self, name: str, timing: LeaseTiming = FAST) -> None:
        self.machine = ShareMachine(name, KEYS, timing)
        self.close_s = timing.close_s
        self.alive = True
        # key -> until when its connections may still be open (they close within close_s)
        self.open_until: dict[str, float] = {}
        self.in_flight: tuple[float, float, str] | None = None  # (sent, answer at, ops)
        self.taken: list[str] = []
        self.cut_off = False  # every round gets no answer (partitioned from Redis)

    def apply(self, now: float) -> None:
        """What the runtime does: stop what may not stream, start what may."""
        streaming = self.machine.streaming(now)
        for key in list(self.open_until):
            if key not in streaming and self.open_until[key] == math.inf:
                self.open_until[key] = now + self.close_s
        for key in streaming:
            self.open_until[key] = math.inf
        for key, until in list(self.open_until.items()):
            if until <= now:
                del self.open_until[key]
        self.machine.applied(k for k in self.open_until)

    def streams(self, key: str, now: float) -> bool:
        return self.open_until.get(key, 0.0) > now


def simulate(
    nodes: list[Node],
    redis: ModelRedis,
    *,
    until: float,
    step: float = 0.01,
    rng: random.Random | None = None,
    lose: float = 0.0,
    max_delay: float = 0.0,
    start: float = 0.0,
    events: dict[float, object] | None = None,
) -> float:
    """Run every node on the virtual clock; at every step, no key is open on two nodes."""
    rng = rng or random.Random(0)
    now = start
    while now < until:
        for node in nodes:
            if not node.alive:
                node.open_until.clear()  # SIGKILL: the kernel closes its sockets at once
                continue
            node.apply(now)
            if node.in_flight is not None:
                sent, answer_at, ops = node.in_flight
                if now >= answer_at:
                    node.in_flight = None
                    if node.cut_off or rng.random() < lose:
                        node.machine.failed(sent)
                    else:
                        reply = redis.round(rng.uniform(sent, answer_at), node.machine.node, ops)
                        node.taken += [t.key for t in node.machine.settle(sent, reply)]
                    node.apply(now)
            elif now >= node.machine.next_round_at:
                ops = node.machine.request(now)
                node.in_flight = (now, now + rng.uniform(0, max_delay), ops)
        for key in KEYS:
            holders = [n.machine.node for n in nodes if n.streams(key, now)]
            assert len(holders) <= 1, f"{key} open on {holders} at {now:.2f}"
        now = round(now + step, 6)
    return now


def held(nodes: list[Node], now: float) -> dict[str, list[str]]:
    return {n.machine.node: sorted(n.machine.streaming(now)) for n in nodes if n.alive}


def test_the_default_timing_renews_four_times_a_lease_and_streams_6_9_s_after_a_renewal() -> None:
    timing = LeaseTiming()
    assert (timing.renew_every_s, timing.stop_margin_s) == (2.5, 3.0)
    assert timing.valid_for_s == pytest.approx(6.9)
    assert timing.problem() is None
    assert FAST.valid_for_s == pytest.approx(1.28)
    assert FAST.problem() is None


def test_a_lease_too_short_for_closing_the_connections_is_refused_saying_how_long() -> None:
    assert LeaseTiming(lease_s=2.0, close_s=2.0).problem() == (
        "a share lease of 2 s is too short to close a key's connections (2 s, "
        "tuning.close_timeout_s) before it can pass on: make tuning.share_lease_s at least 5.2"
    )
    assert LeaseTiming(lease_s=5.2, close_s=2.0).problem() is None


def test_targets_give_the_first_members_the_extra_keys_and_add_up_to_every_key() -> None:
    assert targets(["c", "a", "b"], 4) == {"a": 2, "b": 1, "c": 1}
    assert targets(["a", "b", "c", "d"], 4) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert targets(["a", "b", "c"], 2) == {"a": 1, "b": 1, "c": 0}
    assert targets([], 3) == {}
    for n in range(1, 9):
        shares = targets([f"n{i}" for i in range(n)], 7)
        assert sum(shares.values()) == 7
        assert max(shares.values()) == math.ceil(7 / n)


def test_the_group_id_hashes_url_and_keys_and_the_names_use_it_as_a_hash_tag() -> None:
    one = group_id("wss://ws.kite.trade", [("alpha", "SENTINEL-api-key-alpha")])
    assert len(one) == 16 and "SENTINEL" not in one
    assert one == group_id("wss://ws.kite.trade", [("alpha", "SENTINEL-api-key-alpha")])
    assert one != group_id("wss://ws.kite.trade", [("alpha", "SENTINEL-api-key-other")])
    assert one != group_id("ws://127.0.0.1:1", [("alpha", "SENTINEL-api-key-alpha")])
    assert lease_key("g1", "alpha") == "kitefan:lease:{g1}:alpha"
    assert nodes_key("g1") == "kitefan:nodes:{g1}"
    assert share_key("g1") == "kitefan:share:{g1}"
    assert stats_key("g1", "h:1") == "kitefan:stats:{g1}:h:1"


def test_a_lone_node_asks_first_then_takes_every_key_once_the_group_opens() -> None:
    redis = ModelRedis(FAST.lease_s)
    machine = ShareMachine("n1", KEYS, FAST)
    assert machine.request(0.0) == NOTHING * 4
    machine.settle(0.0, redis.round(0.0, "n1", NOTHING * 4))
    assert machine.streaming(0.0) == frozenset()
    # A fresh Redis grants nothing for one lease time: rounds go on at the renewal pace.
    assert machine.view(0.0).opens_in_s == pytest.approx(FAST.lease_s)
    assert machine.next_round_at == pytest.approx(FAST.renew_every_s)
    assert machine.request(0.1) == HOLD * 4
    machine.settle(0.1, redis.round(0.1, "n1", HOLD * 4))
    assert machine.streaming(0.1) == frozenset()
    assert machine.request(2.0) == HOLD * 4
    taken = machine.settle(2.0, redis.round(2.0, "n1", HOLD * 4))
    assert taken == []  # nobody held them before
    assert machine.streaming(2.0) == frozenset(KEYS)
    assert machine.next_round_at == pytest.approx(2.0 + FAST.renew_every_s)


def test_a_node_that_cannot_renew_stops_at_its_deadline_before_redis_lets_the_lease_go() -> None:
    redis = ModelRedis(FAST.lease_s)
    machine = ShareMachine("n1", KEYS, FAST)
    redis.born = ("run-1", -10.0)
    machine.request(0.0)
    machine.settle(0.0, redis.round(0.0, "n1", NOTHING * 4))
    machine.request(0.1)
    machine.settle(0.1, redis.round(0.3, "n1", HOLD * 4))  # Redis ran it 0.2 s after the send
    deadline = 0.1 + FAST.valid_for_s
    assert machine.next_deadline(0.2) == pytest.approx(deadline)
    machine.request(0.6)
    machine.failed(0.6)  # every renewal from here is lost
    assert machine.streaming(deadline - 0.001) == frozenset(KEYS)
    assert machine.streaming(deadline) == frozenset()
    # Closed by deadline + close_s, before the leases expire in Redis (0.3 + lease_s).
    assert deadline + FAST.close_s < 0.3 + FAST.lease_s
    assert redis.round(deadline + FAST.close_s, "n2", HOLD * 4).results == (NOT_OURS,) * 4


def test_three_nodes_settle_at_two_one_one_and_a_fourth_makes_it_one_each() -> None:
    redis = ModelRedis(FAST.lease_s)
    nodes = [Node(f"n{i}") for i in (1, 2, 3)]
    now = simulate(nodes, redis, until=6.0)
    shares = held(nodes, now)
    assert sorted(len(keys) for keys in shares.values()) == [1, 1, 2]
    assert sorted(k for keys in shares.values() for k in keys) == list(KEYS)
    nodes.append(Node("n4"))
    now = simulate(nodes, redis, until=10.0, start=now)
    assert [len(keys) for keys in held(nodes, now).values()] == [1, 1, 1, 1]


def test_the_keys_of_a_node_that_died_are_taken_within_a_lease_and_a_renewal() -> None:
    redis = ModelRedis(FAST.lease_s)
    nodes = [Node(f"n{i}") for i in (1, 2, 3)]
    now = simulate(nodes, redis, until=6.0)
    victim = next(n for n in nodes if len(n.machine.streaming(now)) == 2)
    lost = sorted(victim.machine.streaming(now))
    victim.alive = False
    died = now
    while any(not any(n.streams(k, now) for n in nodes) for k in lost) or now == died:
        now = simulate(nodes, redis, until=now + 0.01, start=now)
        assert now - died < FAST.lease_s + FAST.renew_every_s + 0.1
    survivors = [n for n in nodes if n.alive]
    assert sorted(len(k) for k in held(survivors, now).values()) == [2, 2]
    assert sorted(t for n in survivors for t in n.taken) == lost


@pytest.mark.parametrize("seed", range(6))
def test_never_two_nodes_on_one_key_under_delays_lost_answers_deaths_and_a_restart(
    seed: int,
) -> None:
    rng = random.Random(seed)
    redis = ModelRedis(FAST.lease_s)
    nodes = [Node(f"n{i}") for i in (1, 2, 3)]
    now = simulate(nodes, redis, until=4.0, rng=rng, lose=0.3, max_delay=0.4)
    # One node cut off from Redis while it streams: the others take its keys.
    cut = max(nodes, key=lambda n: len(n.machine.streaming(now)))
    cut.cut_off = True
    now = simulate(nodes, redis, until=8.0, rng=rng, lose=0.1, max_delay=0.4, start=now)
    assert cut.machine.streaming(now) == frozenset()
    cut.cut_off = False
    nodes[rng.randrange(3)].alive = False
    now = simulate(nodes, redis, until=12.0, rng=rng, lose=0.3, max_delay=0.4, start=now)
    redis.restart()
    nodes.append(Node("n4"))
    now = simulate(nodes, redis, until=18.0, rng=rng, lose=0.3, max_delay=0.4, start=now)
    # Answers on time again: the group settles, every key held once.
    now = simulate(nodes, redis, until=24.0, rng=rng, start=now)
    shares = held(nodes, now)
    assert sorted(k for keys in shares.values() for k in keys) == list(KEYS)
    assert max(len(keys) for keys in shares.values()) <= math.ceil(len(KEYS) / 3)


def test_a_restarted_redis_that_forgot_the_leases_grants_none_for_a_lease_time() -> None:
    redis = ModelRedis(FAST.lease_s)
    redis.born = ("run-1", -10.0)
    first = ShareMachine("n1", KEYS, FAST)
    first.request(0.0)
    first.settle(0.0, redis.round(0.0, "n1", NOTHING * 4))
    first.request(0.1)
    first.settle(0.1, redis.round(0.1, "n1", HOLD * 4))
    assert first.streaming(0.2) == frozenset(KEYS)
    redis.restart()
    reply = redis.round(0.3, "n2", HOLD * 4)
    assert reply.results == (NOT_OURS,) * 4
    assert reply.opens_in_s == pytest.approx(FAST.lease_s)
    # By the time the group opens again the first node has stopped (it could not renew).
    assert first.streaming(0.3 + FAST.lease_s) == frozenset()


def test_a_node_over_its_share_stops_the_surplus_first_and_releases_it_once_closed() -> None:
    redis = ModelRedis(FAST.lease_s)
    redis.born = ("run-1", -10.0)
    machine = ShareMachine("n1", KEYS, FAST)
    machine.request(0.0)
    machine.settle(0.0, redis.round(0.0, "n1", NOTHING * 4))
    machine.request(0.1)
    machine.settle(0.1, redis.round(0.1, "n1", HOLD * 4))
    machine.applied(KEYS)
    redis.round(0.2, "n2", NOTHING * 4)  # a second member appears
    machine.request(0.3)
    machine.settle(0.3, redis.round(0.3, "n1", HOLD * 4))
    kept = machine.streaming(0.3)
    assert len(kept) == 2  # n1 sorts first: 2 of 4
    given = set(KEYS) - kept
    # Still open here: the release waits, the lease is kept meanwhile.
    ops = machine.request(0.31)
    assert {KEYS[i] for i, op in enumerate(ops) if op == HOLD} == set(KEYS)
    machine.settle(0.31, redis.round(0.31, "n1", ops))
    machine.applied(kept)
    ops = machine.request(0.4)
    assert {KEYS[i] for i, op in enumerate(ops) if op == RELEASE} == given
    reply = redis.round(0.4, "n1", ops)
    assert {KEYS[i] for i, r in enumerate(reply.results) if r == RELEASED} == given
    machine.settle(0.4, reply)
    assert machine.view(0.4).handing_over == ()
    # The other member takes them, and says from when nobody streamed them.
    other = ShareMachine("n2", KEYS, FAST)
    other.request(0.5)
    other.settle(0.5, redis.round(0.5, "n2", NOTHING * 4))
    other.request(0.6)
    taken = other.settle(0.6, redis.round(0.6, "n2", other.request(0.6)))
    assert {t.key for t in taken} == given
    assert {(t.previous, t.since) for t in taken} == {("n1", 0.4)}


def test_a_key_ours_in_redis_but_not_here_is_released() -> None:
    redis = ModelRedis(FAST.lease_s)
    redis.born = ("run-1", -10.0)
    redis.round(0.0, "n1", HOLD + NOTHING * 3)  # held by n1 before it lost track of it
    machine = ShareMachine("n1", KEYS, FAST)
    machine.request(0.1)
    machine.settle(0.1, redis.round(0.1, "n1", NOTHING * 4))
    assert machine.streaming(0.1) == frozenset()
    assert machine.request(0.2)[0] == RELEASE
