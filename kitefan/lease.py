"""Sharing one config's keys among ``kitefan stream --share`` processes: the lease machine.

Every process of a group runs one :class:`ShareMachine`. It decides, per api key, whether this
process may stream it; the runtime (:mod:`kitefan.share`) carries its decisions to Redis and
back, and starts and stops the key's connections as :meth:`ShareMachine.streaming` says.

The leases. Key ``k`` of group ``G`` is held by whoever's node id is the value of
``kitefan:lease:{G}:k`` (:func:`lease_key`), a string set with an expiry of ``lease_s``
(``SET NX PX``). Every round (:meth:`ShareMachine.request`) asks, per key, one of: hold it
(:data:`HOLD`: extend the expiry if the value is still this node's id, an atomic
compare-and-extend; else take it if nobody holds it), release it (:data:`RELEASE`: delete it if
the value is still this node's id), or nothing (:data:`NOTHING`).

The safety rule: a process that cannot prove it still holds a key stops streaming it before the
lease can pass to another. The arithmetic uses durations only, never a wall clock shared between
machines:

* the process notes ``sent`` (its own monotonic clock) *before* it sends a round;
* Redis runs the round at some later moment ``t`` and the lease expires at ``t + lease_s`` by
  Redis' clock, so never before ``sent + lease_s`` in real time;
* the process streams the key until ``sent + valid_for_s`` by its own clock, where
  ``valid_for_s = lease_s * (1 - drift) - stop_margin_s``: ``drift`` (1 %) covers a local clock
  running slower than Redis', and ``stop_margin_s = close_s + lease_s / 10`` covers closing the
  key's connections (``close_s``, the close frame's timeout, after which the socket is aborted)
  and a late turn of the event loop.

So the key's last connection is closed before Redis can give the key to anyone else, whatever
the network does to the renewals. What this assumes: Redis' clock does not step (it expires keys
by its wall clock; NTP slewing is fine, a jump forward is not), and a process is not frozen (a
stopped or swapped-out process cannot stop its connections; nothing at Kite's end could fence it
off). With the defaults (``lease_s = 10``, ``close_s = 2``): renewals every 2.5 s, a key is
streamed for 6.9 s after the last renewal sent, so two renewals may be lost without a stop.

A Redis that restarted (its ``run_id`` changed, data kept or lost, or a replica promoted) grants
no lease for one ``lease_s``: a lease it forgot may still be held by a process that has not yet
noticed. Renewing a lease it still has is allowed.

The spread. Every process beats in the sorted set ``kitefan:nodes:{G}`` (node -> Redis time of
its last round; members older than ``lease_s`` are dropped). With ``N`` members in node order,
the first ``K mod N`` may hold ``ceil(K / N)`` keys, the others ``floor(K / N)``
(:func:`targets`): so once settled no process holds more than ``ceil(K / N)``. A process under
its share takes free keys (its own preference order, a hash of node and key, so that joiners do
not all race for the same key); a process over its share hands the surplus over: it stops
streaming them at once and releases them once their connections are closed.

A key taken from no one (its lease expired, or was released) is reported with who held it last
and when that holder last proved it (:class:`Taken`): the runtime reports that gap.

Pure: no I/O, no clock of its own (every method is given ``now``).

Owns: ``LeaseTiming``, ``ShareMachine``, ``RoundReply``, ``Taken``, ``targets``, the group id and
the Redis key names. Must not import asyncio, redis, socket, rich or typer.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "HOLD",
    "NOTHING",
    "RELEASE",
    "LeaseTiming",
    "RoundReply",
    "ShareMachine",
    "ShareView",
    "Taken",
    "group_id",
    "lease_key",
    "nodes_key",
    "share_key",
    "stats_key",
    "targets",
]

#: Round operations, one character per key.
HOLD = "a"
RELEASE = "x"
NOTHING = "-"

#: Round results, per key.
NOT_OURS = 0
TAKEN = 1
EXTENDED = 2
RELEASED = 3

#: How much slower than Redis' clock the local clock may run.
DRIFT = 0.01


def group_id(url: str, keys: Iterable[tuple[str, str]]) -> str:
    """The group of a config: a hash of its ticker URL and its keys (id and api key, in order).

    The symbols are left out on purpose: the leases guard the keys' connection slots, so two
    processes with the same keys are in one group even while their symbol lists differ (an
    edit applied to one before the other). No secret is in it: the access tokens are not
    hashed, and the hash cannot be turned back into the api keys.
    """
    digest = hashlib.sha256(b"kitefan-share-1\0" + url.encode())
    for key_id, api_key in keys:
        digest.update(b"\0" + key_id.encode() + b"=" + api_key.encode())
    return digest.hexdigest()[:16]


def lease_key(group: str, key_id: str) -> str:
    """The lease of one key: its holder's node id, with an expiry. ``{group}`` is a cluster
    hash tag: every key of a group lives in one slot, as one script needs."""
    return f"kitefan:lease:{{{group}}}:{key_id}"


def nodes_key(group: str) -> str:
    """The members: a sorted set of node id -> Redis time (ms) of its last round."""
    return f"kitefan:nodes:{{{group}}}"


def share_key(group: str) -> str:
    """The group's hash: the Redis run id it started under and when, and per lease key the
    Redis time (ms) it was last proven held (``<lease key>``) and by whom (``<lease key>:by``)."""
    return f"kitefan:share:{{{group}}}"


def stats_key(group: str, node: str) -> str:
    """One member's stats snapshot (JSON), with an expiry."""
    return f"kitefan:stats:{{{group}}}:{node}"


def targets(members: Sequence[str], n_keys: int) -> dict[str, int]:
    """How many keys each member may hold: in node order, the first ``n_keys mod N`` hold
    ``ceil(n_keys / N)``, the others ``floor(n_keys / N)``."""
    ordered = sorted(set(members))
    if not ordered:
        return {}
    base, extra = divmod(n_keys, len(ordered))
    return {node: base + (1 if i < extra else 0) for i, node in enumerate(ordered)}


def preference(node: str, key_id: str) -> int:
    """How much ``node`` prefers ``key_id`` (rendezvous hashing): higher first."""
    return int.from_bytes(hashlib.sha256(f"{node}\0{key_id}".encode()).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """The lease time and what follows from it (see the module's docstring).

    Args:
        lease_s: the lease's expiry in Redis.
        close_s: the longest that closing a key's connections may take.
    """

    lease_s: float = 10.0
    close_s: float = 2.0

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 4

    @property
    def stop_margin_s(self) -> float:
        return self.close_s + self.lease_s / 10

    @property
    def valid_for_s(self) -> float:
        """How long after sending a round that renewed a key the key may be streamed."""
        return self.lease_s * (1 - DRIFT) - self.stop_margin_s

    @property
    def prompt_s(self) -> float:
        """How soon the next round comes when keys are to be taken or handed over."""
        return self.lease_s / 20

    @property
    def lease_ms(self) -> int:
        return max(1, round(self.lease_s * 1000))

    def problem(self) -> str | None:
        """What is wrong with these times (a key must survive one lost renewal), or None."""
        if self.valid_for_s < 2 * self.renew_every_s:
            shortest = self.close_s / (1 - DRIFT - 0.1 - 0.5)
            return (
                f"a share lease of {self.lease_s:g} s is too short to close a key's "
                f"connections ({self.close_s:g} s, tuning.close_timeout_s) before it can pass "
                f"on: make tuning.share_lease_s at least {math.ceil(shortest * 10) / 10:g}"
            )
        return None


@dataclass(frozen=True, slots=True)
class RoundReply:
    """What Redis answered to a round, per key in the machine's key order.

    Attributes:
        results: :data:`NOT_OURS`, :data:`TAKEN`, :data:`EXTENDED` or :data:`RELEASED`.
        holders: each key's holder after the round (None: free).
        proved_ms: before the round, the Redis time (ms) each key's lease was last proven held
            or released (None: never).
        proved_by: who proved it then.
        members: the live members (this node included).
        server_ms: Redis' time when it ran the round.
        opens_in_s: how long the group still grants no lease (a restarted Redis), else 0.
    """

    results: tuple[int, ...]
    holders: tuple[str | None, ...]
    proved_ms: tuple[int | None, ...]
    proved_by: tuple[str | None, ...]
    members: tuple[str, ...]
    server_ms: int
    opens_in_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Taken:
    """A key this node took that someone held before: who, and since when nobody proved it
    (Unix seconds, by Redis' clock)."""

    key: str
    previous: str | None
    since: float
    at: float


@dataclass(frozen=True, slots=True)
class ShareView:
    """The group as this node saw it at its last round (for ``kitefan stats``)."""

    node: str
    members: tuple[str, ...]
    holders: Mapping[str, str | None]
    targets: Mapping[str, int]
    streaming: tuple[str, ...]
    handing_over: tuple[str, ...]
    redis_ok: bool
    opens_in_s: float


class ShareMachine:
    """One node's leases, and what it decides to take, keep and give.

    Args:
        node: this process's node id (``HOSTNAME:PID``).
        keys: every key id of the config, in config order.
        timing: the lease time and its consequences.
    """

    def __init__(self, node: str, keys: Sequence[str], timing: LeaseTiming) -> None:
        if not keys:
            raise ValueError("a shared config needs at least one key")
        self.node = node
        self.keys = tuple(keys)
        self.timing = timing
        # Held keys -> until when they may be streamed (local clock).
        self._valid_until: dict[str, float] = {}
        # Held keys given up: not streamed, released once their connections are closed.
        self._handing: set[str] = set()
        # Free keys to take in the next round.
        self._want: set[str] = set()
        # What the runtime has last applied to the feed (keys whose connections may be open).
        self._applied: frozenset[str] = frozenset()
        self._next_at = 0.0
        self._members: tuple[str, ...] = ()
        self._holders: dict[str, str | None] = dict.fromkeys(self.keys)
        self._ok = False
        self._opens_in_s = 0.0
        self._sent: str | None = None

    # What to stream

    def streaming(self, now: float) -> frozenset[str]:
        """The keys this node may stream at ``now``: held, proven recently enough, not being
        handed over."""
        return frozenset(
            k for k, until in self._valid_until.items() if now < until and k not in self._handing
        )

    def applied(self, keys: Iterable[str]) -> None:
        """The runtime says the feed now streams exactly ``keys`` (others' connections are
        closed)."""
        self._applied = frozenset(keys)

    def next_deadline(self, now: float) -> float | None:
        """When the next streamed key must stop unless renewed (local clock), or None."""
        live = [until for k, until in self._valid_until.items() if now < until]
        return min(live) if live else None

    @property
    def next_round_at(self) -> float:
        return self._next_at

    # Rounds

    def request(self, now: float) -> str:
        """The round to send now: one operation per key, in key order.

        Call it just before sending, and give :meth:`settle` the same ``now``.
        """
        ops = []
        for key in self.keys:
            if key in self._handing:
                ops.append(RELEASE if key not in self._applied else HOLD)
            elif key in self._valid_until or key in self._want:
                ops.append(HOLD)
            else:
                ops.append(NOTHING)
        self._sent = "".join(ops)
        return self._sent

    def settle(self, sent_at: float, reply: RoundReply) -> list[Taken]:
        """Take in Redis' answer to the round sent at ``sent_at``; return the keys taken that
        someone held before (to report their gap)."""
        ops = self._sent or NOTHING * len(self.keys)
        self._sent = None
        if len(reply.results) != len(self.keys):
            raise ValueError("a reply must have one result per key")
        taken: list[Taken] = []
        until = sent_at + self.timing.valid_for_s
        for i, key in enumerate(self.keys):
            result = reply.results[i]
            if result in (TAKEN, EXTENDED):
                if result == TAKEN and reply.proved_ms[i] is not None:
                    taken.append(
                        Taken(
                            key,
                            reply.proved_by[i],
                            (reply.proved_ms[i] or 0) / 1000,
                            reply.server_ms / 1000,
                        )
                    )
                self._valid_until[key] = until
            elif result == RELEASED or ops[i] != NOTHING:
                self._valid_until.pop(key, None)
                self._handing.discard(key)
            elif reply.holders[i] == self.node and key not in self._valid_until:
                # Ours in Redis but not here (a release whose answer was lost): give it back.
                self._valid_until[key] = sent_at  # held, but not to be streamed
                self._handing.add(key)
        self._members = tuple(sorted(set(reply.members) | {self.node}))
        self._holders = dict(zip(self.keys, reply.holders, strict=True))
        self._ok = True
        self._opens_in_s = reply.opens_in_s
        self._decide()
        if self._want or self._handing:
            wait = max(self.timing.prompt_s, reply.opens_in_s)
        else:
            wait = self.timing.renew_every_s
        self._next_at = sent_at + min(wait, self.timing.renew_every_s)
        return taken

    def failed(self, sent_at: float) -> None:
        """The round sent at ``sent_at`` got no answer (Redis down, slow, or refusing). Nothing
        is renewed: held keys stop at their deadlines. Try again soon."""
        self._sent = None
        self._ok = False
        self._next_at = sent_at + self.timing.renew_every_s / 2

    def _decide(self) -> None:
        share = targets(self._members, len(self.keys)).get(self.node, 0)
        mine = [k for k in self.keys if k in self._valid_until and k not in self._handing]
        self._want = set()
        if len(mine) > share:
            by_preference = sorted(mine, key=lambda k: preference(self.node, k))
            self._handing.update(by_preference[: len(mine) - share])
        elif len(mine) < share:
            free = [
                k for k in self.keys if self._holders.get(k) is None and k not in self._valid_until
            ]
            free.sort(key=lambda k: preference(self.node, k), reverse=True)
            self._want = set(free[: share - len(mine)])

    # Looking at it

    def view(self, now: float) -> ShareView:
        return ShareView(
            node=self.node,
            members=self._members,
            holders=dict(self._holders),
            targets=targets(self._members, len(self.keys)),
            streaming=tuple(k for k in self.keys if k in self.streaming(now)),
            handing_over=tuple(k for k in self.keys if k in self._handing),
            redis_ok=self._ok,
            opens_in_s=self._opens_in_s,
        )
