"""The multi-key feed: every key's connections in one process, kept streaming through faults.

:class:`FeedManager` is an async context manager. Entering it plans where every symbol goes
(:mod:`kitefan.planner`), opens only the connections that plan needs, and returns at once;
leaving it closes every connection with a close frame and leaves no task running.

Ticks reach consumers through :class:`EventStream` objects (``feed.ticks()``, ``feed.events()``,
or filtered to one key or connection): bounded queues of one batch per frame. A consumer that
falls behind never stalls the sockets and never makes memory grow without bound: past
``queue_max_ticks`` queued ticks the oldest batches are dropped (``overflow = "drop-newest"``
keeps the oldest instead), and every dropped tick is counted, per stream and per connection.

Faults, and what the manager does about them:

* a lost or silent connection reconnects by itself (:mod:`kitefan.connection`) and reports the
  gap as a status event;
* HTTP 403: the key becomes ``auth_failed``; with failover on, its symbols move to spare room on
  the healthy keys (``plan(..., previous=home)`` moves only those), one connection of the key
  keeps trying slowly, and when a token is accepted again (a fresh token from
  :meth:`FeedManager.apply_config`, or the server relenting) the symbols move back;
* HTTP 429: that connection slot is taken by another program; the key uses its other slots, the
  slot's symbols are re-planned, and the slot is tried again now and then;
* every key refused before any connected: the streams end with :class:`NoUsableKeyError`.
* a text the server sends that kitefan does not understand: counted, reported as an error
  event, skipped; the connection goes on;
* a bug in one connection's handling (an exception out of it): that connection is counted
  (``internal_errors``), reported, and restarted after a backoff; the others stream on.

Order updates arrive on every connection of a key; each is delivered once per key.

With ``redundancy = 2`` every symbol streams on two keys and :class:`kitefan.merge.Merge` folds
the copies before the streams see them: each snapshot once; duplicates and the snapshots one key
missed are counted (``stats().redundancy``). A connection lost on one key is still a status event,
but its gap names only the symbols no other key carried through it.

Owns: ``FeedManager``, ``EventStream``. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from kitefan.connection import FeedConnection
from kitefan.errors import (
    FeedError,
    KitefanError,
    NoUsableKeyError,
    PlanError,
    SymbolError,
    UnreachableError,
)
from kitefan.events import (
    ConnState,
    ErrorEvent,
    Event,
    Gap,
    KeyState,
    OrderEvent,
    StatusEvent,
    TickBatch,
)
from kitefan.loader import load_instruments
from kitefan.merge import Merge
from kitefan.models import Mode, OrderUpdate
from kitefan.planner import KeyCapacity, Plan, PlanDiff, diff, plan
from kitefan.retry import Refusal
from kitefan.settings import AppConfig, KeyConfig, SymbolSpec
from kitefan.stats import (
    LOOP_PROBE_S,
    ConnectionCounters,
    ConnectionStats,
    FeedStats,
    KeyStats,
    LoopLagMeter,
    PublishStats,
    RedundancyStats,
    key_state,
    percentile_of_counts,
)
from kitefan.symbols import needs_instruments, parse_mode, spec_of

__all__ = ["CONNECT_DEADLINE_S", "EventStream", "FeedManager"]

log = logging.getLogger(__name__)

E = TypeVar("E", TickBatch, Event)

_SEEN_ORDERS = 4096

#: How long a feed waits for its first connection before its streams raise UnreachableError.
CONNECT_DEADLINE_S = 30.0
#: How often the feed samples its connections' tick counts for the rates of :meth:`stats`.
RATE_SAMPLE_S = 0.25


class EventStream(Generic[E]):
    """A bounded queue of one consumer's events, and an async iterator over them.

    Bounds: tick batches count against ``max_ticks`` ticks and ``max_bytes`` bytes of frames;
    past either, the oldest batches are dropped (or the newest, with ``drop_newest``), before
    anyone decoded them, and counted in :attr:`dropped_ticks` (and in their connection's
    ``drops``). Status events (state changes, gaps, failover) are never dropped. Orders and error
    texts are kept up to ``max_events``; past it they are dropped and counted in
    :attr:`dropped_events`.

    Accounting: every tick pushed is counted in :attr:`received_ticks`, and at every moment
    ``received_ticks == delivered_ticks + dropped_ticks + queued_ticks``.

    Lifetime: :meth:`close` ends it: the feed stops pushing to it, its queue is freed and what
    was queued is counted as dropped; leaving ``async with feed.ticks() as stream:`` closes it.
    The feed holds its streams weakly, so a stream nobody references any more is gone too:
    breaking out of ``async for batch in feed.ticks():``, or cancelling the task that iterates
    it, leaves nothing queueing behind. A stream kept in a variable lives on (it can be iterated
    again) until it is closed.
    """

    def __init__(
        self,
        owner: FeedManager,
        *,
        key: str | None,
        connection: int | None,
        ticks_only: bool,
        max_ticks: int,
        drop_newest: bool,
        max_events: int = 10_000,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.key = key
        self.connection = connection
        self.ticks_only = ticks_only
        self.max_ticks = max_ticks
        self.max_bytes = max_bytes
        self.max_events = max_events
        self.drop_newest = drop_newest
        self.received_ticks = 0
        self.delivered_ticks = 0
        self.dropped_ticks = 0
        self.dropped_events = 0
        self._owner = owner
        self._items: deque[E] = deque()
        self._queued_ticks = 0
        self._queued_bytes = 0
        self._queued_events = 0
        self._waiter: asyncio.Future[None] | None = None
        self._woken = False
        self._closed = False
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"EventStream(key={self.key}, connection={self.connection}, queued={len(self)})"

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_ticks(self) -> int:
        return self._queued_ticks

    @property
    def queued_bytes(self) -> int:
        """The bytes of the frames queued."""
        return self._queued_bytes

    @property
    def closed(self) -> bool:
        """Whether the stream takes no more events (what is queued can still be read)."""
        return self._closed

    def accepts(self, key: str, connection: int | None) -> bool:
        """Whether an event of this key and connection belongs in this stream."""
        if self.key is not None and key != self.key:
            return False
        return self.connection is None or connection == self.connection

    # Producer side (the manager)

    def _push_batch(self, batch: TickBatch) -> None:
        if self._closed:
            return
        count = batch.count
        size = len(batch.frame)
        self.received_ticks += count
        if (
            self._queued_ticks + count > self.max_ticks
            or self._queued_bytes + size > self.max_bytes
        ):
            if self.drop_newest:
                self.dropped_ticks += count
                self._owner._count_drop(batch, count)
                return
            self._shed(count, size)
        self._items.append(batch)
        self._queued_ticks += count
        self._queued_bytes += size
        self._wake()

    def _push_event(self, event: Event) -> None:
        if self._closed or self.ticks_only:
            return
        if not isinstance(event, StatusEvent):
            if self._queued_events >= self.max_events:
                self.dropped_events += 1
                return
            self._queued_events += 1
        self._items.append(event)  # type: ignore[arg-type]
        self._wake()

    def _shed(self, incoming: int, size: int) -> None:
        items = self._items
        kept: list[E] = []
        while items and (
            self._queued_ticks + incoming > self.max_ticks
            or self._queued_bytes + size > self.max_bytes
        ):
            item = items.popleft()
            if isinstance(item, TickBatch):
                self._forget(item)
                self.dropped_ticks += item.count
                self._owner._count_drop(item, item.count)
            else:
                kept.append(item)
        items.extendleft(reversed(kept))

    def _forget(self, item: E) -> None:
        if isinstance(item, TickBatch):
            self._queued_ticks -= item.count
            self._queued_bytes -= len(item.frame)
        elif not isinstance(item, StatusEvent):
            self._queued_events -= 1

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
                if not self._woken:
                    self._woken = True
                    self._owner._handing_over += 1

    def _finish(self, error: BaseException | None = None) -> None:
        if error is not None and self._error is None:
            self._error = error
        self._closed = True
        self._wake()

    # Consumer side

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def __anext__(self) -> E:
        while not self._items:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                # A cancelled wait leaves no future behind: its error's traceback holds this
                # frame, and so the stream, which must be free to go once its consumer has.
                if self._waiter is waiter:
                    self._waiter = None
                del waiter
                if self._woken:
                    self._woken = False
                    self._owner._handing_over -= 1
        item = self._items.popleft()
        self._forget(item)
        if isinstance(item, TickBatch):
            self.delivered_ticks += item.count
        return item

    def drain(self, max_ticks: int | None = None) -> list[E]:
        """What is queued now, without waiting: everything, or the items before the first
        batch that would take the ticks taken past ``max_ticks`` (at least one item).

        Raises the feed's error once everything is drained.
        """
        items = self._items
        if not items and self._error is not None:
            raise self._error
        if max_ticks is None:
            out = list(items)
            items.clear()
            delivered = self._queued_ticks
            self._queued_events = 0
            self._queued_ticks = 0
            self._queued_bytes = 0
            self.delivered_ticks += delivered
            return out
        out = []
        taken = 0
        while items:
            item = items[0]
            if isinstance(item, TickBatch):
                if out and taken + item.count > max_ticks:
                    break
                taken += item.count
            items.popleft()
            self._forget(item)
            out.append(item)
        self.delivered_ticks += taken
        return out

    def close(self) -> None:
        """Stop receiving and free the queue; what was queued is counted as dropped.

        The iteration ends (at once: nothing queued is left to read).
        """
        self._owner._unregister(self)
        for item in self._items:
            if isinstance(item, TickBatch):
                self.dropped_ticks += item.count
                self._owner._count_drop(item, item.count)
        self._items.clear()
        self._queued_ticks = self._queued_bytes = self._queued_events = 0
        self._finish()


AnyStream = EventStream[TickBatch] | EventStream[Event]


class _Key:
    """What the manager knows of one key while the feed runs."""

    def __init__(self, config: KeyConfig, max_connections: int) -> None:
        self.config = config
        self.max_connections = max_connections
        self.auth_failed = False
        self.ever_connected = False
        self.blocked_slots: set[int] = set()
        self.probe_index: int | None = None
        self.message = ""
        self.orders = 0
        self._seen: set[object] = set()
        self._seen_order: deque[object] = deque()

    def first_delivery(self, update: OrderUpdate) -> bool:
        key = update.dedup_key
        if key in self._seen:
            return False
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > _SEEN_ORDERS:
            self._seen.discard(self._seen_order.popleft())
        self.orders += 1
        return True


class _Sink:
    """What a connection calls (:class:`~kitefan.connection.ConnectionSink`): the manager's
    private hooks, so that none of them is a public attribute of the feed."""

    __slots__ = ("_feed",)

    def __init__(self, feed: FeedManager) -> None:
        self._feed = feed

    def on_ticks(self, batch: TickBatch) -> None:
        self._feed._on_ticks(batch)

    def on_order(self, conn: FeedConnection, update: OrderUpdate) -> None:
        self._feed._on_order(conn, update)

    def on_server_text(self, conn: FeedConnection, text: str, *, error: bool) -> None:
        self._feed._on_server_text(conn, text, error=error)

    def on_state(self, conn: FeedConnection, message: str, gap: Gap | None = None) -> None:
        self._feed._on_state(conn, message, gap)

    def on_refused(self, conn: FeedConnection, refusal: Refusal, status: int) -> None:
        self._feed._on_refused(conn, refusal, status)

    def on_opened(self, conn: FeedConnection) -> None:
        self._feed._on_opened(conn)

    def handing_over(self) -> bool:
        return self._feed._handing_over > 0


class _NoCallback:
    """A callback name of the official client's ``KiteTicker``, on the feed: the feed has no
    callbacks, so setting (or reading) one raises instead of being silently ignored."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.message = (
            f"FeedManager has no {name} callback: iterate feed.ticks() or feed.events() "
            "instead (kitefan.compat.KiteTicker takes the official client's callbacks)"
        )

    def __get__(self, feed: object, owner: type | None = None) -> Any:
        if feed is None:
            return self
        raise AttributeError(self.message)

    def __set__(self, feed: object, value: object) -> None:
        raise AttributeError(self.message)


class FeedManager:
    """Every key's connections, one plan, one stream of ticks.

    Args:
        config: the loaded config (keys, symbols, strategy, limits, tuning).
        rng: the random source of reconnect jitter (seed it in tests).
        token_advice: what a refused key's status says to do (HTTP 403).

        connect_deadline_s: when no connection of any key has opened this many seconds after a
            connection was first wanted, every stream ends with :class:`UnreachableError`
            (the connections keep trying); ``None`` waits for ever.

    Raises:
        PlanError: the config's symbols cannot be placed (raised by the constructor).
    """

    # The official client's callbacks: assigning one raises (iterate the streams instead).
    on_ticks = _NoCallback()
    on_connect = _NoCallback()
    on_close = _NoCallback()
    on_error = _NoCallback()
    on_reconnect = _NoCallback()
    on_noreconnect = _NoCallback()
    on_order_update = _NoCallback()
    on_message = _NoCallback()

    def __init__(
        self,
        config: AppConfig,
        *,
        rng: random.Random | None = None,
        connect_deadline_s: float | None = CONNECT_DEADLINE_S,
        token_advice: str = "put a fresh token in the config and run `kitefan distribute`",  # noqa: S107
    ) -> None:
        if not config.keys:
            raise FeedError("the config has no [[keys]]: add at least one key")
        self._config = config
        self._tuning = config.tuning
        self._token_advice = token_advice
        self._rng = rng or random.Random()
        self._keys: dict[str, _Key] = {
            k.id: _Key(k, config.max_connections_per_key) for k in config.keys
        }
        self._symbols: dict[int, SymbolSpec] = {s.token: s for s in config.symbols}
        self._home = self._plan(self._full_capacities(), previous=None)
        self._current = self._home
        # Redundancy: the copies of each snapshot folded into one (see kitefan.merge).
        self._merge = Merge(self._keys, self._current.routes()) if config.redundancy > 1 else None
        self._conns: dict[tuple[str, int], FeedConnection] = {}
        # Counters live per slot, so that a slot's figures survive its connection being
        # stopped (failover) and started again.
        self._slots: dict[tuple[str, int], ConnectionCounters] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # The consumers' streams, held weakly: a stream nobody references is forgotten.
        self._streams: tuple[weakref.ref[AnyStream], ...] = ()
        self._lag = LoopLagMeter()
        self._probe: asyncio.Task[None] | None = None
        self._started_at = time.perf_counter()
        self._running = False
        self._failure: BaseException | None = None
        # Consumers woken with ticks that have not run yet (see _is_handing_over).
        self._handing_over = 0
        # What publishes this feed to Redis reports here (see report_publishing).
        self._publishing: Callable[[], PublishStats] | None = None
        # What the connections call: the hooks above are private, so that nothing a user sets
        # on the feed (``feed.on_ticks = handler``, the official client's habit) can take them.
        self._sink = _Sink(self)
        if connect_deadline_s is not None and not connect_deadline_s > 0:
            raise ValueError(f"connect_deadline_s must be more than 0, not {connect_deadline_s}")
        self._connect_deadline_s = connect_deadline_s
        self._deadline: asyncio.TimerHandle | None = None
        self._last_attempt = ""

    # Lifecycle

    async def __aenter__(self) -> Self:
        self._running = True
        self._started_at = time.perf_counter()
        self._probe = asyncio.get_running_loop().create_task(
            self._probe_loop(), name="kitefan:loop-lag"
        )
        self._apply(self._current, force=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection with a close frame and wait for every task to end."""
        self._running = False
        if self._deadline is not None:
            self._deadline.cancel()
        for conn in list(self._conns.values()):
            conn.stop()
        if self._tasks:
            _, pending = await asyncio.wait(
                set(self._tasks), timeout=self._tuning.close_timeout_s + 1.0
            )
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        for stream in self._live_streams():
            stream._finish(self._failure)

    # Consumers

    def ticks(
        self,
        *,
        key: str | None = None,
        connection: int | None = None,
        max_ticks: int | None = None,
        max_bytes: int | None = None,
    ) -> EventStream[TickBatch]:
        """A new stream of tick batches, of every key, one key, or one connection of a key.

        Bounded by ``max_ticks`` and ``max_bytes`` (default: the tuning's ``queue_max_ticks`` and
        ``queue_max_bytes``). Close it when done (``close()``, ``async with``, or leaving an
        ``async for`` over it).
        """
        self._check_key(key)
        stream: EventStream[TickBatch] = EventStream(
            self,
            key=key,
            connection=connection,
            ticks_only=True,
            max_ticks=max_ticks or self._tuning.queue_max_ticks,
            max_bytes=max_bytes or self._tuning.queue_max_bytes,
            drop_newest=self._tuning.overflow == "drop-newest",
        )
        self._register(stream)
        return stream

    def events(
        self,
        *,
        key: str | None = None,
        max_ticks: int | None = None,
        max_bytes: int | None = None,
    ) -> EventStream[Event]:
        """A new stream of everything: tick batches, status changes, orders and server errors.

        Bounded as :meth:`ticks` is; status events are never dropped.
        """
        self._check_key(key)
        stream: EventStream[Event] = EventStream(
            self,
            key=key,
            connection=None,
            ticks_only=False,
            max_ticks=max_ticks or self._tuning.queue_max_ticks,
            max_bytes=max_bytes or self._tuning.queue_max_bytes,
            drop_newest=self._tuning.overflow == "drop-newest",
        )
        self._register(stream)
        return stream

    # Changing what streams

    async def subscribe(
        self,
        symbols: Iterable[int | str | SymbolSpec],
        *,
        mode: Mode | str | None = None,
        key: str | None = None,
    ) -> PlanDiff:
        """Stream more symbols: placed by the strategy, or on ``key`` (pinned there).

        Each symbol is an instrument token (an ``int`` from 1 to 4294967295, or its decimal
        string: a name always has a colon), an ``EXCHANGE:TRADINGSYMBOL`` name, or a
        :class:`SymbolSpec`. A name the feed does not stream is resolved through the config's
        instruments dump, read for the call off the event loop. ``mode`` is a :class:`Mode` or
        its wire string (``"ltp"``, ``"quote"``, ``"full"``); without it a new symbol takes the
        config's mode. Everything is checked before anything changes: with one bad symbol,
        nothing is subscribed and nothing is sent.

        A symbol already streaming changes mode if ``mode`` differs, and moves if pinned
        elsewhere. Returns what changed.

        Raises:
            SymbolError: a symbol is malformed, out of range, or unknown (with the closest names
                of the dump), a name needs a dump the config does not have, or ``mode`` is not
                a mode.
            FeedError: ``key`` is not a key of the config.
            PlanError: the symbols cannot be placed.
            InstrumentsError: the instruments dump cannot be read.
        """
        self._check_key(key)
        new_mode = None if mode is None else parse_mode(mode)
        specs = await self._checked(symbols)
        wanted = dict(self._symbols)  # after the await: another change may have run meanwhile
        for spec in specs:
            spec = replace(
                spec, mode=new_mode or spec.mode, key=key if key is not None else spec.key
            )
            wanted[spec.token] = spec
        return self._rehome(wanted)

    async def unsubscribe(self, tokens: Iterable[int | str | SymbolSpec]) -> PlanDiff:
        """Stop streaming these symbols (given as to :meth:`subscribe`); others are ignored.

        Raises:
            SymbolError: a symbol is malformed, out of range or unknown (nothing is changed).
            InstrumentsError: the instruments dump cannot be read.
        """
        specs = await self._checked(tokens)
        wanted = dict(self._symbols)
        for spec in specs:
            wanted.pop(spec.token, None)
        return self._rehome(wanted)

    async def set_mode(
        self, tokens: Iterable[int | str | SymbolSpec], mode: Mode | str
    ) -> PlanDiff:
        """Change the mode of symbols already streaming (given as to :meth:`subscribe`).

        ``mode`` is a :class:`Mode` or its wire string; symbols not streaming are ignored.

        Raises:
            SymbolError: a symbol is malformed, out of range or unknown, or ``mode`` is not a
                mode (nothing is changed).
            InstrumentsError: the instruments dump cannot be read.
        """
        new_mode = parse_mode(mode)
        specs = await self._checked(tokens)
        wanted = dict(self._symbols)
        for checked in specs:
            spec = wanted.get(checked.token)
            if spec is not None:
                wanted[spec.token] = replace(spec, mode=new_mode)
        return self._rehome(wanted)

    async def _checked(self, items: Iterable[int | str | SymbolSpec]) -> list[SymbolSpec]:
        """Every item given to subscribe, unsubscribe or set_mode, as a checked spec."""
        if isinstance(items, (str, bytes, int, SymbolSpec)):
            raise SymbolError(
                items, f"symbols must be a list of tokens, names or specs, not {items!r:.40}"
            )
        try:
            listed = list(items)
        except TypeError:
            raise SymbolError(
                items, f"symbols must be a list of tokens, names or specs, not {items!r:.40}"
            ) from None
        by_name = {spec.name: spec for spec in self._symbols.values()}
        dump = self._config.instruments
        index = None
        if (
            dump is not None
            and any(needs_instruments(item, by_name) for item in listed)
            and dump.is_file()
        ):
            index = await asyncio.to_thread(load_instruments, dump)
        return [
            spec_of(
                item,
                mode=self._config.mode,
                by_token=self._symbols,
                by_name=by_name,
                index=index,
                instruments=dump,
            )
            for item in listed
        ]

    def preview_config(self, config: AppConfig) -> PlanDiff:
        """What :meth:`apply_config` would change, without changing anything."""
        self._check_compatible(config)
        home = self._plan_symbols(config.symbols, self._full_capacities(config), self._home)
        target = self._plan_symbols(config.symbols, self._capacities(config), home)
        return diff(self._current, target)

    async def apply_config(self, config: AppConfig) -> PlanDiff:
        """Apply an edited config to the running feed with the smallest change.

        New symbols subscribe, removed ones unsubscribe, changed modes change; every other
        symbol stays where it is and keeps streaming. New tokens of known keys take effect at
        once (a key back from ``auth_failed`` retries immediately).

        Raises:
            PlanError: the new symbols cannot be placed (nothing is changed).
            FeedError: the edit changes what a running feed cannot (keys added or removed, url,
                limits, strategy): restart the stream for those.
        """
        self._check_compatible(config)
        home = self._plan_symbols(config.symbols, self._full_capacities(config), self._home)
        for key_config in config.keys:
            key = self._keys[key_config.id]
            if key_config.credential != key.config.credential:
                key.config = key_config
                for (key_id, _), conn in self._conns.items():
                    if key_id == key_config.id:
                        conn.update_credential(key_config.credential)
        # Tuning is read when connections are made; a running feed keeps the tuning it started
        # with, and its config says so.
        self._config = replace(config, tuning=self._tuning)
        self._symbols = {s.token: s for s in config.symbols}
        self._home = home
        return self._replan()

    # Looking at it

    @property
    def config(self) -> AppConfig:
        return self._config

    @property
    def plan(self) -> Plan:
        """Where every symbol streams now (after any failover)."""
        return self._current

    @property
    def home_plan(self) -> Plan:
        """Where every symbol streams when every key is healthy."""
        return self._home

    def keys(self) -> list[str]:
        """The key ids, in config order."""
        return list(self._keys)

    def symbol(self, token: int) -> SymbolSpec | None:
        """What the feed knows of a token it streams."""
        return self._symbols.get(token)

    def name_of(self, token: int) -> str:
        """A token's display name: ``EXCHANGE:TRADINGSYMBOL`` when known, else the number."""
        spec = self._symbols.get(token)
        return spec.name if spec is not None else str(token)

    def never_ticked(self, key: str | None = None) -> list[SymbolSpec]:
        """Subscribed symbols that have not ticked since they were subscribed.

        Raises:
            FeedError: ``key`` is not a key of the config.
        """
        self._check_key(key)
        out: list[SymbolSpec] = []
        for (key_id, _), conn in sorted(self._conns.items()):
            if key is None or key_id == key:
                out.extend(self._spec_of(token) for token in sorted(conn.session.silent))
        return out

    def stats(self) -> FeedStats:
        """Every key and connection, now."""
        now = time.perf_counter()
        return FeedStats(
            keys=tuple(self._key_stats(key, now) for key in self._keys.values()),
            updated_at=time.time(),
            uptime_s=now - self._started_at,
            loop_lag=self._lag.snapshot(asyncio.get_running_loop().time())
            if self._probe is not None
            else None,
            publish=self._publishing() if self._publishing is not None else None,
            redundancy=self._redundancy_stats(now),
        )

    def _redundancy_stats(self, now: float) -> RedundancyStats | None:
        merge = self._merge
        if merge is None:
            return None
        merge.expire(now)
        counts = merge.counts
        return RedundancyStats(
            redundancy=self._config.redundancy,
            delivered=counts.delivered,
            duplicates=dict(counts.duplicates),
            missed=dict(counts.missed),
            pending=merge.pending,
        )

    def report_publishing(self, source: Callable[[], PublishStats] | None) -> None:
        """Include a publisher's figures in :meth:`stats` (``kitefan stats``, metrics);
        ``None`` stops."""
        self._publishing = source

    def key_stats(self, key_id: str) -> KeyStats:
        """One key and its connections, now."""
        self._check_key(key_id)
        return self._key_stats(self._keys[key_id], time.perf_counter())

    def key_state(self, key_id: str) -> KeyState:
        return self.key_stats(key_id).state

    def announce(self, state: str, message: str) -> None:
        """Tell every event stream something about the whole feed (a status event of key ``*``).

        Used by what steers a running feed from outside (a config applied or rejected).
        """
        self._emit(StatusEvent("*", None, state, message, time.time()))

    # The connections' hooks (called through _Sink, synchronously, on the event loop)

    def _is_handing_over(self) -> bool:
        """Whether a consumer was woken with ticks and has not run yet.

        A connection holding a frame then yields once before decoding it, so that frames that
        arrive together reach the consumers one by one instead of all after the last is decoded.
        """
        return self._handing_over > 0

    def _on_ticks(self, batch: TickBatch) -> None:
        if self._merge is not None:
            merged = self._merge.push(batch)
            if merged is None:
                return
            batch = merged
        for ref in self._streams:
            stream = ref()
            if stream is not None and stream.accepts(batch.key, batch.connection):
                stream._push_batch(batch)

    def _on_order(self, conn: FeedConnection, update: OrderUpdate) -> None:
        key = self._keys[conn.key_id]
        if key.first_delivery(update):
            self._emit(OrderEvent(conn.key_id, conn.index, update, time.time()))

    def _on_server_text(self, conn: FeedConnection, text: str, *, error: bool) -> None:
        if error:
            self._emit(ErrorEvent(conn.key_id, conn.index, text, time.time()))
        else:
            self._emit(StatusEvent(conn.key_id, conn.index, "message", text, time.time()))

    def _on_state(self, conn: FeedConnection, message: str, gap: Gap | None = None) -> None:
        if conn.state is not ConnState.CONNECTED:
            self._last_attempt = f"{conn.key_id}#{conn.index} {conn.state.value}: {message}"
        if conn.stopping and conn.state is not ConnState.CONNECTED:
            return
        if conn.state in (ConnState.AUTH_FAILED, ConnState.SLOT_LIMITED):
            return  # _on_refused says it once, for the key, with what to do
        if gap is not None and self._merge is not None:
            gap = self._uncovered(conn.key_id, gap)
        self._emit(
            StatusEvent(conn.key_id, conn.index, conn.state.value, message, time.time(), gap)
        )

    def _on_refused(self, conn: FeedConnection, refusal: Refusal, status: int) -> None:
        key = self._keys[conn.key_id]
        if refusal is Refusal.AUTH:
            if key.auth_failed:
                return
            key.auth_failed = True
            key.message = (
                f"refused with HTTP {status}: the access token is invalid or expired; "
                f"{self._token_advice}"
            )
            self._emit(
                StatusEvent(key.config.id, None, KeyState.AUTH_FAILED, key.message, time.time())
            )
            if self._tuning.failover:
                key.probe_index = conn.index
            # Every key refused before any streamed: the feed ends, with no re-plan to report.
            self._check_usable()
            if self._tuning.failover and self._failure is None:
                self._replan()
        elif refusal is Refusal.SLOTS:
            if conn.index in key.blocked_slots:
                return
            key.blocked_slots.add(conn.index)
            usable = key.max_connections - len(key.blocked_slots)
            key.message = (
                f"refused a connection with HTTP {status}: another program holds this key's "
                f"connections; using {usable} of {key.max_connections}"
            )
            self._emit(
                StatusEvent(
                    key.config.id, conn.index, KeyState.SLOT_LIMITED, key.message, time.time()
                )
            )
            self._replan()

    def _on_opened(self, conn: FeedConnection) -> None:
        key = self._keys[conn.key_id]
        key.ever_connected = True
        if self._deadline is not None:
            self._deadline.cancel()
        changed = False
        if key.auth_failed:
            key.auth_failed = False
            key.probe_index = None
            key.message = "token accepted again"
            self._emit(
                StatusEvent(key.config.id, None, KeyState.CONNECTED, key.message, time.time())
            )
            changed = True
        if conn.index in key.blocked_slots:
            key.blocked_slots.discard(conn.index)
            key.message = f"connection {conn.index} slot won back"
            self._emit(
                StatusEvent(key.config.id, conn.index, KeyState.CONNECTED, key.message, time.time())
            )
            changed = True
        if changed:
            self._replan()

    # Planning

    def _full_capacities(self, config: AppConfig | None = None) -> list[KeyCapacity]:
        config = config or self._config
        return [KeyCapacity(k.id, config.max_connections_per_key) for k in config.keys]

    def _capacities(self, config: AppConfig | None = None) -> list[KeyCapacity]:
        config = config or self._config
        out = []
        for key_config in config.keys:
            key = self._keys[key_config.id]
            if key.auth_failed and self._tuning.failover:
                out.append(KeyCapacity(key.config.id, 0))
            else:
                out.append(
                    KeyCapacity(
                        key.config.id,
                        config.max_connections_per_key,
                        blocked=frozenset(key.blocked_slots),
                    )
                )
        return out

    def _plan(self, capacities: Sequence[KeyCapacity], previous: Plan | None) -> Plan:
        return self._plan_symbols(list(self._symbols.values()), capacities, previous)

    def _plan_symbols(
        self,
        symbols: Sequence[SymbolSpec],
        capacities: Sequence[KeyCapacity],
        previous: Plan | None,
    ) -> Plan:
        return plan(
            symbols,
            capacities,
            strategy=self._config.strategy,
            max_symbols_per_connection=self._config.max_symbols_per_connection,
            previous=previous,
            redundancy=self._config.redundancy,
        )

    def _rehome(self, wanted: dict[int, SymbolSpec]) -> PlanDiff:
        home = self._plan_symbols(list(wanted.values()), self._full_capacities(), self._home)
        self._symbols = wanted
        self._home = home
        return self._replan()

    def _replan(self) -> PlanDiff:
        try:
            target = self._plan(self._capacities(), previous=self._home)
        except PlanError as exc:
            message = f"cannot re-plan around the failed keys: {exc}"
            if all(k.auth_failed for k in self._keys.values()):
                message = (
                    "every key is refused with HTTP 403: nothing streams until a fresh token "
                    f"is accepted; {self._token_advice}"
                )
            log.warning(message)
            self._emit(StatusEvent("*", None, "replan_failed", message, time.time()))
            return PlanDiff(changes=())
        return self._apply(target)

    def _uncovered(self, key_id: str, gap: Gap) -> Gap | None:
        """The part of a gap that another key did not stream through: its symbols that have no
        place on another key whose connection was up the whole time (``None`` if none)."""
        plan = self._current
        left = []
        for token in gap.tokens:
            for other, index in plan.places(token):
                conn = self._conns.get((other, index))
                seen = self._slots.get((other, index))
                if other == key_id or conn is None or conn.state is not ConnState.CONNECTED:
                    continue
                own = seen.last_gap if seen is not None else None
                if own is None or own.end <= gap.start or own.start >= gap.end:
                    break
            else:
                left.append(token)
        return replace(gap, tokens=tuple(left)) if left else None

    def _apply(self, target: Plan, *, force: bool = False) -> PlanDiff:
        change = diff(self._current, target)
        self._current = target
        if self._merge is not None:
            self._merge.route(target.routes())
        if not self._running:
            return change
        touched: set[FeedConnection] = set()
        if force:
            for key_plan in target.keys:
                for slot in key_plan.connections:
                    if slot.symbols:
                        conn = self._connection(key_plan.key_id, slot.index)
                        conn.session.add((s.token, s.mode) for s in slot.symbols)
        # Subscribe first, so that a moved symbol is picked up before it is dropped.
        for slot_change in change.changes:
            if slot_change.subscribe or slot_change.mode_changes:
                conn = self._connection(slot_change.key_id, slot_change.index)
                conn.session.add((s.token, s.mode) for s in slot_change.subscribe)
                conn.session.add(slot_change.mode_changes)
                touched.add(conn)
        for slot_change in change.changes:
            existing = self._conns.get((slot_change.key_id, slot_change.index))
            if slot_change.unsubscribe and existing is not None:
                existing.session.remove(slot_change.unsubscribe)
                touched.add(existing)
        for conn in touched:
            conn.kick()
        for slot_key, conn in list(self._conns.items()):
            key = self._keys[slot_key[0]]
            if (
                len(conn.session) == 0
                and key.probe_index != conn.index
                and conn.index not in key.blocked_slots
            ):
                del self._conns[slot_key]
                conn.stop()
        return change

    # Connections

    def _connection(self, key_id: str, index: int) -> FeedConnection:
        conn = self._conns.get((key_id, index))
        if conn is not None:
            return conn
        key = self._keys[key_id]
        counters = self._slots.setdefault((key_id, index), ConnectionCounters())
        conn = FeedConnection(
            key_id=key_id,
            index=index,
            url=self._config.url,
            credential=key.config.credential,
            tuning=self._tuning,
            sink=self._sink,
            rng=random.Random(self._rng.random()),
            counters=counters,
        )
        self._conns[(key_id, index)] = conn
        # The rate of stats() counts from here, not from the first time stats() is asked.
        counters.meter.rate(time.perf_counter(), counters.ticks)
        self._arm_deadline()
        task = asyncio.get_running_loop().create_task(
            self._guarded(conn), name=f"kitefan:{key_id}#{index}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return conn

    async def _guarded(self, conn: FeedConnection) -> None:
        """Run one connection until it is stopped; a bug in it restarts it, and only it.

        An exception out of the connection is counted (``internal_errors``), logged (the
        traceback at debug level only) and reported as an error event; the connection then
        waits out a backoff (:meth:`FeedConnection.recover`, reported as ``reconnecting``) and
        runs again, resubscribing what it carries. The other connections never notice.
        """
        slot = (conn.key_id, conn.index)
        try:
            while True:
                try:
                    await conn.run()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    reason = f"internal error ({type(exc).__name__})"
                    conn.counters.internal_errors += 1
                    log.error(
                        "connection %s#%d: %s in kitefan; restarting the connection "
                        "(the traceback is logged at debug level)",
                        conn.key_id,
                        conn.index,
                        reason,
                    )
                    log.debug("the traceback of that internal error", exc_info=True)
                    self._emit(
                        ErrorEvent(
                            conn.key_id,
                            conn.index,
                            f"{reason} in kitefan: restarting the connection",
                            time.time(),
                        )
                    )
                if conn.stopping or self._conns.get(slot) is not conn:
                    return
                await conn.recover(reason)
        finally:
            if self._conns.get(slot) is conn:
                del self._conns[slot]

    def _arm_deadline(self) -> None:
        """Start the connect deadline when the first connection is wanted (see __init__)."""
        if (
            self._connect_deadline_s is None
            or self._deadline is not None
            or self._failure is not None
            or any(k.ever_connected for k in self._keys.values())
        ):
            return
        self._deadline = asyncio.get_running_loop().call_later(
            self._connect_deadline_s, self._deadline_passed
        )

    def _deadline_passed(self) -> None:
        if not self._running or any(k.ever_connected for k in self._keys.values()):
            return
        error = UnreachableError(
            self._connect_deadline_s or 0.0, self._config.url, self._last_attempt
        )
        log.warning("%s", error)
        self._fail(error)

    def _check_usable(self) -> None:
        keys = self._keys.values()
        if all(k.auth_failed for k in keys) and not any(k.ever_connected for k in keys):
            self._fail(
                NoUsableKeyError(
                    "every key was refused with HTTP 403: their access tokens are invalid or "
                    "expired; put fresh tokens in the config"
                )
            )

    def _fail(self, error: KitefanError) -> None:
        if self._failure is None:
            self._failure = error
        for stream in self._live_streams():
            stream._finish(error)

    # Internals

    def _register(self, stream: AnyStream) -> None:
        if self._failure is not None:
            stream._finish(self._failure)
        self._streams = (*self._streams, weakref.ref(stream, self._forget_ref))

    def _unregister(self, stream: AnyStream) -> None:
        self._streams = tuple(ref for ref in self._streams if ref() is not stream)

    def _forget_ref(self, dead: weakref.ref[AnyStream]) -> None:
        self._streams = tuple(ref for ref in self._streams if ref is not dead)

    def _live_streams(self) -> list[AnyStream]:
        return [stream for stream in (ref() for ref in self._streams) if stream is not None]

    def _emit(self, event: Event) -> None:
        if isinstance(event, StatusEvent):
            log.info("%s#%s %s: %s", event.key, event.connection, event.state, event.message)
        for stream in self._live_streams():
            if not stream.ticks_only and stream.accepts(event.key, None):
                stream._push_event(event)

    def _count_drop(self, batch: TickBatch, count: int) -> None:
        counters = self._slots.get((batch.key, batch.connection))
        if counters is not None:
            counters.drops += count

    async def _probe_loop(self) -> None:
        """Ask to wake every LOOP_PROBE_S and record how late the loop woke (loop lag); every
        RATE_SAMPLE_S, sample the tick counts (see _sample_rates)."""
        loop = asyncio.get_running_loop()
        lag = self._lag
        next_sample = time.perf_counter() + RATE_SAMPLE_S
        while True:
            asked = loop.time()
            await asyncio.sleep(LOOP_PROBE_S)
            woke = loop.time()
            lag.add(woke - asked - LOOP_PROBE_S, woke)
            now = time.perf_counter()
            if now >= next_sample:
                next_sample = now + RATE_SAMPLE_S
                self._sample_rates(now)

    def _sample_rates(self, now: float) -> None:
        """Record every slot's tick count at ``now``, so that the rates of :meth:`stats` are
        over the last few seconds whenever it is asked, the first time included."""
        for counters in self._slots.values():
            counters.meter.rate(now, counters.ticks)

    def _spec_of(self, token: int) -> SymbolSpec:
        known = self._symbols.get(token)
        return known if known is not None else SymbolSpec(token, str(token), self._config.mode)

    def _check_key(self, key: str | None) -> None:
        if key is not None and key not in self._keys:
            raise FeedError(f"no key {key!r} in the config; the keys are {', '.join(self._keys)}")

    def _check_compatible(self, config: AppConfig) -> None:
        if [k.id for k in config.keys] != list(self._keys):
            raise FeedError(
                "the edited config adds, removes or reorders keys: restart the stream for that"
            )
        for name in (
            "url",
            "strategy",
            "max_connections_per_key",
            "max_symbols_per_connection",
            "redundancy",
        ):
            if getattr(config, name) != getattr(self._config, name):
                raise FeedError(
                    f"the edited config changes {name}, which a running stream cannot take: "
                    "restart the stream for that"
                )

    def _key_stats(self, key: _Key, now: float) -> KeyStats:
        key_id = key.config.id
        slots = sorted(index for k, index in self._slots if k == key_id)
        conn_stats = tuple(
            self._connection_stats(
                index, self._slots[(key_id, index)], self._conns.get((key_id, index)), now
            )
            for index in slots
        )
        state = key_state(
            [c.state for c in conn_stats],
            auth_failed=key.auth_failed,
            slot_limited=bool(key.blocked_slots),
        )
        return KeyStats(key.config.id, state, conn_stats, key.orders, key.message)

    def _connection_stats(
        self, index: int, c: ConnectionCounters, conn: FeedConnection | None, now: float
    ) -> ConnectionStats:
        by_mode = conn.session.count_by_mode() if conn is not None else {}
        symbols = sum(by_mode.values())
        state = conn.state if conn is not None else ConnState.CLOSED
        connected = state is ConnState.CONNECTED
        return ConnectionStats(
            index=index,
            state=state,
            symbols=symbols,
            symbols_by_mode={m.value: by_mode.get(m, 0) for m in Mode},
            frames=c.frames,
            ticks=c.ticks,
            bytes=c.bytes,
            ticks_per_s=c.meter.rate(now, c.ticks),
            heartbeats=c.heartbeats,
            skipped_packets=c.skipped_packets,
            decode_errors=c.decode_errors,
            server_errors=c.server_errors,
            internal_errors=c.internal_errors,
            reconnects=c.reconnects,
            drops=c.drops,
            orders=c.orders,
            last_gap=c.last_gap,
            last_frame_age_s=(now - c.last_frame_at) if c.last_frame_at is not None else None,
            uptime_s=(now - c.connected_at) if connected and c.connected_at is not None else None,
            never_ticked=len(conn.session.silent) if conn is not None else 0,
            exchange_delay_p50_s=percentile_of_counts(c.delay_counts, 0.5),
            exchange_delay_p99_s=percentile_of_counts(c.delay_counts, 0.99),
        )
