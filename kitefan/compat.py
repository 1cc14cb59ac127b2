"""The official client's ``KiteTicker``, on kitefan's engine: change the import, keep the script.

::

    from kitefan.compat import KiteTicker  # was: from kiteconnect import KiteTicker

    kws = KiteTicker(api_key, access_token)
    kws.on_ticks = lambda ws, ticks: print(ticks)
    kws.on_connect = lambda ws, response: ws.subscribe([738561])
    kws.connect()

The constructor (``api_key, access_token, debug, root, reconnect, reconnect_max_tries,
reconnect_max_delay, connect_timeout``), the callbacks (``on_ticks(ws, ticks)``,
``on_connect(ws, response)``, ``on_close(ws, code, reason)``, ``on_error(ws, code, reason)``,
``on_reconnect(ws, attempts_count)``, ``on_noreconnect(ws)``, ``on_order_update(ws, data)``,
``on_message(ws, payload, is_binary)``, ``on_open(ws)``), ``subscribe``, ``unsubscribe``,
``set_mode``, ``resubscribe``, ``MODE_*``, ``connect(threaded=...)``, ``is_connected``,
``close``, ``stop``, ``stop_retry`` and ``subscribed_tokens`` are those of ``kiteconnect``
5.2.2's ``KiteTicker``, and the ticks are its dicts (naive local datetimes), built from the same
bytes.

Underneath is one :class:`~kitefan.connection.FeedConnection`: any frame (heartbeats included)
proves the socket alive, and after ``liveness_timeout_s`` of silence it is reopened (the
official client only notices a socket that stops answering pings); every reconnect resubscribes
every token in its mode, subscriptions changed while disconnected included; backoff is capped
and jittered; a refused token (HTTP 403) is retried every ``auth_retry_s`` instead of
hammering. Callbacks run on the engine's thread, one at a time, as the official client runs
them on Twisted's reactor; an exception in one is logged and the stream goes on.

Owns: ``KiteTicker``, ``ConnectionResponse``. Must not import rich, typer, the manager or the
cli.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from http import HTTPStatus
from typing import Any, ClassVar, NamedTuple

from websockets.asyncio.client import ClientConnection
from websockets.http11 import Response

from kitefan.connection import FeedConnection, SecretFilter
from kitefan.events import ConnState, Gap, TickBatch
from kitefan.models import Mode, OrderUpdate
from kitefan.retry import Refusal
from kitefan.settings import Credential, Tuning, ticker_url_problems

__all__ = ["ConnectionResponse", "KiteTicker"]

log = logging.getLogger(__name__)
log.addFilter(SecretFilter())


class ConnectionResponse(NamedTuple):
    """What ``on_connect`` gets as ``response``: the handshake's answer, with the fields of
    autobahn's ``ConnectionResponse``."""

    peer: str
    headers: dict[str, str]
    version: int
    protocol: str | None
    extensions: list[str]


Callback = Callable[..., Any] | None


class KiteTicker:
    """The official client's ``KiteTicker``: same constructor, callbacks, methods and ticks.

    Args:
        api_key: the Kite api key (never shown).
        access_token: its access token (never shown).
        debug: log the connection's life at debug level.
        root: the ticker URL (default ``wss://ws.kite.trade``), without a query.
        reconnect: reconnect when the socket is lost (the official client ignores ``False``;
            here it is honoured: a lost socket stays lost).
        reconnect_max_tries: reconnect attempts before giving up with ``on_noreconnect`` (at
            most 300).
        reconnect_max_delay: the longest wait between attempts, in seconds (at least 5).
        connect_timeout: seconds a handshake may take.
        tuning: kitefan's knobs instead (liveness, backoff, timeouts); the three above then
            do not apply. Keyword only; the official client has no such argument.
    """

    EXCHANGE_MAP: ClassVar[dict[str, int]] = {
        "nse": 1,
        "nfo": 2,
        "cds": 3,
        "bse": 4,
        "bfo": 5,
        "bcd": 6,
        "mcx": 7,
        "mcxsx": 8,
        "indices": 9,
        "nco": 12,
        "bsecds": 6,
    }
    CONNECT_TIMEOUT = 30
    RECONNECT_MAX_DELAY = 60
    RECONNECT_MAX_TRIES = 50
    ROOT_URI = "wss://ws.kite.trade"
    MODE_FULL = "full"
    MODE_QUOTE = "quote"
    MODE_LTP = "ltp"
    _minimum_reconnect_max_delay = 5
    _maximum_reconnect_max_tries = 300

    def __init__(
        self,
        api_key: str,
        access_token: str,
        debug: bool = False,
        root: str | None = None,
        reconnect: bool = True,
        reconnect_max_tries: int = RECONNECT_MAX_TRIES,
        reconnect_max_delay: float = RECONNECT_MAX_DELAY,
        connect_timeout: float = CONNECT_TIMEOUT,
        *,
        tuning: Tuning | None = None,
    ) -> None:
        self.root = root or self.ROOT_URI
        if reconnect_max_tries > self._maximum_reconnect_max_tries:
            log.warning(
                "`reconnect_max_tries` can not be more than %d. Setting to highest possible "
                "value - %d.",
                self._maximum_reconnect_max_tries,
                self._maximum_reconnect_max_tries,
            )
            reconnect_max_tries = self._maximum_reconnect_max_tries
        if reconnect_max_delay < self._minimum_reconnect_max_delay:
            log.warning(
                "`reconnect_max_delay` can not be less than %d. Setting to lowest possible "
                "value - %d.",
                self._minimum_reconnect_max_delay,
                self._minimum_reconnect_max_delay,
            )
            reconnect_max_delay = self._minimum_reconnect_max_delay
        self.reconnect = reconnect
        self.reconnect_max_tries = reconnect_max_tries
        self.reconnect_max_delay = reconnect_max_delay
        self.connect_timeout = connect_timeout
        self.debug = debug
        self._credential = Credential(api_key, access_token)
        self._tuning = tuning or replace(
            Tuning(),
            connect_timeout_s=float(connect_timeout),
            backoff_max_s=float(reconnect_max_delay),
        )
        # The callbacks, as the official client names them.
        self.on_ticks: Callback = None
        self.on_open: Callback = None
        self.on_close: Callback = None
        self.on_error: Callback = None
        self.on_connect: Callback = None
        self.on_message: Callback = None
        self.on_reconnect: Callback = None
        self.on_noreconnect: Callback = None
        self.on_order_update: Callback = None
        #: Token -> mode of every token subscribed, as the official client keeps it.
        self.subscribed_tokens: dict[int, str] = {}
        self.websocket_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: _TickerConnection | None = None
        self._stopped: asyncio.Event | None = None
        self._retry = True
        self._retries = 0
        self._close_frame: tuple[int, str] = (1000, "")

    def __repr__(self) -> str:
        return f"KiteTicker(root={self.root!r}, connected={self.is_connected()})"

    # Running

    def connect(
        self,
        threaded: bool = False,
        disable_ssl_verification: bool = False,
        proxy: dict[str, Any] | None = None,
    ) -> None:
        """Connect, and keep connected until :meth:`stop`.

        ``threaded=False`` blocks until :meth:`stop` is called (from a callback, or another
        thread); ``threaded=True`` runs the engine in a daemon thread and returns at once.

        Raises:
            ValueError: ``root`` is not a usable ticker URL, or ``disable_ssl_verification`` or
                ``proxy`` is given (kitefan always verifies certificates, and takes a proxy
                from the environment: ``HTTPS_PROXY``), or the ticker is already running.
        """
        problems = ticker_url_problems(self.root)
        if problems:
            raise ValueError(f"root: {problems[0]}")
        if disable_ssl_verification:
            raise ValueError("kitefan always verifies TLS certificates")
        if proxy is not None:
            raise ValueError("kitefan takes its proxy from the environment (HTTPS_PROXY)")
        if self._loop is not None or (
            self.websocket_thread is not None and self.websocket_thread.is_alive()
        ):
            raise ValueError("this ticker is already running: stop() it first")
        self._retry = True
        self._retries = 0
        if threaded:
            self.websocket_thread = threading.Thread(
                target=asyncio.run, args=(self._run(),), name="kitefan-ticker", daemon=True
            )
            self.websocket_thread.start()
        else:
            asyncio.run(self._run())

    def is_connected(self) -> bool:
        """Whether the socket is open."""
        conn = self._conn
        return conn is not None and conn.state is ConnState.CONNECTED

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the socket (with ``code`` and ``reason``) and do not reconnect.

        The engine keeps running (``connect`` keeps blocking) until :meth:`stop`, as the
        official client's reactor does.
        """
        self._retry = False
        self._close_frame = (code or 1000, reason or "")
        self._soon(self._stop_connection)

    def stop(self) -> None:
        """End the engine: the socket is closed with a close frame and ``connect`` returns."""
        self._retry = False
        self._soon(self._stop_engine)

    def stop_retry(self) -> None:
        """Do not reconnect once the socket is lost."""
        self._retry = False

    # Subscriptions

    def subscribe(self, instrument_tokens: Iterable[int]) -> bool:
        """Subscribe to these tokens (in quote mode; one already subscribed keeps its mode).

        Before :meth:`connect` or while reconnecting, the tokens are recorded and sent once
        the socket opens.
        """
        tokens = _tokens(instrument_tokens)
        with self._lock:
            new = [t for t in tokens if t not in self.subscribed_tokens]
            for token in new:
                self.subscribed_tokens[token] = self.MODE_QUOTE
        self._soon(lambda: self._session_add((t, Mode.QUOTE) for t in new))
        return True

    def unsubscribe(self, instrument_tokens: Iterable[int]) -> bool:
        """Unsubscribe these tokens (tokens not subscribed are ignored)."""
        tokens = _tokens(instrument_tokens)
        with self._lock:
            for token in tokens:
                self.subscribed_tokens.pop(token, None)

        def remove() -> None:
            if self._conn is not None:
                self._conn.session.remove(tokens)
                self._conn.kick()

        self._soon(remove)
        return True

    def set_mode(self, mode: str, instrument_tokens: Iterable[int]) -> bool:
        """Set the mode of these tokens (``MODE_LTP``, ``MODE_QUOTE`` or ``MODE_FULL``); a token
        not subscribed is subscribed in that mode, as the server does.

        Raises:
            ValueError: ``mode`` is not a mode.
        """
        wire = Mode(mode)
        tokens = _tokens(instrument_tokens)
        with self._lock:
            for token in tokens:
                self.subscribed_tokens[token] = wire.value
        self._soon(lambda: self._session_add((t, wire) for t in tokens))
        return True

    def resubscribe(self) -> None:
        """Send every subscription again (kitefan does this by itself on every reconnect)."""

        def again() -> None:
            conn = self._conn
            if conn is not None and conn.session.is_open:
                conn.session.opened()  # queues every subscription, then the modes
                conn.kick()

        self._soon(again)

    # The engine

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        conn = _TickerConnection(
            self,
            key_id="KiteTicker",
            index=0,
            url=self.root,
            credential=self._credential,
            tuning=self._tuning,
            sink=_Sink(self),
        )
        with self._lock:
            conn.session.add((t, Mode(m)) for t, m in self.subscribed_tokens.items())
            self._loop, self._conn, self._stopped = loop, conn, stopped
        task = loop.create_task(self._guarded(conn), name="kitefan:KiteTicker")
        try:
            await stopped.wait()
        finally:
            conn.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), self._tuning.close_timeout_s + 1)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with self._lock:
                self._loop = self._conn = self._stopped = None

    async def _guarded(self, conn: _TickerConnection) -> None:
        """Run the connection until stopped; a bug in kitefan's handling of it is logged and
        the connection restarted after a backoff (counted as a reconnect attempt)."""
        while True:
            try:
                await conn.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"internal error ({type(exc).__name__})"
                log.error("%s in kitefan; restarting the connection", reason, exc_info=self.debug)
            if conn.stopping:
                return
            await conn.recover(reason)

    def _soon(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the engine's loop: now if called there, else as soon as it can;
        not at all if the engine is not running (what it would change is recorded)."""
        with self._lock:
            loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(action)

    def _session_add(self, items: Iterable[tuple[int, Mode]]) -> None:
        conn = self._conn
        if conn is not None:
            conn.session.add(items)
            conn.kick()

    def _stop_connection(self) -> None:
        if self._conn is not None:
            self._conn.stop()

    def _stop_engine(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    def _call(self, name: str, *args: Any) -> None:
        """Call the user's callback ``name`` with this ticker first, as the official client
        does; an exception in it is logged, and the stream goes on."""
        callback = getattr(self, name)
        if callback is None:
            return
        try:
            callback(self, *args)
        except Exception:
            log.exception("the %s callback raised", name)

    # What the connection reports (on the engine's loop)

    def _opened(self, response: ConnectionResponse) -> None:
        self._retries = 0
        if self.debug:
            log.debug("connected to %s", self.root)
        self._call("on_connect", response)
        self._call("on_open")

    def _socket_closed(self, ws: ClientConnection, reason: str) -> None:
        protocol = ws.protocol
        clean = protocol.close_rcvd is not None and protocol.close_sent is not None
        code = ws.close_code if ws.close_code is not None else 1006
        text = (ws.close_reason or "") if clean else reason
        if self.debug:
            log.debug("connection closed: %s - %s", code, text)
        if not clean:
            self._call("on_error", code, text)
        self._call("on_close", code, text)

    def _refused(self, status: int) -> None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        text = f"WebSocket connection upgrade failed ({status} - {phrase})"
        self._call("on_error", 1006, text)
        self._call("on_close", 1006, text)
        self._lost()

    def _lost(self) -> None:
        """The socket is gone or did not open: reconnect, as Twisted's reconnecting factory
        counts (``on_reconnect`` from the second attempt on, ``on_noreconnect`` past the
        limit), unless told not to."""
        conn = self._conn
        if conn is None or conn.stopping:
            return
        if not (self.reconnect and self._retry):
            conn.stop()
            return
        if self._retries > 0:
            self._call("on_reconnect", self._retries)
        self._retries += 1
        if self._retries > self.reconnect_max_tries:
            conn.stop()
            self._call("on_noreconnect")

    def _message(self, payload: bytes, is_binary: bool) -> None:
        self._call("on_message", payload, is_binary)
        if is_binary:
            return
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        if data.get("type") == "order" and data.get("data"):
            self._call("on_order_update", data["data"])
        if data.get("type") == "error":
            self._call("on_error", 0, data.get("data"))

    def _ticks(self, batch: TickBatch) -> None:
        if self.on_ticks is not None and len(batch.frame) > 4:
            self._call("on_ticks", [tick.as_local_dict() for tick in batch.ticks])


def _tokens(instrument_tokens: Iterable[int]) -> list[int]:
    tokens = list(instrument_tokens)
    for token in tokens:
        if isinstance(token, bool) or not isinstance(token, int):
            raise ValueError(f"instrument tokens are integers, not {token!r:.40}")
    return tokens


class _TickerConnection(FeedConnection):
    """A :class:`FeedConnection` that also hands the ticker every message as it came (for
    ``on_message``) and the handshake and close of every socket."""

    def __init__(self, ticker: KiteTicker, **options: Any) -> None:
        super().__init__(**options)
        self._ticker = ticker
        self._response: Response | None = None

    async def _serve(self, ws: ClientConnection) -> str:
        self._response = ws.response
        reason = "dropped without a close frame"
        try:
            reason = await super()._serve(ws)
            return reason
        finally:
            self._ticker._socket_closed(ws, reason)

    async def _close(self, ws: ClientConnection) -> None:
        code, reason = self._ticker._close_frame
        with contextlib.suppress(Exception):
            await ws.close(code, reason)

    def _on_binary(self, data: bytes, received_at: float, received_wall: float) -> None:
        self._ticker._message(data, True)
        super()._on_binary(data, received_at, received_wall)

    def _on_text(self, text: str) -> None:
        self._ticker._message(text.encode(), False)
        super()._on_text(text)

    def response(self) -> ConnectionResponse:
        answer = self._response
        headers = {} if answer is None else {k.lower(): v for k, v in answer.headers.raw_items()}
        return ConnectionResponse(self.url, headers, 13, None, [])


class _Sink:
    """What the connection tells the ticker (:class:`~kitefan.connection.ConnectionSink`)."""

    def __init__(self, ticker: KiteTicker) -> None:
        self._ticker = ticker

    def on_ticks(self, batch: TickBatch) -> None:
        self._ticker._ticks(batch)

    def on_order(self, conn: FeedConnection, update: OrderUpdate) -> None:
        pass  # on_order_update comes from the message itself, as the official client reads it

    def on_server_text(self, conn: FeedConnection, text: str, *, error: bool) -> None:
        log.debug("%s", text)  # error texts reach on_error from the message itself

    def on_state(self, conn: FeedConnection, message: str, gap: Gap | None = None) -> None:
        if self._ticker.debug:
            log.debug("%s: %s", conn.state.value, message)
        if conn.state in (ConnState.CONNECTING, ConnState.RECONNECTING):
            self._ticker._lost()

    def on_refused(self, conn: FeedConnection, refusal: Refusal, status: int) -> None:
        self._ticker._refused(status)

    def on_opened(self, conn: FeedConnection) -> None:
        if isinstance(conn, _TickerConnection):  # always: the ticker made it
            self._ticker._opened(conn.response())

    def handing_over(self) -> bool:
        return False
