"""The simulator's server: a local Kite ticker on ``websockets``, with fault controls for tests.

:class:`Simulator` serves the Kite ticker protocol (docs/protocol.md §1, §2, §6, §7, §8, §11) on
a loopback port:

* The handshake (``process_request``, before the upgrade): the path is ``/`` (a URL with no path
  arrives as ``/``), ``api_key`` and ``access_token`` are read from the query in any order,
  URL-decoded, other parameters (``uid``) ignored. A missing or empty one gets HTTP 400, an
  unknown key or a token that is not the key's current one HTTP 403, a connection beyond
  ``max_connections_per_key`` open ones HTTP 429; another path gets 404.
* Each connection keeps its subscriptions in a sans-I/O :class:`~kitefan.simulator.feed.Feed`; its
  replies (error texts, the current packet of each token at once on subscribe and on a mode
  change) go out through the connection's send queue, in order.
* The market (:class:`~kitefan.simulator.market.Market`) is shared: a token subscribed on two
  connections has the same values on both. With a ``rate``, one task steps the subscribed tokens
  in slices spread over each ``1/rate`` seconds, so that no token moves more than ``rate`` times a
  second, and sends each connection one frame (or a few, for big ones) of the packets its modes can
  see change. With ``rate=None`` (maximum rate), each connection's sender loops over its tokens
  with the market's cheap trade path and sends frames of up to 256 KiB back to back, as fast as
  the client reads them; a precomputed list of memoryviews makes each frame one ``bytes.join``.
* A connection on which nothing was queued for ``heartbeat_interval_s`` gets a 1-byte heartbeat
  (``00``). Pings are answered by ``websockets``. The server sends no pings of its own.
* Order updates (``{"type": "order", ...}``) go to every open connection of their key (§7), on
  demand (:meth:`Simulator.push_order`) or every ``order_interval_s`` seconds.

Faults, for tests and ``kitefan simulate``: drop connections without a close frame (TCP abort,
clients see 1006), close them cleanly, go silent (no frames at all, not even heartbeats; pings are
still answered by ``websockets``, requests still read), expire a key's token (403 from then on,
open connections dropped) and accept a fresh one, delay every outgoing frame, send a malformed
frame, answer every handshake with a redirect, send a text frame that is not UTF-8. A consumer
so slow that 64 MiB pile up in its queue is dropped, as Kite drops slow consumers (§9.2), and
counted once in ``slow_consumers_dropped``.

A test can also send any text frame, well-formed or hostile (:meth:`Simulator.send_text`).

With ``replay=`` (a :class:`~kitefan.simulator.recorded.Replay`), the packets come from a
recording instead of the market: each connection gets a :class:`~kitefan.simulator.recorded.Viewer`,
requests are answered from it (:meth:`Simulator._receive_replayed`), and one task paces the
recording's instants (:meth:`Simulator._run_replay`) onto the connections' send queues. With
``any_credentials=True`` every api key and access token is accepted, each key keeping its
connection limit (``kitefan replay`` without ``--config``).

The decisions are the pure modules'; this module is their driver, doing the I/O they answer
with: :func:`~kitefan.simulator.admission.admit` (who is let in),
:class:`~kitefan.simulator.outbox.Outbox` (per connection: what is queued, when each frame is
due, the heartbeats, the 64 MiB bound and the counts), :mod:`~kitefan.simulator.pacing` (when
each slice of the market steps, when each recorded instant goes) and
:mod:`~kitefan.simulator.faults` (when each fault of a plan fires; who is silent, the delay, the
redirect, which connection loses a packet under ``drop_packets``).

Inspection: counters, per-connection views, and :meth:`Simulator.wait_until`, woken by every
state change (no polling).

Api keys and access tokens never appear in logs, exceptions or reprs: keys are named by their
label (the config id) or masked.

Owns: :class:`Simulator`, :class:`Account`, :class:`ConnectionView`, :class:`Counters`. The only
simulator module that imports asyncio and websockets. Must not import the manager, connection,
cli, rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from kitefan.codec import order_message
from kitefan.loader import load_instruments
from kitefan.models import Mode
from kitefan.settings import mask
from kitefan.simulator.admission import Refuse, admit
from kitefan.simulator.faults import (
    CloseConnections,
    DropConnections,
    ExpireToken,
    FaultAction,
    FaultPlan,
    FaultSchedule,
    FaultState,
    SendMalformed,
    SetSilent,
)
from kitefan.simulator.feed import Feed, RequestCounts
from kitefan.simulator.market import (
    MAX_FRAME_BYTES,
    MAX_FRAME_PACKETS,
    Change,
    InstrumentSeed,
    Market,
    assemble_frames,
    visible,
)
from kitefan.simulator.orders import order_postback
from kitefan.simulator.outbox import (
    REFUSED,
    SHED,
    Idle,
    Kind,
    Lose,
    Outbox,
    Outgoing,
    Send,
    Sent,
    Stream,
)
from kitefan.simulator.pacing import (
    MarketSchedule,
    ReplaySchedule,
    TokenSlices,
    lead_in_wait,
    slice_count,
)
from kitefan.simulator.recorded import Replay, Viewer

if TYPE_CHECKING:
    from kitefan.settings import AppConfig

__all__ = [
    "INVALID_UTF8_TEXT",
    "MALFORMED_FRAME",
    "Account",
    "ConnectionView",
    "Counters",
    "Simulator",
]

log = logging.getLogger("kitefan.simulator")

#: A frame that announces two packets but is cut inside the second: ``decode_frame`` raises on it.
MALFORMED_FRAME = (
    b"\x00\x02" + b"\x00\x08" + struct.pack(">II", 256265, 1967545) + b"\x00\xb8" + b"\x00\x01\x02"
)

#: The payload of the text frame of :meth:`Simulator.send_invalid_utf8` (``0xff`` is never UTF-8).
INVALID_UTF8_TEXT = b'{"type": "message", "data": "\xff"}'


@dataclass(frozen=True, slots=True)
class Account:
    """An api key the simulator accepts, with its access token.

    Attributes:
        api_key: the Kite api key (never shown).
        access_token: the token accepted for it until changed or expired (never shown).
        label: what to call the key in logs (the config id); defaults to the masked api key.
    """

    api_key: str = field(repr=False)
    access_token: str = field(repr=False)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.api_key or not self.access_token:
            raise ValueError("an account needs a non-empty api key and access token")


@dataclass(slots=True)
class Counters(Sent):
    """What the simulator did, in total. Per-connection figures are on :class:`ConnectionView`.

    Attributes:
        connections_opened: WebSocket connections accepted.
        connections_closed: connections gone (closed cleanly, dropped or lost).
        frames_sent: binary frames carrying ticks (subscribe snapshots included).
        ticks_sent: packets in those frames.
        heartbeats_sent: 1-byte heartbeats.
        texts_sent: text frames (error texts and order updates).
        orders_sent: order updates (one per connection they went to).
        malformed_sent: malformed frames sent on purpose.
        bytes_sent: payload bytes of every frame above (the counts of
            :class:`~kitefan.simulator.outbox.Sent`, summed over the connections).
        slow_consumers_dropped: connections dropped because their queue grew past 64 MiB.
        refusals: handshakes refused, by HTTP status (400, 403, 404, 429; a 3xx of
            :meth:`Simulator.set_redirect`).
        close_codes: connections gone, by the close code the client sent (1006: none, the
            connection was dropped or lost).
    """

    connections_opened: int = 0
    connections_closed: int = 0
    slow_consumers_dropped: int = 0
    refusals: dict[int, int] = field(default_factory=dict)
    close_codes: dict[int, int] = field(default_factory=dict)

    def copy(self) -> Counters:
        """A snapshot, to compare with later values."""
        return replace(self, refusals=dict(self.refusals), close_codes=dict(self.close_codes))


_Chunk = tuple[list[Callable[[int], Change]], list[bytes | memoryview], int]


class _Key:
    __slots__ = ("account", "conns", "holders", "label", "peak", "token")

    def __init__(self, account: Account) -> None:
        self.account = account
        self.label = account.label or mask(account.api_key)
        self.token: str | None = account.access_token
        # Connections holding one of the key's slots: open ones and those in their handshake.
        self.holders: set[ServerConnection] = set()
        self.conns: dict[int, _Connection] = {}
        # The most slots held at once (handshakes included).
        self.peak = 0


class _Connection:
    __slots__ = ("closed", "feed", "id", "key", "opened_at", "outbox", "plan", "view", "wake", "ws")

    def __init__(
        self, id_: int, ws: ServerConnection, key: _Key, feed: Feed, outbox: Outbox
    ) -> None:
        loop = asyncio.get_running_loop()
        self.id = id_
        self.ws = ws
        self.key = key
        self.feed = feed
        self.outbox = outbox
        self.opened_at = time.time()
        self.wake = asyncio.Event()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.plan: list[_Chunk] | None = None
        self.view: Viewer | None = None


class ConnectionView:
    """A read-only view of one open (or just closed) connection, for tests and the demo."""

    __slots__ = ("_conn",)

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    def __repr__(self) -> str:
        c = self._conn
        return (
            f"ConnectionView(id={c.id}, key={c.key.label!r}, "
            f"subscriptions={len(c.feed.subscriptions)}, open={self.open})"
        )

    @property
    def id(self) -> int:
        """A number unique within the simulator, in order of opening."""
        return self._conn.id

    @property
    def api_key(self) -> str:
        """The api key the connection authenticated with."""
        return self._conn.key.account.api_key

    @property
    def label(self) -> str:
        """The key's label (config id, or masked api key)."""
        return self._conn.key.label

    @property
    def opened_at(self) -> float:
        """When the connection opened (Unix seconds)."""
        return self._conn.opened_at

    @property
    def open(self) -> bool:
        """Whether the connection is still open."""
        return not self._conn.closed.done()

    @property
    def subscriptions(self) -> dict[int, Mode]:
        """A copy of token -> mode for every subscribed token."""
        return dict(self._conn.feed.subscriptions)

    @property
    def tokens_used(self) -> int:
        """Tokens counted against the per-connection limit (duplicates counted)."""
        return self._conn.feed.tokens_used

    @property
    def requests(self) -> RequestCounts:
        """The connection's request counts (live)."""
        return self._conn.feed.requests

    @property
    def ticks_sent(self) -> int:
        """Packets sent on this connection."""
        return self._conn.outbox.sent.ticks_sent

    @property
    def frames_sent(self) -> int:
        """Binary tick frames sent on this connection."""
        return self._conn.outbox.sent.frames_sent

    @property
    def heartbeats_sent(self) -> int:
        """Heartbeats sent on this connection."""
        return self._conn.outbox.sent.heartbeats_sent

    @property
    def texts_sent(self) -> int:
        """Text frames (errors, order updates) sent on this connection."""
        return self._conn.outbox.sent.texts_sent

    @property
    def orders_sent(self) -> int:
        """Order updates sent on this connection."""
        return self._conn.outbox.sent.orders_sent


def _read_seeds(path: Path) -> dict[int, InstrumentSeed]:
    return {
        row.instrument_token: InstrumentSeed(row.last_price, row.tick_size, row.lot_size)
        for row in load_instruments(path)
    }


class Simulator:
    """A local Kite ticker: ``async with Simulator([Account(key, token)]) as sim: sim.url``.

    Args:
        accounts: the api keys accepted, each with its access token.
        host: the address to bind (loopback by default).
        port: the port to bind; 0 picks a free one (see :attr:`url`).
        seed: the seed of the market's walks.
        rate: at most this many packets per instrument per second; ``None`` for the maximum rate.
        instruments: an instruments dump whose ``last_price``, ``tick_size`` and ``lot_size``
            seed the instruments it lists.
        max_connections_per_key: open connections allowed per api key (Kite: 3); more get 429.
        max_tokens_per_connection: tokens per connection, duplicates counted (Kite: 3000).
        heartbeat_interval_s: idle time after which a heartbeat is sent.
        implicit_subscribe_on_mode: whether ``mode`` on a token not subscribed subscribes it.
        order_interval_s: push an order update to every connected key this often (``None``: only
            on :meth:`push_order`).
        replay: serve this recording instead of the market (``rate``, ``seed`` and
            ``instruments`` then play no part); see :meth:`_run_replay`.
        any_credentials: accept every api key and access token (each api key still has its
            connection limit); ``accounts`` may then be empty.

    Raises:
        ValueError: an argument is out of range, or two accounts share an api key.
        InstrumentsError: the instruments dump cannot be read.
    """

    def __init__(
        self,
        accounts: Sequence[Account],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        rate: float | None = 1.0,
        instruments: Path | None = None,
        max_connections_per_key: int = 3,
        max_tokens_per_connection: int = 3000,
        heartbeat_interval_s: float = 1.0,
        implicit_subscribe_on_mode: bool = True,
        order_interval_s: float | None = None,
        replay: Replay | None = None,
        any_credentials: bool = False,
    ) -> None:
        if not accounts and not any_credentials:
            raise ValueError("a simulator needs at least one account")
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be more than 0 (or None for the maximum), not {rate}")
        if not (math.isfinite(heartbeat_interval_s) and heartbeat_interval_s > 0):
            raise ValueError("heartbeat_interval_s must be more than 0")
        if max_connections_per_key < 1 or max_tokens_per_connection < 1:
            raise ValueError("the connection and token limits must be at least 1")
        if order_interval_s is not None and not order_interval_s > 0:
            raise ValueError("order_interval_s must be more than 0")
        self._keys: dict[str, _Key] = {}
        self._labels: dict[str, _Key] = {}
        for index, account in enumerate(accounts):
            if account.api_key in self._keys:
                raise ValueError(f"accounts[{index}] has the api key of an earlier account")
            key = _Key(account)
            self._keys[account.api_key] = key
            self._labels.setdefault(key.label, key)
        self._host = host
        self._port = port
        self._rate = rate
        self._max_connections = max_connections_per_key
        self._max_tokens = max_tokens_per_connection
        self._heartbeat_s = heartbeat_interval_s
        self._implicit = implicit_subscribe_on_mode
        self._order_interval_s = order_interval_s
        self._replay = replay
        self._any_credentials = any_credentials
        self._subscribed = asyncio.Event()
        self._last_request = 0.0
        #: Whether the replay has sent its last instant (and every queue has drained since).
        self.replay_finished = False
        #: The shared market (read it in tests; the server moves it).
        self.market = Market(seed, _read_seeds(instruments) if instruments is not None else None)
        #: What the simulator did, in total (live).
        self.counters = Counters()
        #: Requests received on every connection, in total (live).
        self.requests = RequestCounts()
        self._conns: dict[int, _Connection] = {}
        self._watchers: dict[int, set[_Connection]] = {}
        # The market's tokens in slices, stepped in turn at a rate (pacing.MarketSchedule).
        self._slices = TokenSlices(slice_count(rate))
        self._pending: dict[ServerConnection, _Key] = {}
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        # Silence, delay, redirect and one-sided loss, by key (faults.FaultState).
        self._faults: FaultState[_Key] = FaultState()
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_id = 0
        self._order_sequence = 0
        self._address: tuple[str, int] | None = None

    @classmethod
    def from_config(cls, config: AppConfig, **options: Any) -> Simulator:
        """A simulator accepting every ``[[keys]]`` of ``config`` (each labelled by its id in the
        log), seeded by the config's instruments dump when it exists.

        ``options`` are the constructor's (``port=0``, ``seed``, ``rate``, ...); an explicit
        ``instruments`` wins over the config's. Not started: ``async with
        Simulator.from_config(config) as sim:`` starts it, and
        ``dataclasses.replace(config, url=sim.url)`` is the config a feed streams it with.

        Raises:
            ValueError: the config has no keys, two keys share an api key, or an option is out
                of range.
            InstrumentsError: the instruments dump cannot be read.
        """
        if not config.keys:
            raise ValueError("the config has no [[keys]]: the simulator needs at least one")
        accounts = [
            Account(key.credential.api_key, key.credential.access_token, label=key.id)
            for key in config.keys
        ]
        dump = config.instruments
        if "instruments" not in options and dump is not None and dump.is_file():
            options["instruments"] = dump
        return cls(accounts, **options)

    # Life cycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind and start serving (``async with`` does this).

        Raises:
            OSError: the address cannot be bound (port in use, unknown host).
        """
        if self._server is not None:
            raise RuntimeError("the simulator is already started")
        self._server = await serve(
            self._handle,
            self._host,
            self._port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            close_timeout=2.0,
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self._address = (host, port)
        if self._replay is not None:
            self._spawn(self._run_replay(self._replay), "replay")
        elif self._rate is not None:
            self._spawn(self._run_market(self._rate), "market")
        if self._order_interval_s is not None:
            self._spawn(self._run_orders(self._order_interval_s), "orders")
        log.info("listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection (code 1001, going away) and stop serving."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        server = self._server
        if server is not None:
            server.close()
            await server.wait_closed()

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` of the running server (the bound port when started on port 0)."""
        if self._address is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._address
        return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"

    @property
    def port(self) -> int:
        """The bound port."""
        if self._address is None:
            raise RuntimeError("the simulator is not started")
        return self._address[1]

    @property
    def accounts(self) -> tuple[Account, ...]:
        """The accounts given at construction."""
        return tuple(key.account for key in self._keys.values())

    # Inspection ---------------------------------------------------------------------------

    def refusals(self) -> dict[int, int]:
        """Handshakes refused so far, by HTTP status (a copy of ``counters.refusals``)."""
        return dict(self.counters.refusals)

    def close_codes(self) -> dict[int, int]:
        """Connections gone so far, by the close code the client sent (1006 for none)."""
        return dict(self.counters.close_codes)

    def peak_connections(self, api_key: str) -> int:
        """The most connections of this key open at once so far, handshakes included (what
        shows whether two clients ever held one key's connections together).

        Raises:
            KeyError: no account has this api key.
        """
        return self._key(api_key).peak

    def connections(self, api_key: str | None = None) -> list[ConnectionView]:
        """The open connections, of one key or of all, oldest first.

        Raises:
            KeyError: no account has this api key.
        """
        return [ConnectionView(conn) for conn in self._select(api_key)]

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` is true; it is checked now and after every state change.

        State changes are connections opening and closing, refusals, requests, frames sent and
        fault switches. Bound the wait with ``asyncio.timeout``.

        Raises:
            Exception: whatever ``predicate`` raises.
        """
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await future
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    async def wait_for_connections(
        self, n: int, api_key: str | None = None
    ) -> list[ConnectionView]:
        """Wait until exactly ``n`` connections (of one key, or in all) are open; return them."""
        self._select(api_key)  # an unknown key raises now, not at the first check
        await self.wait_until(lambda: len(self._select(api_key)) == n)
        return self.connections(api_key)

    async def wait_for_subscriptions(self, n_tokens: int, api_key: str | None = None) -> None:
        """Wait until the open connections (of one key, or all) subscribe exactly ``n_tokens``
        tokens between them (each connection's distinct tokens, summed)."""
        self._select(api_key)

        def reached() -> bool:
            return sum(len(c.feed.subscriptions) for c in self._select(api_key)) == n_tokens

        await self.wait_until(reached)

    # Faults -------------------------------------------------------------------------------

    async def drop_connections(self, api_key: str | None = None) -> int:
        """Abort the TCP connections (no close frame: clients see 1006); return how many.

        Raises:
            KeyError: no account has this api key.
        """
        conns = self._select(api_key)
        for conn in conns:
            conn.ws.transport.abort()
        await self._gone(conns)
        if conns:
            log.info("fault: dropped %d connection(s) without a close frame", len(conns))
        return len(conns)

    async def close_connections(
        self, code: int = 1000, reason: str = "", api_key: str | None = None
    ) -> int:
        """Close connections cleanly with a close frame; return how many.

        Raises:
            KeyError: no account has this api key.
        """
        conns = self._select(api_key)
        await asyncio.gather(*(conn.ws.close(code, reason) for conn in conns))
        await self._gone(conns)
        if conns:
            log.info("fault: closed %d connection(s) with code %d", len(conns), code)
        return len(conns)

    def set_silent(self, silent: bool, api_key: str | None = None) -> None:
        """Stop (or resume) sending anything at all, heartbeats included, on open and new
        connections of one key, or of all. Requests are still read and acted on.

        ``set_silent(False)`` with no key lifts every silence, per-key ones included.

        Raises:
            KeyError: no account has this api key.
        """
        self._faults.set_silent(silent, None if api_key is None else self._key(api_key))
        log.info("fault: %s %s", "silent" if silent else "speaking again", self._who(api_key))
        for conn in self._conns.values():
            conn.wake.set()
        self._notify()

    async def expire_token(self, api_key: str, *, drop: bool = True) -> None:
        """Stop accepting the key's current token (new handshakes with it get 403); with
        ``drop``, also drop its open connections without a close frame.

        Raises:
            KeyError: no account has this api key.
        """
        key = self._key(api_key)
        key.token = None
        log.info("fault: the access token of key %s expired", key.label)
        self._notify()
        if drop:
            await self.drop_connections(api_key)

    def set_token(self, api_key: str, access_token: str) -> None:
        """Accept ``access_token`` (and no other) for the key from now on.

        Raises:
            KeyError: no account has this api key.
            ValueError: the token is empty.
        """
        if not access_token:
            raise ValueError("an access token cannot be empty")
        key = self._key(api_key)
        key.token = access_token
        log.info("key %s has a fresh access token", key.label)
        self._notify()

    def set_redirect(self, status: int | None, location: str | None = None) -> None:
        """Answer every handshake from now on with HTTP ``status`` (a 3xx) and a ``Location``
        header of ``location`` (none if ``None``), as a misconfigured proxy might;
        ``set_redirect(None)`` serves again. Open connections are left alone.

        Raises:
            ValueError: ``status`` is not a 3xx HTTP status, or ``location`` has a line break.
        """
        self._faults.set_redirect(status, location)
        if status is None:
            log.info("fault: handshakes served again")
        else:
            log.info("fault: handshakes answered with %d", status)

    def set_delay(self, seconds: float) -> None:
        """Delay every outgoing frame (heartbeats included) by ``seconds`` from now on.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        self._faults.set_delay(seconds)
        log.info("fault: frames delayed by %gms", seconds * 1000)

    def drop_packets(self, api_key: str, every: int) -> None:
        """Lose one key's copies only: from now on, of the packets a step sends both to a
        connection of this key and to a connection of another key, every ``every``-th is not
        sent to this key (the other keys still get it), so one-sided ticks exist. 0 stops.

        Raises:
            KeyError: no account has this api key.
            ValueError: ``every`` is negative.
        """
        self._faults.drop_packets(self._key(api_key), every)
        log.info("fault: %s, 1 in %d shared packets lost", self._who(api_key), every)

    def packets_dropped(self, api_key: str) -> int:
        """How many packets :meth:`drop_packets` kept from this key's connections.

        Raises:
            KeyError: no account has this api key.
        """
        return self._faults.packets_dropped(self._key(api_key))

    async def send_invalid_utf8(self, api_key: str | None = None) -> int:
        """Send a text frame whose payload, :data:`INVALID_UTF8_TEXT`, is not UTF-8 on every
        connection (of one key, or of all), at once, ahead of any queued frame; return on how
        many it was sent (silent connections send nothing). A client must close with 1007.
        The frame is not in the frame and text counters.

        Raises:
            KeyError: no account has this api key.
        """
        silent = self._faults.silent
        conns = [conn for conn in self._select(api_key) if not silent(conn.key)]
        for conn in conns:
            with contextlib.suppress(ConnectionClosed):
                # websockets checks the text of a str; bytes sent as text go out as they are.
                await conn.ws.send(INVALID_UTF8_TEXT, text=True)
        log.info("fault: text frame of invalid UTF-8 sent on %d connection(s)", len(conns))
        return len(conns)

    async def send_malformed(self, api_key: str | None = None) -> int:
        """Send :data:`MALFORMED_FRAME` on every connection (of one key, or of all); return on
        how many it was sent (silent connections send nothing).

        Raises:
            KeyError: no account has this api key.
        """
        sent = await self._broadcast(self._select(api_key), MALFORMED_FRAME, Kind.MALFORMED)
        log.info("fault: malformed frame sent on %d connection(s)", sent)
        return sent

    async def send_text(self, text: str, api_key: str | None = None) -> int:
        """Send ``text`` as a text frame, as is, on every open connection (of one key, or of
        all); return on how many it was sent (silent connections send nothing).

        Counted in ``texts_sent``. For texts a client must survive: JSON it does not expect,
        JSON nested too deeply, control characters, anything.

        Raises:
            KeyError: no account has this api key.
        """
        sent = await self._broadcast(self._select(api_key), text, Kind.TEXT)
        log.info("fault: a text of %d characters sent on %d connection(s)", len(text), sent)
        return sent

    async def push_order(
        self, api_key: str, data: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send an order update to every open connection of the key, as Kite does.

        Args:
            api_key: whose order it is.
            data: the postback; by default a filled order with a fresh ``order_id``.

        Returns:
            The data sent.

        Raises:
            KeyError: no account has this api key.
        """
        key = self._key(api_key)
        if data is None:
            self._order_sequence += 1
            data = order_postback(self._order_sequence, time.time())
        payload = dict(data)
        sent = await self._broadcast(list(key.conns.values()), order_message(payload), Kind.ORDER)
        log.info(
            "order %s sent to %d connection(s) of key %s", payload.get("order_id"), sent, key.label
        )
        return payload

    async def run_faults(self, plan: FaultPlan) -> None:
        """Carry out a fault plan (times from now) until cancelled.

        Raises:
            ValueError: the plan names a key label no account has.
        """
        for label, _ in plan.expire_after:
            if label not in self._labels:
                raise ValueError(f"no key is called {label!r}")
        losses = []
        for label, every in plan.drop_packets:
            key = self._labels.get(label)
            if key is None:
                raise ValueError(f"no key is called {label!r}")
            losses.append((key, every))
        for key, every in losses:
            self.drop_packets(key.account.api_key, every)
        if plan.delay_s:
            self.set_delay(plan.delay_s)
        # When each fault fires is faults.FaultSchedule's; each runs as a task of its own, so a
        # close waiting for its handshakes holds no other fault up.
        loop = asyncio.get_running_loop()
        schedule = FaultSchedule(plan, loop.time())
        async with asyncio.TaskGroup() as group:
            while (wait := schedule.wait(loop.time())) is not None:
                if wait > 0:
                    await asyncio.sleep(wait)
                for action in schedule.fire(loop.time()):
                    group.create_task(self._carry_out(action))

    async def _carry_out(self, action: FaultAction) -> None:
        match action:
            case DropConnections():
                await self.drop_connections()
            case CloseConnections(code):
                await self.close_connections(code)
            case SendMalformed():
                await self.send_malformed()
            case SetSilent(silent):
                self.set_silent(silent)
            case ExpireToken(label):
                await self.expire_token(self._labels[label].account.api_key, drop=True)

    # Handshake ----------------------------------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        # The rules are admission.admit's (pure); this counts, logs and answers what it decides.
        decision = admit(
            request.path,
            tokens={api_key: key.token for api_key, key in self._keys.items()},
            open_slots=self._open_slots,
            max_connections=self._max_connections,
            any_credentials=self._any_credentials,
            redirect=self._faults.redirect,
        )
        if isinstance(decision, Refuse):
            about = self._keys.get(decision.api_key) if decision.api_key is not None else None
            response = self._refuse(ws, decision.status, decision.why, about)
            if decision.location is not None:
                response.headers["Location"] = decision.location
            return response
        if decision.new:
            self._keys[decision.api_key] = _Key(Account(decision.api_key, decision.access_token))
        key = self._keys[decision.api_key]
        key.holders.add(ws)
        key.peak = max(key.peak, len(key.holders))
        self._pending[ws] = key
        return None

    def _open_slots(self, api_key: str) -> int:
        """How many slots the key holds: its open connections and those in their handshake
        (those closed meanwhile are let go here)."""
        key = self._keys[api_key]
        live = {holder for holder in key.holders if holder.state is not State.CLOSED}
        for gone in key.holders - live:
            self._pending.pop(gone, None)
        key.holders = live
        return len(live)

    def _refuse(
        self, ws: ServerConnection, status: HTTPStatus, why: str, key: _Key | None
    ) -> Response:
        refusals = self.counters.refusals
        refusals[status.value] = refusals.get(status.value, 0) + 1
        who = f"key {key.label}" if key is not None else "a client"
        log.info("refused %s with %d %s: %s", who, status.value, status.phrase, why)
        self._notify()
        return ws.respond(status, f"{status.value} {status.phrase}: {why}\n")

    # Connections --------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        key = self._pending.pop(ws, None)
        if key is None:  # never: _process_request registers every accepted handshake
            return
        self._next_id += 1
        feed = Feed(
            max_tokens=self._max_tokens,
            implicit_subscribe_on_mode=self._implicit,
            totals=(self.requests,),
        )
        outbox = Outbox(
            asyncio.get_running_loop().time(),
            heartbeat_s=self._heartbeat_s,
            totals=(self.counters,),
        )
        conn = _Connection(self._next_id, ws, key, feed, outbox)
        if self._replay is not None:
            conn.view = self._replay.viewer(feed.subscriptions)
        self._conns[conn.id] = conn
        key.conns[conn.id] = conn
        self.counters.connections_opened += 1
        peer = ws.remote_address
        log.info("connection %d opened: key %s from %s:%s", conn.id, key.label, *peer[:2])
        self._notify()
        sender = asyncio.create_task(self._send_loop(conn), name=f"simulator-send-{conn.id}")
        try:
            async for message in ws:
                self._receive(conn, message)
        except ConnectionClosed:
            pass
        finally:
            self._forget(conn)
            sender.cancel()
            await asyncio.wait([sender])
            if not sender.cancelled() and sender.exception() is not None:
                log.error("connection %d: sender failed", conn.id, exc_info=sender.exception())

    def _forget(self, conn: _Connection) -> None:
        self._conns.pop(conn.id, None)
        conn.key.conns.pop(conn.id, None)
        conn.key.holders.discard(conn.ws)
        for token in conn.feed.drop_all():
            self._unwatch(token, conn)
        for item in conn.outbox.close():
            _resolve(item)
        if not conn.closed.done():
            conn.closed.set_result(None)
        self.counters.connections_closed += 1
        code = conn.ws.close_code or 1006
        codes = self.counters.close_codes
        codes[code] = codes.get(code, 0) + 1
        if code == 1006:
            log.info("connection %d closed without a close frame (1006)", conn.id)
        else:
            log.info("connection %d closed (%d)", conn.id, code)
        self._notify()

    def _receive(self, conn: _Connection, message: str | bytes) -> None:
        reply = conn.feed.receive(message)
        if conn.view is not None:
            self._receive_replayed(conn, conn.view, reply.texts, reply.snapshot, reply.removed)
            return
        now = int(time.time())
        for token in reply.added:
            self._watch(token, conn, now)
        for token in reply.removed:
            self._unwatch(token, conn)
        if reply.added or reply.removed or reply.snapshot:
            conn.plan = None
        for text in reply.texts:
            self._enqueue(conn, text, Kind.TEXT)
        if reply.snapshot:
            subscriptions = conn.feed.subscriptions
            instrument = self.market.instrument
            parts = [instrument(t, now).parts[subscriptions[t]] for t in reply.snapshot]
            for frame, count in assemble_frames(parts):
                self._enqueue(conn, frame, Kind.TICKS, count)
        self._notify()

    def _receive_replayed(
        self,
        conn: _Connection,
        view: Viewer,
        texts: Sequence[str],
        snapshot: Sequence[int],
        removed: Sequence[int],
    ) -> None:
        lacking, frames = view.request(snapshot, removed)
        for text in (*texts, *lacking):
            self._enqueue(conn, text, Kind.TEXT)
        for frame, count in frames:
            self._enqueue(conn, frame, Kind.TICKS, count)
        self._last_request = asyncio.get_running_loop().time()
        if conn.feed.subscriptions:
            self._subscribed.set()
        self._notify()

    def _watch(self, token: int, conn: _Connection, now_s: int) -> None:
        self.market.instrument(token, now_s)
        watchers = self._watchers.get(token)
        if watchers is None:
            watchers = self._watchers[token] = set()
            self._slices.add(token)
        watchers.add(conn)

    def _unwatch(self, token: int, conn: _Connection) -> None:
        watchers = self._watchers.get(token)
        if watchers is None:
            return
        watchers.discard(conn)
        if not watchers:
            del self._watchers[token]
            self._slices.discard(token)

    # Sending ------------------------------------------------------------------------------
    # What is queued, when it is due and when a client is too slow is each connection's
    # outbox.Outbox; the loops below carry out its steps on the socket.

    def _silent(self, conn: _Connection) -> bool:
        return self._faults.silent(conn.key)

    def _enqueue(
        self,
        conn: _Connection,
        payload: bytes | str,
        kind: Kind,
        ticks: int = 0,
        done: asyncio.Future[None] | None = None,
    ) -> bool:
        if conn.closed.done() or self._faults.silent(conn.key):
            return False
        outbox = conn.outbox
        now = asyncio.get_running_loop().time()
        put = outbox.put(now, payload, kind, ticks, delay_s=self._faults.delay_s, done=done)
        if put is SHED:
            log.warning(
                "connection %d: slow consumer, dropped with %d bytes queued",
                conn.id,
                outbox.queued_bytes,
            )
            self.counters.slow_consumers_dropped += 1
            conn.ws.transport.abort()
        elif put is REFUSED:
            return False
        conn.wake.set()
        return True

    async def _broadcast(self, conns: list[_Connection], payload: bytes | str, kind: Kind) -> int:
        loop = asyncio.get_running_loop()
        waiting = []
        for conn in conns:
            done: asyncio.Future[None] = loop.create_future()
            if self._enqueue(conn, payload, kind, done=done):
                waiting.append(done)
        if waiting:
            await asyncio.wait(waiting)
        return len(waiting)

    async def _send_loop(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        ws = conn.ws
        outbox = conn.outbox
        faults = self._faults
        streams = self._rate is None and conn.view is None
        try:
            while True:
                step = outbox.next(
                    loop.time(),
                    silent=faults.silent(conn.key),
                    stream=streams and bool(conn.feed.subscriptions),
                    delay_s=faults.delay_s,
                )
                if isinstance(step, Send):
                    item = step.item
                    try:
                        # Counted as handed to the socket: send() writes before it can yield.
                        outbox.sent_item(item)
                        self._notify()
                        await ws.send(item.payload)
                    finally:
                        _resolve(item)
                elif isinstance(step, Lose):
                    _resolve(step.item)
                elif isinstance(step, Stream):
                    await self._max_rate_pass(conn)
                elif isinstance(step, Idle):
                    conn.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(step.seconds):
                            await conn.wake.wait()
                else:
                    await asyncio.sleep(step.seconds)
        except ConnectionClosed:
            return

    def _plan(self, conn: _Connection) -> list[_Chunk]:
        """The connection's frames at maximum rate: each chunk's trade functions and frame parts."""
        chunks: list[_Chunk] = []
        trades: list[Callable[[int], Change]] = []
        parts: list[bytes | memoryview] = [b""]
        size = 2
        get = self.market.get
        for token, mode in conn.feed.subscriptions.items():
            instrument = get(token)
            if instrument is None:  # never: _watch creates every subscribed instrument
                continue
            prefix, packet = instrument.parts[mode]
            length = 2 + len(packet)
            if trades and (size + length > MAX_FRAME_BYTES or len(trades) >= MAX_FRAME_PACKETS):
                parts[0] = len(trades).to_bytes(2, "big")
                chunks.append((trades, parts, len(trades)))
                trades, parts, size = [], [b""], 2
            trades.append(instrument.trade)
            parts.append(prefix)
            parts.append(packet)
            size += length
        if trades:
            parts[0] = len(trades).to_bytes(2, "big")
            chunks.append((trades, parts, len(trades)))
        return chunks

    async def _max_rate_pass(self, conn: _Connection) -> None:
        plan = conn.plan
        if plan is None:
            plan = conn.plan = self._plan(conn)
        ws = conn.ws
        loop = asyncio.get_running_loop()
        outbox = conn.outbox
        queue = outbox.queue
        faults = self._faults
        key = conn.key
        for trades, parts, count in plan:
            if faults.delay_s:
                await asyncio.sleep(faults.delay_s)
            if conn.plan is not plan or queue or faults.silent(key):
                return
            now = int(time.time())
            for trade in trades:
                trade(now)
            frame = b"".join(parts)
            outbox.streamed(loop.time(), count, len(frame))
            self._notify()
            await ws.send(frame)
            await asyncio.sleep(0)  # let requests and other connections in between frames

    # Background tasks ---------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(f"simulator-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def _run_market(self, rate: float) -> None:
        # When each slice steps is pacing.MarketSchedule's (late steps go at once, no burst).
        loop = asyncio.get_running_loop()
        slices = self._slices
        schedule = MarketSchedule(rate, len(slices), loop.time())
        while True:
            index, wait = schedule.due(loop.time())
            await asyncio.sleep(wait)
            schedule.ran(loop.time())
            self._step_slice(slices[index])

    def _step_slice(self, tokens: set[int]) -> None:
        if not tokens:
            return
        now = int(time.time())
        get = self.market.get
        watchers = self._watchers
        faults = self._faults
        frames: dict[_Connection, list[tuple[bytes, memoryview]]] = {}
        for token in tokens:
            instrument = get(token)
            if instrument is None:
                continue
            change = instrument.step(now)
            if not change:
                continue
            getting = []
            for conn in watchers[token]:
                mode = conn.feed.subscriptions.get(token)
                if mode is not None and visible(change, mode):
                    getting.append(conn)
                    frames.setdefault(conn, []).append(instrument.parts[mode])
            if faults.dropping and len(getting) > 1:
                # faults.FaultState.lose picks who loses this packet; it was just added last.
                for lost in faults.lose([c.key for c in getting]):
                    conn = getting[lost]
                    parts = frames[conn]
                    parts.pop()
                    if not parts:
                        del frames[conn]
        silent = faults.silent
        for conn, parts in frames.items():
            if silent(conn.key):
                continue
            for frame, count in assemble_frames(parts):
                self._enqueue(conn, frame, Kind.TICKS, count)

    async def _run_replay(self, replay: Replay) -> None:
        """Send the recording's instants to every connection, at its pace (or as fast as read).

        The replay starts once the first subscription is followed by a quarter of a second
        without requests (at most 2 s after it), so that the ``mode`` requests a client sends
        right after its ``subscribe`` take effect before the first instant. At a speed, instant
        ``i`` is due ``(t_i - t_0) / speed`` after the start (late ones go at once, without a
        burst to catch up: the schedule is kept, not the gaps); at maximum speed, the next
        instant waits until every connection's queue is under 1 MiB. With ``loop``, the first
        instant follows the last at once. The times are :mod:`kitefan.simulator.pacing`'s
        (``lead_in_wait``, ``ReplaySchedule``); this sleeps them and enqueues the frames.
        """
        loop = asyncio.get_running_loop()
        await self._subscribed.wait()
        first = loop.time()
        while True:
            wait = lead_in_wait(first, self._last_request, loop.time())
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        conns = self._conns
        schedule = ReplaySchedule(replay.speed)

        def backlog() -> int:
            return max((c.outbox.queued_bytes for c in conns.values()), default=0)

        def drained() -> bool:
            return schedule.drained(backlog())

        while True:
            log.info("replay: pass %d begins", replay.passes + 1)
            schedule.begin(loop.time())
            begun = replay.position
            for instant in replay.instants():
                due = schedule.wait(instant.time_ns, loop.time(), backlog)
                if due is None:
                    await self.wait_until(drained)
                elif due > 0:
                    await asyncio.sleep(due)
                elif replay.speed is None:
                    await asyncio.sleep(0)  # let the clients read between instants
                replay.advance(instant)
                for conn in list(conns.values()):
                    view = conn.view
                    if view is None or self._silent(conn):
                        continue
                    for frame, count in view.frames(instant):
                        self._enqueue(conn, frame, Kind.TICKS, count)
            if not replay.loop or replay.position == begun:
                break
        await self.wait_until(lambda: all(not c.outbox.queue for c in conns.values()))
        self.replay_finished = True
        log.info(
            "replay finished: %d instant(s) of %d recorded ticks, in %d pass(es)",
            replay.position,
            replay.ticks,
            replay.passes,
        )
        self._notify()

    async def _run_orders(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            for api_key, key in list(self._keys.items()):
                if key.conns:
                    await self.push_order(api_key)

    # Private ------------------------------------------------------------------------------

    def _key(self, api_key: str) -> _Key:
        key = self._keys.get(api_key)
        if key is None:
            raise KeyError("no account of this simulator has that api key")
        return key

    def _who(self, api_key: str | None) -> str:
        return "on every key" if api_key is None else f"on key {self._key(api_key).label}"

    def _select(self, api_key: str | None) -> list[_Connection]:
        if api_key is None:
            return list(self._conns.values())
        return list(self._key(api_key).conns.values())

    async def _gone(self, conns: list[_Connection]) -> None:
        if conns:
            await asyncio.wait([conn.closed for conn in conns])

    def _notify(self) -> None:
        if not self._waiters:
            return
        waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            try:
                reached = predicate()
            except Exception as exc:
                future.set_exception(exc)
                continue
            if reached:
                future.set_result(None)
            else:
                waiting.append((predicate, future))
        self._waiters[:] = waiting


def _resolve(item: Outgoing) -> None:
    """Tell whoever waits for ``item`` (a broadcast) that it is sent or lost."""
    done = item.done
    if isinstance(done, asyncio.Future) and not done.done():
        done.set_result(None)
