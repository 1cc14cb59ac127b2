"""Running ``kitefan stream --share``: one config's keys shared by several processes through Redis.

:class:`Sharer` runs beside the feed. The decisions are the pure
:class:`kitefan.lease.ShareMachine`'s (read its docstring for the leases, the safety arithmetic
and the spread); this module carries them out:

* a round is one Lua script (:data:`ROUND_SCRIPT`), atomic in Redis: it beats for this node in
  the members' sorted set, stores this node's stats snapshot (``kitefan:stats:{G}:NODE``, JSON,
  expiring after three lease times), and per key holds (compare-and-extend, else ``SET NX PX``),
  releases (compare-and-delete) or only looks. Before it, on the same connection, ``INFO server``
  gives the Redis ``run_id`` the script compares with the group's (a restarted Redis grants no
  lease for one lease time);
* before and after every round, and at every key's deadline, the feed is told which keys it may
  stream (:meth:`kitefan.manager.FeedManager.hold_keys`, which returns once a key let go is
  closed; only then can a round release it);
* a key taken that someone held before is reported, once its connections are up, as a status
  event ``taken_over`` with the gap: from when its previous holder last proved it (by Redis'
  clock) to when it streams again, and the plan's symbols of that key; a key that could not be
  renewed in time is reported as ``lease_lapsed`` when it stops.

Redis has its own connection here (one, never a pool), apart from the publisher's: a slow
``XADD`` batch never holds up a renewal. Redis unreachable: one ``warning:`` line (once per
outage); every key stops at its deadline; rounds go on every half renewal, and once Redis
answers the keys are taken again by the spread (after one lease time if it restarted). The
password never appears in a message.

Owns: ``Sharer``, ``ROUND_SCRIPT``, ``group_snapshots``. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from kitefan.config import PublishConfig
from kitefan.events import ConnState, Gap, Status
from kitefan.lease import (
    RELEASE,
    LeaseTiming,
    RoundReply,
    ShareMachine,
    Taken,
    lease_key,
    nodes_key,
    share_key,
    stats_key,
)
from kitefan.manager import FeedManager
from kitefan.publish import redis_client, scrub

__all__ = ["ROUND_SCRIPT", "Sharer", "group_snapshots"]

log = logging.getLogger(__name__)

#: One round: KEYS = members, the group's hash, this node's stats, then every key's lease;
#: ARGV = node, lease ms, Redis run id, one op per key (a hold, x release, - nothing), the stats
#: JSON. Returns Redis time (ms), ms until leases are granted again, then per key the result
#: (0 not ours, 1 taken, 2 extended, 3 released), the holder after, when last proven and by whom
#: (before), then the members.
ROUND_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nows = string.format('%d', now)
local node, lease, runid, ops = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local meta = KEYS[2]
local since = tonumber(redis.call('HGET', meta, 'since') or '0')
if redis.call('HGET', meta, 'redis') ~= runid then
  redis.call('HSET', meta, 'redis', runid, 'since', nows)
  since = now
end
redis.call('PEXPIRE', meta, 86400000)
local opens = since + lease
redis.call('ZADD', KEYS[1], nows, node)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - lease))
redis.call('PEXPIRE', KEYS[1], lease * 3)
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('SET', KEYS[3], ARGV[5], 'PX', lease * 3)
local results, holders, proved, by = {}, {}, {}, {}
for i = 4, #KEYS do
  local k = KEYS[i]
  local op = string.sub(ops, i - 3, i - 3)
  local cur = redis.call('GET', k)
  proved[#proved + 1] = redis.call('HGET', meta, k) or ''
  by[#by + 1] = redis.call('HGET', meta, k .. ':by') or ''
  local r = 0
  if op == 'a' then
    if cur == node then
      redis.call('PEXPIRE', k, lease)
      r = 2
    elseif not cur and now >= opens then
      redis.call('SET', k, node, 'PX', lease)
      r = 1
    end
    if r > 0 then
      redis.call('HSET', meta, k, nows, k .. ':by', node)
      cur = node
    end
  elseif op == 'x' and cur == node then
    redis.call('DEL', k)
    redis.call('HSET', meta, k, nows, k .. ':by', node)
    r = 3
    cur = false
  end
  results[#results + 1] = r
  holders[#holders + 1] = cur or ''
end
return {now, math.max(0, opens - now), results, holders, proved, by, members}
"""

#: How long a takeover's gap report waits for the key's connections to come up.
_GAP_WAIT_S = 30.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_reply(raw: Any) -> RoundReply:
    """The script's answer as a :class:`RoundReply`."""
    now, opens_in, results, holders, proved, by, members = raw
    return RoundReply(
        results=tuple(int(r) for r in results),
        holders=tuple(_text(h) or None for h in holders),
        proved_ms=tuple(int(_text(p)) if _text(p) else None for p in proved),
        proved_by=tuple(_text(b) or None for b in by),
        members=tuple(_text(m) for m in members),
        server_ms=int(now),
        opens_in_s=int(opens_in) / 1000,
    )


async def group_snapshots(client: Any, group: str) -> list[dict[str, Any]]:
    """Every live member's last stats snapshot, in node order (a member whose snapshot expired
    is left out)."""
    members = [_text(m) for m in await client.zrange(nodes_key(group), 0, -1)]
    if not members:
        return []
    values = await client.mget([stats_key(group, m) for m in members])
    out = []
    for value in values:
        if value is not None:
            with contextlib.suppress(ValueError):
                out.append(json.loads(value))
    return out


class Sharer:
    """Share the feed's keys with the other processes of its group.

    Args:
        feed: the feed, entered with no key held (``hold_keys(())`` before entering it).
        target: the Redis server (``--publish``'s).
        group: the group id (:func:`kitefan.lease.group_id`).
        node: this process (``HOSTNAME:PID``).
        timing: the lease time.
        on_warning: called with the one line that says Redis is unreachable (once per outage).
        clock: the monotonic clock the deadlines are kept on.
    """

    def __init__(
        self,
        feed: FeedManager,
        target: PublishConfig,
        *,
        group: str,
        node: str,
        timing: LeaseTiming,
        on_warning: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feed = feed
        self.target = target
        self.group = group
        self.node = node
        self.timing = timing
        self.on_warning = on_warning
        self.clock = clock
        key_ids = feed.keys()
        self.machine = ShareMachine(node, key_ids, timing)
        self.rounds = 0
        self.failed_rounds = 0
        self.last_error = ""
        self._keys = [lease_key(group, k) for k in key_ids]
        self._client: Any = None
        self._script: Any = None
        self._warned = False
        self._streaming: frozenset[str] = frozenset()
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"Sharer({self.group}, {self.node})"

    # Figures

    def document(self) -> dict[str, Any]:
        """This node's view of the group (the ``share`` part of its stats)."""
        view = self.machine.view(self.clock())
        return {
            "group": self.group,
            "node": self.node,
            "lease_s": self.timing.lease_s,
            "redis": "connected" if view.redis_ok else "down",
            "last_error": self.last_error,
            "members": list(view.members),
            "holders": dict(view.holders),
            "targets": dict(view.targets),
            "streaming": list(view.streaming),
            "handing_over": list(view.handing_over),
            "opens_in_s": round(view.opens_in_s, 3),
            "rounds": self.rounds,
            "failed_rounds": self.failed_rounds,
        }

    async def group_document(self) -> dict[str, Any]:
        """This node's view, with every live member's last snapshot (``nodes``) read from Redis
        (empty when Redis does not answer)."""
        document = self.document()
        nodes: list[dict[str, Any]] = []
        client = redis_client(self.target, timeout_s=2.0)
        try:
            nodes = await group_snapshots(client, self.group)
        except Exception as exc:
            document["last_error"] = scrub(str(exc) or type(exc).__name__, self._password)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()
        document["nodes"] = nodes
        return document

    @property
    def _password(self) -> str | None:
        return self.target.url.password

    # Running

    async def run(self) -> None:
        """Take, keep and hand over keys until cancelled; then stop every key and release its
        lease (a last round, bounded)."""
        try:
            while True:
                await self._apply()
                now = self.clock()
                if now >= self.machine.next_round_at:
                    await self._round()
                    await self._apply()
                    continue
                wake = self.machine.next_round_at
                deadline = self.machine.next_deadline(now)
                if deadline is not None:
                    wake = min(wake, deadline)
                await asyncio.sleep(max(0.0, wake - self.clock()))
        finally:
            for task in list(self._tasks):
                task.cancel()
            await self._leave()

    async def _apply(self) -> None:
        """Tell the feed which keys it may stream now; report those that lapsed."""
        now = self.clock()
        wanted = self.machine.streaming(now)
        if wanted != self._streaming:
            lapsed = self._streaming - wanted - set(self.machine.view(now).handing_over)
            await self.feed.hold_keys(wanted)
            for key in sorted(lapsed):
                if key not in self.machine.streaming(self.clock()):
                    message = (
                        "stopped: its lease could not be renewed in time, so it may pass to "
                        "another process"
                    )
                    log.warning("%s: %s", key, message)
                    self.feed.announce(Status.LEASE_LAPSED, message, key=key)
            self._streaming = wanted
        self.machine.applied(self._streaming)

    async def _round(self) -> None:
        now = self.clock()
        deadline = self.machine.next_deadline(now)
        budget = self.timing.renew_every_s
        if deadline is not None:
            budget = min(budget, max(0.05, deadline - now))
        ops = self.machine.request(now)
        sent = now
        try:
            async with asyncio.timeout(budget):
                client = await self._connected()
                info = await client.info("server")
                run_id = str(info.get("run_id", ""))
                stats = json.dumps(self._snapshot(), separators=(",", ":"))
                sent = self.clock()
                raw = await self._script(
                    keys=[
                        nodes_key(self.group),
                        share_key(self.group),
                        stats_key(self.group, self.node),
                        *self._keys,
                    ],
                    args=[self.node, self.timing.lease_ms, run_id, ops, stats],
                )
        except Exception as exc:  # Redis down, slow, refusing: nothing renewed
            self.failed_rounds += 1
            self.machine.failed(sent)
            await self._lost(exc)
            return
        self.rounds += 1
        if self._warned:
            log.warning("Redis answers again: the share leases are renewed")
        self._warned = False
        self.last_error = ""
        for taken in self.machine.settle(sent, parse_reply(raw)):
            self._spawn(self._report_gap(taken))

    async def _connected(self) -> Any:
        if self._client is None:
            # One connection, never a pool: the run id read before a round is the run id of
            # the server that runs it (a lost connection fails the round, it is not replaced
            # under it).
            client = redis_client(self.target, timeout_s=self.timing.renew_every_s, single=True)
            self._client = client
            self._script = client.register_script(ROUND_SCRIPT)
        return self._client

    def _snapshot(self) -> dict[str, Any]:
        document = self.feed.stats().as_dict()
        document["share"] = self.document()
        return document

    async def _lost(self, exc: BaseException) -> None:
        self.last_error = scrub(str(exc) or type(exc).__name__, self._password)
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        if not self._warned:
            self._warned = True
            message = (
                f"cannot renew the share leases at {self.target.url.shown} ({self.last_error}): "
                "each key stops before its lease can pass to another process; retrying"
            )
            if self.on_warning is not None:
                self.on_warning(message)
            else:
                log.warning("%s", message)

    async def _report_gap(self, taken: Taken) -> None:
        """Once the taken key streams, say what it missed: a ``taken_over`` status event."""
        key = taken.key
        plan = self.feed.plan.key(key)
        tokens = tuple(s.token for slot in plan.connections for s in slot.symbols) if plan else ()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_GAP_WAIT_S):
                while True:
                    if key not in self.machine.streaming(self.clock()):
                        return
                    conns = [c for c in self.feed.key_stats(key).connections if c.symbols]
                    if conns and all(c.state is ConnState.CONNECTED for c in conns):
                        break
                    await asyncio.sleep(0.05)
        end = time.time()
        previous = taken.previous or "another process"
        gap = Gap(taken.since, max(end, taken.since), tokens, f"taken over from {previous}")
        message = (
            f"taken over from {previous}: its {len(tokens)} symbols streamed nowhere for "
            f"{gap.seconds:.1f} s"
        )
        log.info("%s: %s", key, message)
        self.feed.announce(Status.TAKEN_OVER, message, key=key, gap=gap)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _leave(self) -> None:
        """Stop every key, then release the leases and leave the members (bounded)."""
        with contextlib.suppress(Exception):
            await self.feed.hold_keys(())
        self.machine.applied(())
        self._streaming = frozenset()
        ops = RELEASE * len(self._keys)
        try:
            async with asyncio.timeout(1.0):
                client = await self._connected()
                info = await client.info("server")
                await self._script(
                    keys=[
                        nodes_key(self.group),
                        share_key(self.group),
                        stats_key(self.group, self.node),
                        *self._keys,
                    ],
                    args=[self.node, self.timing.lease_ms, str(info.get("run_id", "")), ops, "{}"],
                )
                await client.zrem(nodes_key(self.group), self.node)
                await client.delete(stats_key(self.group, self.node))
        except Exception as exc:
            log.debug("could not release the share leases: %s", exc)
        finally:
            client, self._client = self._client, None
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
