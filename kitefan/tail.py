"""A feed read back from a Redis stream that ``kitefan stream --publish`` writes.

:class:`RemoteFeed` is an async context manager and an async iterator of the same
:class:`~kitefan.events.TickBatch`, :class:`~kitefan.events.StatusEvent`,
:class:`~kitefan.events.OrderEvent` and :class:`~kitefan.events.ErrorEvent` objects that
``FeedManager.events()`` gives, rebuilt from the entries (:mod:`kitefan.broker`): a batch holds
the frame's bytes exactly as the publisher received them, decoded on first use. So strategy code
runs unchanged on a local feed or a remote one::

    async with RemoteFeed("redis://127.0.0.1:6379/0") as feed:
        async for item in feed:
            if isinstance(item, TickBatch):
                for tick in item.ticks: ...

Reading is ``XREAD BLOCK`` in batches of at most ``count`` entries and about ``max_bytes``, from
``start``: ``"now"`` (what is
published from now on), ``"start"`` (everything the stream still holds) or an entry id. With
``group``, it reads through a Redis consumer group (``XREADGROUP``; the group is created at
``start`` if it does not exist), so several readers share the entries, each entry going to one of
them; a batch is acknowledged (``XACK``) when the next one is asked for, that is once its consumer
has handled it. Redis going away: reading is retried with backoff, and ``on_warning`` is told
once per outage.

:class:`RemoteStats` keeps per-key and per-connection figures from the entries seen, as a
:class:`~kitefan.stats.FeedStats` (what the dashboard of ``kitefan tail`` shows).

Owns: ``RemoteFeed``, ``RemoteStats``. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

from kitefan.broker import Entry, JsonTicks, decode_entry, node_name, symbols_key
from kitefan.errors import BrokerError
from kitefan.events import ConnState, Event, KeyState, OrderEvent, StatusEvent, TickBatch
from kitefan.models import Mode
from kitefan.publish import redis_client, require_redis, scrub
from kitefan.retry import Backoff
from kitefan.settings import DEFAULT_PUBLISH_STREAM, PublishConfig, RedisURL, parse_redis_url
from kitefan.stats import ConnectionCounters, ConnectionStats, FeedStats, KeyStats, key_state

__all__ = ["RemoteFeed", "RemoteStats"]

_CONN_STATES = frozenset(state.value for state in ConnState)
#: Seconds a reader's close may take (acknowledging, then closing the connection), each.
CLOSE_S = 2.0


class RemoteFeed:
    """The events of a Redis stream, as a feed's.

    Args:
        url: the server (``redis://[[user]:password@]HOST[:PORT][/DB]``).
        stream: the stream's key.
        start: ``"now"``, ``"start"``, or an entry id to read after.
        group: read through this consumer group; ``consumer`` names this reader in it (default:
            ``HOSTNAME:PID``).
        count: entries per read at most.
        max_bytes: about how many bytes one read asks for: fewer entries than ``count`` when
            they are big (from the sizes seen so far), so that one reply never takes long.
        block_ms: how long one read waits for entries.
        on_warning: told once per outage that Redis cannot be read.
    """

    def __init__(
        self,
        url: RedisURL | str,
        *,
        stream: str = DEFAULT_PUBLISH_STREAM,
        start: str = "now",
        group: str | None = None,
        consumer: str | None = None,
        count: int = 1000,
        max_bytes: int = 4 * 1024 * 1024,
        block_ms: int = 500,
        on_warning: Callable[[str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        require_redis()
        if isinstance(url, str):
            try:
                url = parse_redis_url(url)
            except ValueError as exc:
                raise BrokerError(f"the Redis URL {exc}") from None
        self.url = url
        self.stream = stream
        self.start = start
        self.group = group
        self.consumer = consumer or node_name()
        self.count = count
        self.max_bytes = max_bytes
        # A running mean of the entries' sizes; the first read asks for a few entries only.
        self._entry_bytes = max_bytes / 16
        self.block_ms = block_ms
        self.on_warning = on_warning
        self.backoff = backoff or Backoff(initial_s=0.2, factor=2.0, max_s=5.0, jitter=0.2)
        self.symbols: dict[int, str] = {}
        self.entries_read = 0
        self._client: Any = None
        self._last_id = b"0-0"
        self._unacked: list[bytes] = []
        self._pending: list[Entry] = []
        self._warned = False
        self._names_at = 0.0

    def __repr__(self) -> str:
        return f"RemoteFeed({self.url.shown} {self.stream!r})"

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Acknowledge what was read (with a group) and close the connection, in at most
        :data:`CLOSE_S` seconds: a connection a cancelled read left in a bad state is abandoned
        rather than waited for."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_S):
                    await self._ack(client)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_S):
                    await client.aclose()

    def name_of(self, token: int) -> str:
        """A token's display name, as the publisher knows it (else the number)."""
        return self.symbols.get(token) or str(token)

    # Iterating

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    async def events(self) -> AsyncIterator[Event]:
        """Every tick batch and event, in stream order.

        Raises:
            BrokerError: an entry holds JSON ticks (``format = "json"``), which carry no frame
                (``kitefan tail --format jsonl`` prints those).
        """
        async for entry in self.entries():
            item = entry.item
            if isinstance(item, JsonTicks):
                raise BrokerError(
                    f'stream {self.stream} holds JSON ticks (format = "json"), not frames: '
                    'publish with format = "frame" to read ticks here, or print them with '
                    "`kitefan tail --format jsonl`"
                )
            yield item

    async def ticks(self) -> AsyncIterator[TickBatch]:
        """The tick batches only."""
        async for item in self.events():
            if isinstance(item, TickBatch):
                yield item

    async def entries(self) -> AsyncIterator[Entry]:
        """Every entry, decoded, with its id and node."""
        if self._client is None:
            await self._open()
        while True:
            for entry in await self.read():
                yield entry

    async def read(self) -> list[Entry]:
        """The next batch of entries (empty when none came within ``block_ms``)."""
        while True:
            client = self._client
            if client is None:
                client = await self._reconnect()
                if client is None:
                    continue
            count = max(1, min(self.count, int(self.max_bytes / self._entry_bytes)))
            try:
                await self._ack(client)
                if self.group is not None:
                    reply = await client.xreadgroup(
                        self.group,
                        self.consumer,
                        {self.stream: ">"},
                        count=count,
                        block=self.block_ms,
                    )
                else:
                    reply = await client.xread(
                        {self.stream: self._last_id}, count=count, block=self.block_ms
                    )
            except BrokerError:
                raise
            except Exception as exc:
                _raise_if_cancelled()
                if _is_missing_group(exc):
                    await self._create_group(client)
                    continue
                await self._lost(exc)
                continue
            # A reply already buffered completes the await without yielding: yield here, so that a
            # reader with a backlog never starves the loop, and see a cancellation redis-py took.
            await asyncio.sleep(0)
            _raise_if_cancelled()
            now = time.perf_counter()
            out: list[Entry] = []
            size = 0
            for _, messages in reply or ():
                for entry_id, fields in messages:
                    size += sum(len(value) for value in fields.values())
                    out.append(decode_entry(entry_id, fields, now))
                    self._last_id = entry_id
                    if self.group is not None:
                        self._unacked.append(entry_id)
            self.entries_read += len(out)
            if out:
                self._entry_bytes = 0.5 * self._entry_bytes + 0.5 * size / len(out)
            await self._names_for(client, out)
            return out

    # Internals

    async def _open(self) -> None:
        client = redis_client(PublishConfig(self.url, self.stream))
        try:
            await client.ping()
            if self.group is not None:
                await self._create_group(client)
            else:
                self._last_id = await self._start_id(client)
            await self._load_names(client)
        except Exception as exc:
            await client.aclose()
            raise BrokerError(
                f"cannot read stream {self.stream} at {self.url.shown}: "
                f"{scrub(str(exc) or type(exc).__name__, self.url.password)}"
            ) from None
        self._client = client

    async def _start_id(self, client: Any) -> bytes:
        if self.start == "start":
            return b"0-0"
        if self.start == "now":
            last = await client.xrevrange(self.stream, count=1)
            return last[0][0] if last else b"0-0"
        return self.start.encode()

    async def _create_group(self, client: Any) -> None:
        start = {"now": "$", "start": "0"}.get(self.start, self.start)
        try:
            await client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _ack(self, client: Any) -> None:
        if self._unacked:
            ids, self._unacked = self._unacked, []
            await client.xack(self.stream, self.group, *ids)

    async def _load_names(self, client: Any) -> None:
        names = await client.hgetall(symbols_key(self.stream))
        self.symbols = {int(k): v.decode() for k, v in names.items() if k.isdigit()}
        self._names_at = time.monotonic()

    async def _names_for(self, client: Any, entries: list[Entry]) -> None:
        """Read the names again when a token has none (at most once a second)."""
        if time.monotonic() - self._names_at < 1.0:
            return
        symbols = self.symbols
        for entry in entries:
            item = entry.item
            if isinstance(item, TickBatch) and any(t.values[0] not in symbols for t in item.ticks):
                with contextlib.suppress(Exception):
                    await self._load_names(client)
                return

    async def _reconnect(self) -> Any:
        await asyncio.sleep(self.backoff.next_delay())
        client = redis_client(PublishConfig(self.url, self.stream))
        try:
            await client.ping()
        except Exception as exc:
            await client.aclose()
            await self._lost(exc)
            return None
        self._client = client
        self._warned = False
        self.backoff.reset()
        return client

    async def _lost(self, exc: BaseException) -> None:
        client, self._client = self._client, None
        self._unacked = []  # the group hands them out again (XPENDING / XCLAIM)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        if not self._warned:
            self._warned = True
            text = scrub(str(exc) or type(exc).__name__, self.url.password)
            if self.on_warning is not None:
                self.on_warning(
                    f"cannot read stream {self.stream} at {self.url.shown} ({text}): retrying"
                )


def _raise_if_cancelled() -> None:
    """Cancelled while redis-py read a reply, it may raise a connection error instead: the
    cancellation must still end the reader, not look like Redis going away."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _is_missing_group(exc: BaseException) -> bool:
    return "NOGROUP" in str(exc)


class RemoteStats:
    """Per-key, per-connection figures of the entries seen, as a :class:`FeedStats`: the
    counters an entry shows (frames, ticks, bytes, and reconnects from the gaps reported)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._conns: dict[tuple[str, int], ConnectionCounters] = {}
        self._tokens: dict[tuple[str, int], set[int]] = {}
        self._states: dict[tuple[str, int], str] = {}
        self._orders: dict[str, int] = {}

    def observe(self, item: Event | JsonTicks) -> None:
        if isinstance(item, TickBatch | JsonTicks):
            where = (item.key, item.connection)
            conn = self._conn(*where)
            conn.frames += 1
            conn.ticks += item.count
            if isinstance(item, TickBatch):
                conn.bytes += len(item.frame)
                self._tokens[where].update(t.values[0] for t in item.ticks)
            conn.last_frame_at = time.perf_counter()
            self._states.setdefault(where, ConnState.CONNECTED)
        elif isinstance(item, StatusEvent):
            if item.connection is not None:
                conn = self._conn(item.key, item.connection)
                if item.state in _CONN_STATES:  # a connection's own state, not news of it
                    self._states[(item.key, item.connection)] = item.state
                if item.gap is not None:
                    conn.reconnects += 1
        elif isinstance(item, OrderEvent):
            self._orders[item.key] = self._orders.get(item.key, 0) + 1

    def _conn(self, key: str, index: int) -> ConnectionCounters:
        conn = self._conns.get((key, index))
        if conn is None:
            conn = self._conns[(key, index)] = ConnectionCounters()
            self._tokens[(key, index)] = set()
        return conn

    def snapshot(self) -> FeedStats:
        now = time.perf_counter()
        keys: dict[str, list[ConnectionStats]] = {}
        for (key, index), c in sorted(self._conns.items()):
            state = ConnState(self._states.get((key, index), ConnState.CONNECTING))
            keys.setdefault(key, []).append(
                ConnectionStats(
                    index=index,
                    state=state,
                    symbols=len(self._tokens[(key, index)]),
                    symbols_by_mode={m.value: 0 for m in Mode},
                    ticks_per_s=c.meter.rate(now, c.ticks),
                    last_gap=None,
                    last_frame_age_s=None if c.last_frame_at is None else now - c.last_frame_at,
                    uptime_s=None,
                    never_ticked=0,
                    exchange_delay_p50_s=None,
                    exchange_delay_p99_s=None,
                    **c.counts(),
                )
            )
        return FeedStats(
            keys=tuple(
                KeyStats(
                    key,
                    _key_state(conns),
                    tuple(conns),
                    self._orders.get(key, 0),
                )
                for key, conns in keys.items()
            ),
            updated_at=time.time(),
            uptime_s=now - self._started,
        )


def _key_state(conns: list[ConnectionStats]) -> KeyState:
    return key_state([c.state for c in conns], auth_failed=False, slot_limited=False)
