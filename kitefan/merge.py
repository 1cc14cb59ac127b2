"""The merge of redundant feeds: each symbol streams on two keys, each tick reaches consumers once.

With ``redundancy = 2`` the planner puts each symbol on two keys, so each snapshot Kite sends
arrives twice, once per key. :class:`Merge` sits between the connections and the tick stream: the
first copy of a snapshot is delivered, the second is dropped and counted as a duplicate (per key
that sent it); a snapshot that only one key delivered is counted as one the other key missed (per
key, the figure that says what redundancy saved).

What is "the same snapshot": two packets of the same token with the same bytes, when the second
comes within :data:`WINDOW_S` of the first copy (from any key), or when it equals the last packet
delivered for its token in its mode (however late: a reconnected key's first packet repeats the
state the other key already delivered). A full-mode packet older, by its exchange timestamp, than
the last one delivered for its token is dropped too, however late: the copy of a key lagging more
than the window behind, or a snapshot already superseded, which would reach consumers out of
order. A full-mode packet (184 bytes, or an index's 32) carries the exchange timestamp, so the same
bytes are the same token, exchange second and fields; an ltp or quote packet has no timestamp, so
equal bytes more than the window apart, with another packet of the token between them, are two
ticks. A packet's record is settled :data:`WINDOW_S` after its
first copy: every key that carries the token and sent no copy is charged one missed snapshot.

Work is per packet but cheap: packets are sliced from the frame (``codec.packet_runs``), never
decoded; a batch with no duplicate is handed on as it came, and only a batch that lost packets
becomes a new frame of the packets it kept (``codec.frame_of_packets``), with its key, connection
and receive times.

Time is the batches' own ``received_at`` (``time.perf_counter()`` at the socket): the merge reads
no clock. A feed that goes quiet calls :meth:`Merge.expire` with the current time so its last
records are settled.

Owns: :class:`Merge`, :class:`MergeCounts`, :data:`WINDOW_S`. Must not import asyncio, websockets,
rich or typer, or do any I/O; of kitefan only the codec and the events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kitefan.codec import frame_of_packets, packet_runs
from kitefan.events import TickBatch
from kitefan.packets import PACKETS

__all__ = ["WINDOW_S", "Merge", "MergeCounts"]

#: Seconds within which equal packets of one token on two keys are the same snapshot (and after
#: which a snapshot seen on one key only is counted as missed by the other).
WINDOW_S = 2.0

#: The packet lengths a layout has (the packet-field table's kinds); others are skipped.
_FIELDED = frozenset(PACKETS)
#: Where the exchange timestamp is, in the packets that carry one (full mode).
_STAMPED = {
    length: PACKETS[length].offset_of("exchange_timestamp")
    for length in PACKETS
    if PACKETS[length].has("exchange_timestamp")
}


@dataclass(slots=True)
class MergeCounts:
    """What the merge did, since it started.

    Attributes:
        delivered: packets handed on (each snapshot once).
        duplicates: per key, its copies dropped because the other key's copy came first.
        missed: per key, snapshots of its symbols that only the other key delivered (settled
            :data:`WINDOW_S` after the first copy).
        passed: packets of tokens that stream on one key only, handed on unexamined.
    """

    delivered: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    passed: int = 0

    @property
    def duplicate_count(self) -> int:
        """Every duplicate dropped, over all keys."""
        return sum(self.duplicates.values())

    @property
    def one_sided(self) -> int:
        """Snapshots delivered by one key only (with redundancy 2, the sum of ``missed``)."""
        return sum(self.missed.values())


class Merge:
    """Folds the batches of redundant keys into one stream of ticks, each snapshot once.

    Args:
        keys: every key id of the feed, in config order.
        routes: each redundant token's keys (from the plan, ``Plan.places``); tokens with one
            key, or none, pass through unexamined.
        window_s: see :data:`WINDOW_S`.
    """

    def __init__(
        self,
        keys: Iterable[str],
        routes: Mapping[int, Iterable[str]],
        *,
        window_s: float = WINDOW_S,
    ) -> None:
        self._keys = list(keys)
        self._index = {key: i for i, key in enumerate(self._keys)}
        self.window_s = window_s
        self.counts = MergeCounts(
            duplicates=dict.fromkeys(self._keys, 0), missed=dict.fromkeys(self._keys, 0)
        )
        self._routes: dict[int, tuple[int, ...]] = {}
        # Each packet awaiting its other copies -> the keys that sent it (bit i: key i).
        self._records: dict[bytes, int] = {}
        # The last packet delivered, per token and packet length (token << 8 | length).
        self._last: dict[int, bytes] = {}
        self._due: deque[tuple[float, list[bytes]]] = deque()
        self.route(routes)

    def route(self, routes: Mapping[int, Iterable[str]]) -> None:
        """Take the keys each token streams on now (after a re-plan or a failover)."""
        index = self._index
        self._routes = {
            token: carriers
            for token, keys in routes.items()
            if len(carriers := tuple(index[k] for k in keys if k in index)) > 1
        }

    def push(self, batch: TickBatch) -> TickBatch | None:
        """The batch as consumers should see it: itself when none of its packets were seen
        before, a new batch of the packets that are new, or ``None`` when all were duplicates.
        Settles records older than the window at the batch's ``received_at`` first."""
        now = batch.received_at
        self._settle(now - self.window_s)
        key = self._index.get(batch.key)
        frame = batch.frame
        if key is None or batch.count == 0:
            self.counts.passed += batch.count
            return batch
        routes, records, last, stamped = self._routes, self._records, self._last, _STAMPED
        bit = 1 << key
        kept: list[bytes] = []
        new: list[bytes] = []  # the packets first seen here: settled together, a window on
        dropped = passed = 0
        for offset, length, count in packet_runs(frame):
            if length not in _FIELDED:
                continue
            step = length + 2
            for start in range(offset, offset + step * count, step):
                packet = frame[start : start + length]
                token = frame[start] << 24 | frame[start + 1] << 16 | frame[start + 2] << 8
                token |= frame[start + 3]
                if token not in routes:
                    passed += 1
                    kept.append(packet)
                    continue
                seen = records.get(packet)
                if seen is not None:
                    records[packet] = seen | bit
                    dropped += 1
                    continue
                kind = token << 8 | length  # a resubscribe goes through quote before full
                previous = last.get(kind)
                if previous == packet:  # a repeat of the state already delivered
                    dropped += 1
                    continue
                at = stamped.get(length)
                if (
                    at is not None
                    and previous is not None
                    and packet[at : at + 4] < previous[at : at + 4]  # big-endian: as numbers
                ):
                    # Older than the token's last delivered snapshot: the copy of a key lagging
                    # more than the window behind (or a snapshot superseded since). Never twice,
                    # never out of order.
                    dropped += 1
                    continue
                records[packet] = bit
                last[kind] = packet
                new.append(packet)
                kept.append(packet)
        if new:
            self._due.append((now, new))
        counts = self.counts
        counts.passed += passed
        counts.delivered += len(kept) - passed
        if dropped:
            counts.duplicates[batch.key] += dropped
        if not dropped:
            return batch
        if not kept:
            return None
        return TickBatch(
            batch.key,
            batch.connection,
            frame_of_packets(kept),
            batch.received_at,
            batch.received_wall,
            count=len(kept),
        )

    def expire(self, now: float) -> None:
        """Settle every record whose last copy came more than the window before ``now``."""
        self._settle(now - self.window_s)

    def flush(self) -> None:
        """Settle every record now (the feed is stopping)."""
        self._settle(float("inf"))

    @property
    def pending(self) -> int:
        """Packets whose copies are still awaited (records not settled yet)."""
        return len(self._records)

    def _settle(self, before: float) -> None:
        due, records, routes = self._due, self._records, self._routes
        missed = self.counts.missed
        keys = self._keys
        while due and due[0][0] < before:
            _, packets = due.popleft()
            for packet in packets:
                seen = records.pop(packet)
                token = int.from_bytes(packet[:4], "big")
                for carrier in routes.get(token, ()):
                    if not seen >> carrier & 1:
                        missed[keys[carrier]] += 1
