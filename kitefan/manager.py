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

The decisions are not made here: every key's health, the plans and what a refusal or a recovery
changes are :class:`kitefan.failover.FeedHealth`'s (pure), and the streams are
:class:`kitefan.streams.Streams`'. The manager is their driver: it runs the connections' tasks,
passes on what they report, and carries out the actions ``FeedHealth`` answers with.

With ``redundancy = 2`` every symbol streams on two keys and :class:`kitefan.merge.Merge` folds
the copies before the streams see them: each snapshot once; duplicates and the snapshots one key
missed are counted (``stats().redundancy``). A connection lost on one key is still a status event,
but its gap names only the symbols no other key carried through it.

Owns: ``FeedManager`` (``EventStream`` is :mod:`kitefan.streams`', re-exported here). Must not
import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kitefan.connection import FeedConnection
from kitefan.errors import (
    FeedError,
    SymbolError,
)
from kitefan.events import (
    ConnState,
    ErrorEvent,
    Event,
    Gap,
    KeyState,
    OrderEvent,
    Status,
    StatusEvent,
    TickBatch,
)
from kitefan.failover import (
    Action,
    Announce,
    ApplyPlan,
    EndFeed,
    FeedHealth,
    KeyHealth,
)
from kitefan.instruments import InstrumentIndex
from kitefan.loader import load_instruments
from kitefan.merge import Merge
from kitefan.models import Mode, OrderUpdate
from kitefan.planner import Plan, PlanDiff
from kitefan.retry import Refusal
from kitefan.settings import AppConfig, SymbolSpec
from kitefan.stats import (
    LOOP_PROBE_S,
    ConnectionCounters,
    ConnectionStats,
    FeedStats,
    KeyStats,
    LoopLagMeter,
    PublishStats,
    RecordStats,
    RedundancyStats,
    key_state,
    percentile_of_counts,
)
from kitefan.streams import EventStream, Streams
from kitefan.symbols import needs_instruments, parse_mode, spec_of

__all__ = ["CONNECT_DEADLINE_S", "EventStream", "FeedManager"]

log = logging.getLogger(__name__)

#: How long a feed waits for its first connection before its streams raise UnreachableError.
CONNECT_DEADLINE_S = 30.0
#: How often the feed samples its connections' tick counts for the rates of :meth:`stats`.
RATE_SAMPLE_S = 0.25


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
        return self._feed._is_handing_over()


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
        self._rng = rng or random.Random()
        if connect_deadline_s is not None and not connect_deadline_s > 0:
            raise ValueError(f"connect_deadline_s must be more than 0, not {connect_deadline_s}")
        # Every key's health, the symbols wanted and the plans (kitefan.failover, pure): told
        # what happens, it answers with the actions _execute carries out.
        self._health = FeedHealth(
            config,
            failover=self._tuning.failover,
            token_advice=token_advice,
            clock=time.time,
            connect_deadline_s=connect_deadline_s,
        )
        self._keys = self._health.keys  # the same dict, for the lookups below
        # Redundancy: the copies of each snapshot folded into one (see kitefan.merge).
        self._merge = (
            Merge(self._keys, self._health.current.routes()) if config.redundancy > 1 else None
        )
        self._conns: dict[tuple[str, int], FeedConnection] = {}
        # Counters live per slot, so that a slot's figures survive its connection being
        # stopped (failover) and started again.
        self._slots: dict[tuple[str, int], ConnectionCounters] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # The consumers' streams (held weakly: a stream nobody references is forgotten), the
        # error they end with, and the consumers woken with ticks that have not run yet.
        self._streams = Streams(on_drop=self._count_drop)
        self._lag = LoopLagMeter()
        self._names: dict[int, str] = {}  # names(), made from _names_of
        self._names_of: object = None
        self._probe: asyncio.Task[None] | None = None
        self._started_at = time.perf_counter()
        self._running = False
        # What publishes this feed to Redis reports here (see report_publishing).
        self._publishing: Callable[[], PublishStats] | None = None
        # And what records it (see report_recording).
        self._recording: Callable[[], RecordStats] | None = None
        # What the connections call: the hooks above are private, so that nothing a user sets
        # on the feed (``feed.on_ticks = handler``, the official client's habit) can take them.
        self._sink = _Sink(self)
        # The connect deadline's timer; when it is armed and what it decides is FeedHealth's.
        self._deadline: asyncio.TimerHandle | None = None
        self._runs: dict[FeedConnection, asyncio.Task[None]] = {}

    # Lifecycle

    async def __aenter__(self) -> Self:
        self._running = True
        self._started_at = time.perf_counter()
        self._probe = asyncio.get_running_loop().create_task(
            self._probe_loop(), name="kitefan:loop-lag"
        )
        self._apply(ApplyPlan(self._health.current, PlanDiff(changes=())), force=True)
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
        self._streams.finish()

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
        return self._streams.open_ticks(
            key=key,
            connection=connection,
            max_ticks=max_ticks or self._tuning.queue_max_ticks,
            max_bytes=max_bytes or self._tuning.queue_max_bytes,
            drop_newest=self._tuning.overflow == "drop-newest",
        )

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
        return self._streams.open_events(
            key=key,
            max_ticks=max_ticks or self._tuning.queue_max_ticks,
            max_bytes=max_bytes or self._tuning.queue_max_bytes,
            drop_newest=self._tuning.overflow == "drop-newest",
        )

    # Changing what streams

    def subscribe(
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
        instruments dump, read for the call on the calling thread (about a second for the
        whole market's dump, during which the event loop waits: resolve names first with
        ``await feed.resolve(names)`` to read it off the loop). ``mode`` is a :class:`Mode` or
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
        specs = self._checked(symbols)
        wanted = dict(self._health.symbols)
        for spec in specs:
            spec = replace(
                spec, mode=new_mode or spec.mode, key=key if key is not None else spec.key
            )
            wanted[spec.token] = spec
        return self._rehome(wanted)

    def unsubscribe(self, tokens: Iterable[int | str | SymbolSpec]) -> PlanDiff:
        """Stop streaming these symbols (given as to :meth:`subscribe`); others are ignored.

        Raises:
            SymbolError: a symbol is malformed, out of range or unknown (nothing is changed).
            InstrumentsError: the instruments dump cannot be read.
        """
        specs = self._checked(tokens)
        wanted = dict(self._health.symbols)
        for spec in specs:
            wanted.pop(spec.token, None)
        return self._rehome(wanted)

    def set_mode(self, tokens: Iterable[int | str | SymbolSpec], mode: Mode | str) -> PlanDiff:
        """Change the mode of symbols already streaming (given as to :meth:`subscribe`).

        ``mode`` is a :class:`Mode` or its wire string; symbols not streaming are ignored.

        Raises:
            SymbolError: a symbol is malformed, out of range or unknown, or ``mode`` is not a
                mode (nothing is changed).
            InstrumentsError: the instruments dump cannot be read.
        """
        new_mode = parse_mode(mode)
        specs = self._checked(tokens)
        wanted = dict(self._health.symbols)
        for checked in specs:
            spec = wanted.get(checked.token)
            if spec is not None:
                wanted[spec.token] = replace(spec, mode=new_mode)
        return self._rehome(wanted)

    async def resolve(self, symbols: Iterable[int | str | SymbolSpec]) -> list[SymbolSpec]:
        """The checked :class:`SymbolSpec` of each symbol (given as to :meth:`subscribe`), with
        the instruments dump, when a name needs it, read in a worker thread: what this returns,
        given to :meth:`subscribe`, :meth:`unsubscribe` or :meth:`set_mode`, needs no dump and
        keeps the event loop running meanwhile. Changes nothing.

        Raises:
            SymbolError, InstrumentsError: as :meth:`subscribe` does.
        """
        listed = self._listed(symbols)
        dump = self._dump_needed(listed)
        index = None if dump is None else await asyncio.to_thread(load_instruments, dump)
        return self._specs(listed, index)

    def _checked(self, items: Iterable[int | str | SymbolSpec]) -> list[SymbolSpec]:
        """Every item given to subscribe, unsubscribe or set_mode, as a checked spec."""
        listed = self._listed(items)
        dump = self._dump_needed(listed)
        return self._specs(listed, None if dump is None else load_instruments(dump))

    @staticmethod
    def _listed(items: Iterable[int | str | SymbolSpec]) -> list[int | str | SymbolSpec]:
        if isinstance(items, (str, bytes, int, SymbolSpec)):
            raise SymbolError(
                items, f"symbols must be a list of tokens, names or specs, not {items!r:.40}"
            )
        try:
            return list(items)
        except TypeError:
            raise SymbolError(
                items, f"symbols must be a list of tokens, names or specs, not {items!r:.40}"
            ) from None

    def _dump_needed(self, listed: list[int | str | SymbolSpec]) -> Path | None:
        """The instruments dump to read for these items, if one of them needs it and it exists."""
        by_name = {spec.name: spec for spec in self._health.symbols.values()}
        dump = self._config.instruments
        if (
            dump is not None
            and any(needs_instruments(item, by_name) for item in listed)
            and dump.is_file()
        ):
            return dump
        return None

    def _specs(
        self, listed: list[int | str | SymbolSpec], index: InstrumentIndex | None
    ) -> list[SymbolSpec]:
        by_name = {spec.name: spec for spec in self._health.symbols.values()}
        return [
            spec_of(
                item,
                mode=self._config.mode,
                by_token=self._health.symbols,
                by_name=by_name,
                index=index,
                instruments=self._config.instruments,
            )
            for item in listed
        ]

    def preview_config(self, config: AppConfig) -> PlanDiff:
        """What :meth:`apply_config` would change, without changing anything."""
        self._check_compatible(config)
        return self._health.preview(config)

    def apply_config(self, config: AppConfig) -> PlanDiff:
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
        # Tuning is read when connections are made; a running feed keeps the tuning it started
        # with, and its config says so.
        config = replace(config, tuning=self._tuning)
        before = {key_id: key.config.credential for key_id, key in self._keys.items()}
        actions = self._health.reconfigure(config)  # raises PlanError before changing anything
        self._config = config
        for key_config in config.keys:
            if key_config.credential != before[key_config.id]:
                for (key_id, _), conn in self._conns.items():
                    if key_id == key_config.id:
                        conn.update_credential(key_config.credential)
        return self._execute(actions)

    # Looking at it

    @property
    def config(self) -> AppConfig:
        return self._config

    @property
    def plan(self) -> Plan:
        """Where every symbol streams now (after any failover)."""
        return self._health.current

    @property
    def home_plan(self) -> Plan:
        """Where every symbol streams when every key is healthy."""
        return self._health.home

    def keys(self) -> list[str]:
        """The key ids, in config order."""
        return list(self._keys)

    def symbol(self, token: int) -> SymbolSpec | None:
        """What the feed knows of a token it streams."""
        return self._health.symbols.get(token)

    def name_of(self, token: int) -> str:
        """A token's display name: ``EXCHANGE:TRADINGSYMBOL`` when known, else the number."""
        spec = self._health.symbols.get(token)
        return spec.name if spec is not None else str(token)

    def names(self) -> dict[int, str]:
        """Every symbol's display name by token, as :meth:`name_of` gives them (a token not in
        it is named by its number): the same dict until the symbols wanted change, so that a
        writer can look names up without a call per tick. Do not change it.

        A writer thread may call it: the symbols are replaced when they change, never changed
        in place, so building the dict from them races with nothing."""
        symbols = self._health.symbols
        if symbols is not self._names_of:
            self._names = {token: spec.name for token, spec in symbols.items()}
            self._names_of = symbols
        return self._names

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
            record=self._recording() if self._recording is not None else None,
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

    def report_recording(self, source: Callable[[], RecordStats] | None) -> None:
        """Include a recorder's figures in :meth:`stats` (``kitefan stats``, metrics);
        ``None`` stops."""
        self._recording = source

    def key_stats(self, key_id: str) -> KeyStats:
        """One key and its connections, now."""
        self._check_key(key_id)
        return self._key_stats(self._keys[key_id], time.perf_counter())

    def key_state(self, key_id: str) -> KeyState:
        return self.key_stats(key_id).state

    def announce(
        self, state: Status, message: str, *, key: str = "*", gap: Gap | None = None
    ) -> None:
        """Tell every event stream something about the whole feed (a status event of key ``*``)
        or about one ``key`` (with the ``gap`` it closes, if any).

        Used by what steers a running feed from outside (a config applied or rejected, a shared
        key taken over).

        Raises:
            ValueError: ``state`` is not a :class:`~kitefan.events.Status` (nor its word).
        """
        self._emit(StatusEvent(key, None, Status(state), message, time.time(), gap))

    async def hold_keys(self, key_ids: Iterable[str] | None) -> None:
        """Stream only these keys' part of the plan (``None``: every key, the default).

        The plan stays the whole config's: a key taken up streams the symbols the plan gives it,
        in their modes, so every process sharing a config streams the same symbols on a key; and
        while keys are held apart, failover moves no symbol between keys (the plan is the same
        in every process). A key let go has its connections stopped, and this returns once they
        are closed (a close frame, then the socket aborted after ``close_timeout_s``).

        Called before the feed is entered, it decides which connections entering opens.

        Raises:
            FeedError: a key is not a key of the config.
        """
        held = None if key_ids is None else frozenset(key_ids)
        for key_id in held or ():
            self._check_key(key_id)
        self._health.held = held
        if not self._running:
            return
        stopping = []
        for slot, conn in list(self._conns.items()):
            if not self._holds(slot[0]):
                del self._conns[slot]
                conn.stop()
                if (task := self._runs.get(conn)) is not None:
                    stopping.append(task)
        for key_plan in self._health.current.keys:
            if not self._holds(key_plan.key_id):
                continue
            for slot_plan in key_plan.connections:
                if slot_plan.symbols and (key_plan.key_id, slot_plan.index) not in self._conns:
                    conn = self._connection(key_plan.key_id, slot_plan.index)
                    conn.session.add((s.token, s.mode) for s in slot_plan.symbols)
        if stopping:
            await asyncio.wait(stopping, timeout=self._tuning.close_timeout_s + 1.0)

    def _holds(self, key_id: str) -> bool:
        return self._health.holds(key_id)

    # The connections' hooks (called through _Sink, synchronously, on the event loop)

    def _is_handing_over(self) -> bool:
        """Whether a consumer was woken with ticks and has not run yet.

        A connection holding a frame then yields once before decoding it, so that frames that
        arrive together reach the consumers one by one instead of all after the last is decoded.
        """
        return self._streams.handover.waiting > 0

    def _on_ticks(self, batch: TickBatch) -> None:
        if self._merge is not None:
            merged = self._merge.push(batch)
            if merged is None:
                return
            batch = merged
        self._streams.push_batch(batch)

    def _on_order(self, conn: FeedConnection, update: OrderUpdate) -> None:
        key = self._keys[conn.key_id]
        if key.first_delivery(update):
            self._emit(OrderEvent(conn.key_id, conn.index, update, time.time()))

    def _on_server_text(self, conn: FeedConnection, text: str, *, error: bool) -> None:
        if error:
            self._emit(ErrorEvent(conn.key_id, conn.index, text, time.time()))
        else:
            self._emit(StatusEvent(conn.key_id, conn.index, Status.MESSAGE, text, time.time()))

    def _on_state(self, conn: FeedConnection, message: str, gap: Gap | None = None) -> None:
        if conn.state is not ConnState.CONNECTED:
            self._health.attempt_ended(f"{conn.key_id}#{conn.index} {conn.state.value}: {message}")
        if conn.stopping and conn.state is not ConnState.CONNECTED:
            return
        # A refusal (403, 429) is not reported here: _on_refused says it once, for the key, with
        # what to do; a close is not reported at all.
        if (status := Status.of_connection(conn.state)) is None:
            return
        if gap is not None and self._merge is not None:
            gap = self._uncovered(conn.key_id, gap)
        self._emit(StatusEvent(conn.key_id, conn.index, status, message, time.time(), gap))

    def _on_refused(self, conn: FeedConnection, refusal: Refusal, status: int) -> None:
        self._execute(self._health.refused(conn.key_id, conn.index, refusal, status))

    def _on_opened(self, conn: FeedConnection) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._execute(self._health.opened(conn.key_id, conn.index))

    # Carrying out what the feed's health decides

    def _rehome(self, wanted: dict[int, SymbolSpec]) -> PlanDiff:
        return self._execute(self._health.want(wanted))

    def _execute(self, actions: Iterable[Action]) -> PlanDiff:
        """Carry out the actions of :class:`~kitefan.failover.FeedHealth`, in order; return the
        change of the last plan applied (nothing changed if none was)."""
        change = PlanDiff(changes=())
        for action in actions:
            if isinstance(action, Announce):
                if action.event.state == Status.REPLAN_FAILED:
                    log.warning(action.event.message)
                self._emit(action.event)
            elif isinstance(action, ApplyPlan):
                change = self._apply(action)
            else:
                self._streams.fail(action.error)
        return change

    def _uncovered(self, key_id: str, gap: Gap) -> Gap | None:
        """The part of a gap that another key did not stream through: its symbols that have no
        place on another key whose connection was up the whole time (``None`` if none)."""
        plan = self._health.current
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

    def _apply(self, action: ApplyPlan, *, force: bool = False) -> PlanDiff:
        """Make the connections carry ``action.plan``: subscribe, move and unsubscribe what
        ``action.change`` says (everything the plan holds, with ``force``), open the
        connections it needs and stop those left empty (but a probing or held slot)."""
        target, change = action.plan, action.change
        if self._merge is not None:
            self._merge.route(target.routes())
        if not self._running:
            return change
        touched: set[FeedConnection] = set()
        if force:
            for key_plan in target.keys:
                for slot in key_plan.connections:
                    if slot.symbols and self._holds(key_plan.key_id):
                        conn = self._connection(key_plan.key_id, slot.index)
                        conn.session.add((s.token, s.mode) for s in slot.symbols)
        # Subscribe first, so that a moved symbol is picked up before it is dropped.
        for slot_change in change.changes:
            if (slot_change.subscribe or slot_change.mode_changes) and self._holds(
                slot_change.key_id
            ):
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
            if len(conn.session) == 0 and not self._health.keeps(*slot_key):
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
        self._runs[conn] = task
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
            self._runs.pop(conn, None)
            if self._conns.get(slot) is conn:
                del self._conns[slot]

    def _arm_deadline(self) -> None:
        """Arm the connect deadline's timer if FeedHealth says so (the first connection wanted)."""
        delay = self._health.connection_wanted()
        if delay is not None:
            self._deadline = asyncio.get_running_loop().call_later(delay, self._deadline_passed)

    def _deadline_passed(self) -> None:
        if not self._running:
            return
        actions = self._health.deadline_passed()
        for action in actions:
            if isinstance(action, EndFeed):
                log.warning("%s", action.error)
        self._execute(actions)

    # Internals

    def _emit(self, event: Event) -> None:
        if isinstance(event, StatusEvent):
            log.info("%s#%s %s: %s", event.key, event.connection, event.state, event.message)
        self._streams.push_event(event)

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
        known = self._health.symbols.get(token)
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

    def _key_stats(self, key: KeyHealth, now: float) -> KeyStats:
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
            ticks_per_s=c.meter.rate(now, c.ticks),
            last_gap=c.last_gap,
            last_frame_age_s=(now - c.last_frame_at) if c.last_frame_at is not None else None,
            uptime_s=(now - c.connected_at) if connected and c.connected_at is not None else None,
            never_ticked=len(conn.session.silent) if conn is not None else 0,
            exchange_delay_p50_s=percentile_of_counts(c.delay_counts, 0.5),
            exchange_delay_p99_s=percentile_of_counts(c.delay_counts, 0.99),
            **c.counts(),
        )
