"""``kitefan stream --share``: several processes of one config share its keys through a real Redis.

The simulator runs in the test's process (it counts every key's connections: the most open at
once, and every refusal with 429); ``redis-server`` runs on a free loopback port; each stream is
its own process (through :mod:`processes`), with a 2 s lease so that takeovers take seconds.
Who holds which key is read where the streams keep it: the lease keys in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import processes
import pytest
from polling import eventually
from redisserver import RedisServer, running_redis
from simulators import nse
from streams import ROOT, account, environment, kitefan, write_config

from kitefan.lease import group_id, lease_key, nodes_key
from kitefan.simulator import Simulator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYS = ("alpha", "bravo", "charlie", "delta")
LEASE_S = 2.0
TUNING = {
    "share_lease_s": LEASE_S,
    "close_timeout_s": 0.5,
    "connect_timeout_s": 2.0,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.2,
    "liveness_timeout_s": 1.0,
}
#: Two symbols a key: the round-robin plan puts them on two connections of each key.
TOKENS = nse(2 * len(KEYS))
PLANNED_CONNECTIONS = 2


@dataclass
class Member:
    """One ``kitefan stream --share`` process and its output."""

    command: processes.Command
    stdout: Path
    stderr: Path
    node: str = ""

    def records(self) -> list[dict[str, Any]]:
        data = self.stdout.read_bytes()
        data = data[: data.rfind(b"\n") + 1]
        return [json.loads(line) for line in data.splitlines()]


@contextlib.asynccontextmanager
async def member(
    config: Path, env: dict[str, str], directory: Path, name: str, redis: RedisServer
) -> AsyncIterator[Member]:
    stdout, stderr = directory / f"{name}.jsonl", directory / f"{name}.err"
    argv = ["stream", "--config", str(config), "--share", "--publish", redis.url]
    async with processes.started(
        *processes.kitefan(*argv, "--format", "jsonl"),
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=stderr,
    ) as command:
        found = Member(command, stdout, stderr)
        try:
            yield found
        finally:
            await command.interrupt()


@contextlib.asynccontextmanager
async def setting(
    tmp_path: Path, runtime: Path
) -> AsyncIterator[tuple[Simulator, RedisServer, Path, dict[str, str]]]:
    async with (
        running_redis() as redis,
        Simulator(
            [account(k) for k in KEYS], port=0, seed=3, rate=20.0, heartbeat_interval_s=0.2
        ) as sim,
    ):
        config = write_config(
            tmp_path / "shared.toml", sim.url, quote=TOKENS, keys=KEYS, tuning=TUNING
        )
        yield sim, redis, config, environment(runtime)


def group_of(sim: Simulator) -> str:
    return group_id(sim.url, [(k, account(k).api_key) for k in KEYS])


async def holders(redis: RedisServer, group: str) -> dict[str, str | None]:
    client = redis.client()
    try:
        values = await client.mget([lease_key(group, k) for k in KEYS])
    finally:
        await client.aclose()
    return {k: None if v is None else v.decode() for k, v in zip(KEYS, values, strict=True)}


def streaming_everything(sim: Simulator) -> bool:
    """Every key's two connections open, with their planned symbols subscribed."""
    for key_id in KEYS:
        conns = sim.connections(account(key_id).api_key)
        if len(conns) != PLANNED_CONNECTIONS or any(len(c.subscriptions) != 1 for c in conns):
            return False
    return True


async def settled(
    sim: Simulator, redis: RedisServer, group: str, nodes: int, within: float = 20.0
) -> dict[str, str | None]:
    """Wait until every key is held, no node holds more than its share, and every key streams."""
    share = math.ceil(len(KEYS) / nodes)
    async with asyncio.timeout(within):
        while True:
            held = await holders(redis, group)
            counts = [list(held.values()).count(n) for n in set(held.values())]
            if (
                None not in held.values()
                and len(set(held.values())) == nodes
                and max(counts) <= share
                and streaming_everything(sim)
            ):
                return held
            await asyncio.sleep(0.05)


def ticked_after(member: Member, tokens: set[int], since: int) -> set[int]:
    """The tokens of ``tokens`` that ``member`` wrote a tick of after its first ``since``
    records."""
    return {
        r["instrument_token"]
        for r in member.records()[since:]
        if r["type"] == "tick" and r["instrument_token"] in tokens
    }


def key_tokens(key_id: str) -> set[int]:
    index = KEYS.index(key_id)
    return {TOKENS[index], TOKENS[index + len(KEYS)]}


def assert_never_two_on_one_key(sim: Simulator) -> None:
    """No 429, and no key ever had more connections open at once than its plan's."""
    assert sim.refusals().get(429, 0) == 0
    for key_id in KEYS:
        assert sim.peak_connections(account(key_id).api_key) <= PLANNED_CONNECTIONS


@pytest.mark.timeout(120)
async def test_three_share_a_config_a_killed_one_is_taken_over_and_a_fourth_rebalances(
    tmp_path: Path, runtime_dir: Path
) -> None:
    async with setting(tmp_path, runtime_dir) as (sim, redis, config, env):
        group = group_of(sim)
        async with contextlib.AsyncExitStack() as stack:
            members = [
                await stack.enter_async_context(member(config, env, tmp_path, f"m{i}", redis))
                for i in range(3)
            ]
            held = await settled(sim, redis, group, nodes=3)
            for m in members:
                m.node = next(n for n in held.values() if n and n.endswith(f":{m.command.pid}"))
            # kitefan stats on any of them shows the whole group.
            code, out, err = await kitefan(
                "stats", "--config", str(config), "--format", "json", env=env
            )
            assert code == 0, err
            share = json.loads(out)["share"]
            assert share["group"] == group
            assert sorted(share["members"]) == sorted(m.node for m in members)
            assert sorted(n["share"]["node"] for n in share["nodes"]) == sorted(share["members"])
            assert sorted(k for n in share["nodes"] for k in n["share"]["streaming"]) == list(KEYS)

            # SIGKILL the one holding alpha: its keys tick again within 15 s, from the others.
            victim = next(m for m in members if m.node == held["alpha"])
            lost = [k for k, n in held.items() if n == victim.node]
            survivors = [m for m in members if m is not victim]
            written = [len(m.records()) for m in survivors]
            killed_at = time.time()
            victim.command.kill()
            await victim.command.wait()
            tokens = set().union(*(key_tokens(k) for k in lost))

            def back() -> bool:
                seen = set().union(
                    *(ticked_after(m, tokens, n) for m, n in zip(survivors, written, strict=True))
                )
                return seen == tokens

            await eventually(back, within=15.0, every=0.05)
            took = time.time() - killed_at
            assert took < 15.0
            after = await holders(redis, group)
            assert set(after.values()) == {m.node for m in survivors}

            # The gap is a status event in the stream of the one that took each key.
            def gaps() -> list[dict[str, Any]]:
                return [
                    r
                    for m, n in zip(survivors, written, strict=True)
                    for r in m.records()[n:]
                    if r["type"] == "status" and r["state"] == "taken_over"
                ]

            await eventually(lambda: len(gaps()) == len(lost), within=5.0, every=0.05)
            assert sorted(g["key"] for g in gaps()) == sorted(lost)
            for g in gaps():
                assert g["message"].startswith(f"taken over from {victim.node}: its 2 symbols")
                assert g["gap"]["reason"] == f"taken over from {victim.node}"
                assert 0 < g["gap"]["seconds"] < 15

            # A fourth joins (three live again): it takes a key from one that held two.
            assert sorted(list(after.values()).count(m.node) for m in survivors) == [2, 2]
            fourth = await stack.enter_async_context(member(config, env, tmp_path, "m3", redis))
            held = await settled(sim, redis, group, nodes=3)
            counts = {n: list(held.values()).count(n) for n in set(held.values())}
            assert sorted(counts.values()) == [1, 1, 2]
            assert [counts[n] for n in counts if n and n.endswith(f":{fourth.command.pid}")] == [1]
            # Stopped with SIGINT, each releases its leases and leaves (its entry in the
            # members' set would otherwise stay until the set expires, three leases later).
            live = [*survivors, fourth]
            for m in live:
                m.command.send_signal(signal.SIGINT)
            await asyncio.gather(*(m.command.wait() for m in live))
            assert [m.command.returncode for m in live] == [0, 0, 0]
            assert await holders(redis, group) == dict.fromkeys(KEYS)
            client = redis.client()
            try:
                assert await client.zcard(nodes_key(group)) == 0
            finally:
                await client.aclose()
        assert_never_two_on_one_key(sim)


@pytest.mark.timeout(90)
async def test_redis_lost_stops_every_key_before_its_lease_ends_and_they_come_back_after(
    tmp_path: Path, runtime_dir: Path
) -> None:
    async with setting(tmp_path, runtime_dir) as (sim, redis, config, env):
        group = group_of(sim)
        async with member(config, env, tmp_path, "only", redis) as only:
            await settled(sim, redis, group, nodes=1)
            lost_at = time.monotonic()
            await redis.stop()
            # Within the lease (the arithmetic stops at 1.28 s after the last renewal sent, and
            # closes within 0.7 s more): no connection of any key is left open.
            await eventually(lambda: not sim.connections(), within=LEASE_S + 1.0, every=0.05)
            assert time.monotonic() - lost_at < LEASE_S + 0.5
            await redis.start()
            back_at = time.monotonic()
            await settled(sim, redis, group, nodes=1, within=15.0)
            # A restarted Redis grants no lease for one lease time.
            assert time.monotonic() - back_at >= LEASE_S
            lapsed = [
                r["key"]
                for r in only.records()
                if r["type"] == "status" and r["state"] == "lease_lapsed"
            ]
            assert sorted(lapsed) == list(KEYS)
            assert "cannot renew the share leases at redis://127.0.0.1" in only.stderr.read_text()
        assert_never_two_on_one_key(sim)
