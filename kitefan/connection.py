"""One WebSocket connection of one key, kept up for as long as it is wanted.

:class:`FeedConnection` opens the socket with the key's credentials, sends its
:class:`~kitefan.session.FeedSession`'s subscriptions, reads frames and hands them on, and when
the socket is lost, opens it again and resubscribes everything, reporting the gap.

* Liveness: any frame, heartbeats included, proves the connection alive; after
  ``liveness_timeout_s`` of silence it is aborted and reopened.
* Reconnect: capped exponential backoff with jitter (:mod:`kitefan.retry`), without limit.
* HTTP 403 at the handshake: the state becomes ``auth_failed``, the owner is told, and the
  connection retries only every ``auth_retry_s`` seconds, or at once when given a fresh token.
* HTTP 429: the state becomes ``slot_limited``, the owner is told (it re-plans), and the
  connection tries again every ``slot_retry_s`` seconds to win the slot back.
* Anything else that stops the socket from opening (a refused TCP connection, a timeout, another
  HTTP status, a redirect, which kitefan does not follow, an answer that is not a WebSocket
  handshake, a url it cannot use) is a failed attempt: a status saying what happened, then the
  backoff. It never ends the connection's task.
* A frame that does not decode, or a text kitefan does not understand, is counted, reported and
  skipped; the connection lives on. Nothing a server sends raises out of a connection.
* A bug (an exception out of :meth:`FeedConnection.run`) is the owner's to catch: the socket is
  aborted, and :meth:`FeedConnection.recover` waits with its own backoff before the owner runs
  the connection again, which then reports the gap and resubscribes like any reconnect.

What to do after each outcome (which state, what message, how long to wait) is decided by
:class:`kitefan.lifecycle.ConnectionLife` (pure); this class opens, reads and closes sockets, and
carries out its steps.

The hot path (:meth:`FeedConnection._on_binary`) checks a frame's structure and counts its
packets without decoding them (:func:`~kitefan.codec.scan_frame`), and hands the frame on as it
came, in a :class:`~kitefan.events.TickBatch` that decodes once, when a consumer first reads its
ticks; a batch dropped from a full queue is never decoded. Each frame is handed on before the next
is taken: a connection holding a frame first yields to any consumer that was handed ticks and has
not run yet.

The URL carries the credentials as query parameters (as Kite requires); it is never logged nor
put in a status message, and the loggers of this module and websockets' (``kitefan.websockets``)
have a filter that masks them in messages and tracebacks.

Owns: ``FeedConnection``, ``ConnectionSink``. Must not import rich, typer, the planner, the
failover or the manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Protocol
from urllib.parse import quote, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidProxy,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
    ProxyError,
)
from websockets.frames import Close, CloseCode

from kitefan import __version__
from kitefan.codec import decode_text, frame_tokens, scan_frame
from kitefan.errors import CodecError
from kitefan.events import ConnState, Gap, TickBatch
from kitefan.lifecycle import ConnectionLife, Report, Step, TellRefused
from kitefan.models import OrderUpdate, ServerError, ServerNotice, UnknownText
from kitefan.packets import PACKETS, PacketKind
from kitefan.retry import Refusal
from kitefan.session import FeedSession
from kitefan.settings import Credential, Tuning, ticker_url_problems
from kitefan.stats import ConnectionCounters

__all__ = ["ConnectionSink", "FeedConnection", "SecretFilter"]

log = logging.getLogger(__name__)

# How many times a connection holding a frame yields to consumers before decoding it anyway.
_MAX_YIELDS = 64
_FULL = int(PacketKind.FULL)
#: Where the exchange timestamp of a frame's first packet is, when that packet is a full one.
_FIRST_FULL_STAMP = 4 + PACKETS[_FULL].offset_of("exchange_timestamp")
_FIRST_FULL_STAMP_END = _FIRST_FULL_STAMP + 4

_SECRET_PARAM = re.compile(r"(api_key|access_token)=[^&\s\"']*")
# The password of a URL's user part (a proxy's, in the environment): ``//user:password@``.
_URL_PASSWORD = re.compile(r"(//[^/?#@\s:\"']*:)[^/?#@\s\"']*@")


def _mask_secrets(text: str) -> str:
    """``text`` with the values of ``api_key=`` and ``access_token=`` and URL passwords masked."""
    return _URL_PASSWORD.sub(r"\1…@", _SECRET_PARAM.sub(r"\1=…", text))


class SecretFilter(logging.Filter):
    """Masks ``api_key=`` and ``access_token=`` values and URL passwords in every log record it
    sees, in its message and in the text of its exception (which then replaces the exception)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _mask_secrets(message)
        if masked != message:
            record.msg = masked
            record.args = ()
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = _mask_secrets(text)
            record.exc_info = None
        return True


log.addFilter(SecretFilter())
_WS_LOGGER = logging.getLogger("kitefan.websockets")
_WS_LOGGER.addFilter(SecretFilter())


class _Connect(connect):
    """websockets' ``connect``, except that a redirect is an answer, not an order.

    websockets follows 3xx answers to the handshake; kitefan does not: the credentials are in the
    query, so following would either drop them or hand them to wherever the server points.
    Returning the exception makes ``connect`` raise the :class:`InvalidStatus`.
    """

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


class ConnectionSink(Protocol):
    """What a connection tells its owner. Every call is synchronous and must not block."""

    def on_ticks(self, batch: TickBatch) -> None: ...

    def on_order(self, conn: FeedConnection, update: OrderUpdate) -> None: ...

    def on_server_text(self, conn: FeedConnection, text: str, *, error: bool) -> None: ...

    def on_state(self, conn: FeedConnection, message: str, gap: Gap | None = None) -> None: ...

    def on_refused(self, conn: FeedConnection, refusal: Refusal, status: int) -> None: ...

    def on_opened(self, conn: FeedConnection) -> None: ...

    def handing_over(self) -> bool:
        """Whether a consumer was handed ticks and has not run since (the connection then
        yields once before decoding its next frame)."""
        ...


def _describe(
    exc: BaseException, shown: Callable[[str], str] = _mask_secrets, where: str = ""
) -> str:
    """A one-line reason for a failed attempt or a lost socket.

    Built from the exception's fields, never from its text where that holds the URL
    (``InvalidURI``, ``InvalidProxy``, ``ValueError`` of the URL's parser, unknown exceptions):
    no reason carries the credentials. Texts the server chose (a ``Location``, a header, a status
    line) pass through ``shown``, which masks any secret they echo and keeps them short. A
    network failure names ``where`` (the server's ``host:port``), what happened (refused, timed
    out, name not found, TLS) and what to check.
    """
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if 300 <= status < 400:
            location = exc.response.headers.get("Location")
            if not location:
                return f"the server answered HTTP {status} with no Location; check the url"
            return (
                f"the server redirected to {shown(location)} (HTTP {status}): kitefan does not "
                "follow redirects; check the url"
            )
        return f"HTTP {status}"
    if isinstance(exc, InvalidProxyStatus):
        return f"the proxy refused the connection with HTTP {exc.response.status_code}"
    if isinstance(exc, ProxyError):
        return f"proxy: {shown(str(exc))}"
    if isinstance(exc, InvalidProxy):
        return f"invalid proxy in the environment: {exc.msg}"
    if isinstance(exc, InvalidURI):
        return f"invalid url: {exc.msg}"
    if isinstance(exc, InvalidMessage):
        cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
        return f"not a WebSocket handshake answer: {shown(f'{exc}{cause}')}"
    if isinstance(exc, InvalidHandshake):
        return f"invalid handshake answer: {shown(str(exc))}"
    if isinstance(exc, ConnectionClosed):
        return _closed(exc.rcvd, exc.sent, exc.rcvd_then_sent)
    if isinstance(exc, (TimeoutError, OSError)):
        return _unreachable(exc, where)
    return type(exc).__name__


def _unreachable(exc: OSError, where: str) -> str:
    """Why the server at ``where`` (``host:port``) could not be reached, and what to check."""
    at = f" {where}" if where else ""
    if isinstance(exc, TimeoutError):
        return (
            f"timed out reaching{at or ' the server'}: check the network (a firewall, a proxy) "
            "and the url's host and port"
        )
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"connection refused by{at or ' the server'}: nothing listens there; check the "
            "url's host and port, and that the server runs"
        )
    if isinstance(exc, socket.gaierror):
        host = where.rsplit(":", 1)[0] if where else "the url's host"
        return f"host name {host} not found: check the url's host and this machine's DNS"
    if isinstance(exc, ssl.SSLError):
        why = getattr(exc, "verify_message", None) or exc.reason or exc.strerror or "failed"
        return (
            f"TLS with{at or ' the server'} failed: {why}; check that the url's host serves "
            "wss:// and this machine's CA certificates"
        )
    if isinstance(exc, ConnectionError):
        return f"connection to{at or ' the server'} failed: {exc.strerror or type(exc).__name__}"
    reason = exc.strerror or type(exc).__name__
    if reason.startswith("Multiple exceptions: ") or reason.startswith("Connect call failed"):
        # asyncio's text for every address of the host failing (refused, unreachable, ...).
        reason = "no address of the host answered"
    return f"cannot reach{at or ' the server'}: {reason}; check the url and the network"


def _host_port(url: str) -> str:
    """``host:port`` of a ticker url (the scheme's port when it names none), or ``""``."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def _closed(rcvd: Close | None, sent: Close | None, rcvd_then_sent: bool | None) -> str:
    """Why a socket closed, from the close frames received and sent."""
    if sent is not None and (rcvd is None or not rcvd_then_sent):
        # kitefan closed first: websockets fails the connection when the server breaks the
        # protocol (and then ignores whatever the server sends, its close frame included).
        if sent.code == CloseCode.INVALID_DATA:
            return "the server sent invalid UTF-8 in a text frame (closed with 1007)"
        if sent.code == CloseCode.PROTOCOL_ERROR:
            return f"the server broke the WebSocket protocol: {sent.reason} (closed with 1002)"
        return f"closed by kitefan with code {sent.code}" + (
            f": {sent.reason}" if sent.reason else ""
        )
    if rcvd is None:
        return "dropped without a close frame"
    return f"closed by the server with code {rcvd.code}"


class FeedConnection:
    """One connection slot of one key.

    Args:
        key_id: the key's config id (shown everywhere instead of the api key).
        index: the connection's index within the key (0, 1 or 2).
        url: the ticker URL, without credentials.
        credential: the key's api key and access token.
        tuning: timeouts, backoff and batch sizes.
        sink: the owner, told about ticks, texts and state changes.
        rng: the random source of the backoff jitter.
        counters: where to count (the owner keeps them across connections of the same slot).
    """

    def __init__(
        self,
        *,
        key_id: str,
        index: int,
        url: str,
        credential: Credential,
        tuning: Tuning,
        sink: ConnectionSink,
        rng: random.Random | None = None,
        counters: ConnectionCounters | None = None,
    ) -> None:
        self.key_id = key_id
        self.index = index
        self.url = url
        self.credential = credential
        self.tuning = tuning
        self.session = FeedSession(tuning.subscribe_batch)
        self.counters = counters if counters is not None else ConnectionCounters()
        self.state = ConnState.CONNECTING
        self.started_at = time.perf_counter()
        self._sink = sink
        # The policy (states, backoffs, what a refusal or a loss leads to): pure, see
        # kitefan.lifecycle; this class carries out its steps.
        self._life = ConnectionLife(tuning, rng)
        self._ws: ClientConnection | None = None
        self._closing: asyncio.Task[None] | None = None
        self._last_frame_wall: float | None = None
        self._opened_s = 0
        self._stopping = False
        self._wake = asyncio.Event()
        self._outbox_ready = asyncio.Event()

    def __repr__(self) -> str:
        return f"FeedConnection({self.key_id}#{self.index}, {self.state.value})"

    # Control from the owner

    def kick(self) -> None:
        """Send whatever the session has queued (call after changing the session)."""
        self._outbox_ready.set()

    def update_credential(self, credential: Credential) -> None:
        """Use a fresh token; a connection waiting after a refusal tries again at once."""
        self.credential = credential
        self._wake.set()

    def retry_now(self) -> None:
        """Cut a pause short (used after a fresh token or a re-plan)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the connection to end: it closes its socket with a close frame and returns."""
        self._stopping = True
        self._wake.set()
        self._outbox_ready.set()
        ws = self._ws
        if ws is not None and self._closing is None:
            # Closing makes the reader's iteration end; run() then returns (and awaits this).
            self._closing = asyncio.get_running_loop().create_task(self._close(ws))

    @property
    def stopping(self) -> bool:
        return self._stopping

    # The loop

    async def run(self) -> None:
        """Keep the connection up until :meth:`stop`. Never raises for network trouble, nor for
        anything a server sends; an exception out of it is a bug (see :meth:`recover`)."""
        try:
            while not self._stopping:
                problems = ticker_url_problems(self.url)
                if problems:
                    await self._failed_attempt(f"invalid url: {problems[0]}")
                    continue
                try:
                    ws = await _Connect(
                        self._url_with_credentials(),
                        open_timeout=self.tuning.connect_timeout_s,
                        ping_interval=None,
                        close_timeout=self.tuning.close_timeout_s,
                        max_size=None,
                        max_queue=64,
                        compression=None,
                        user_agent_header=f"kitefan/{__version__}",
                        additional_headers={"X-Kite-Version": "3"},
                        logger=_WS_LOGGER,
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Whatever stops the socket from opening fails this attempt, never the task;
                    # the status says why in one secret-free line, --debug logs the traceback.
                    log.debug("%s#%d: the attempt failed", self.key_id, self.index, exc_info=True)
                    if isinstance(exc, InvalidStatus) and not 300 <= exc.response.status_code < 400:
                        await self._carry_out(self._life.refused(exc.response.status_code))
                    else:
                        await self._failed_attempt(
                            _describe(exc, self._shown, _host_port(self.url))
                        )
                    continue
                if self.stopping:
                    await self._close(ws)
                    break
                reason = await self._serve(ws)
                steps = self._life.lost(reason, self._last_frame_wall or time.time())
                if not self._stopping:
                    await self._carry_out(steps)
        finally:
            self._ws = None
            self.session.closed()
            self.state = ConnState.CLOSED
            if self._closing is not None:
                await self._closing

    async def _serve(self, ws: ClientConnection) -> str:
        """Subscribe, read until the socket is lost or stopped; return why it ended."""
        try:
            return await self._serve_open(ws)
        except Exception:
            # A bug: the owner restarts the connection; this socket must not linger open.
            ws.transport.abort()
            raise

    async def _serve_open(self, ws: ClientConnection) -> str:
        self._ws = ws
        self._last_frame_wall = time.time()
        self._opened_s = int(self._last_frame_wall)
        session = self.session
        session.opened()
        counters = self.counters
        counters.connected_at = time.perf_counter()
        counters.last_frame_at = counters.connected_at
        try:
            await self._flush(ws)
        except ConnectionClosed as exc:
            self._ws = None
            session.closed()
            return _describe(exc)
        opened = self._life.opened(time.time(), session.wanted)
        if opened.reconnected:
            counters.reconnects += 1
        if opened.report.gap is not None:
            counters.last_gap = opened.report.gap
        await self._carry_out((opened.report,))
        self._sink.on_opened(self)
        sender = asyncio.get_running_loop().create_task(self._sender(ws))
        try:
            return await self._read(ws)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            self._ws = None
            session.closed()

    async def _read(self, ws: ClientConnection) -> str:
        loop = asyncio.get_running_loop()
        liveness = self._life.liveness_s
        on_binary = self._on_binary
        on_text = self._on_text
        handing_over = self._sink.handing_over
        clock = time.perf_counter
        wall_clock = time.time
        try:
            async with asyncio.timeout(liveness) as watchdog:
                async for message in ws:
                    received_at = clock()
                    watchdog.reschedule(loop.time() + liveness)
                    if isinstance(message, bytes):
                        received_wall = wall_clock()
                        # While a consumer was handed ticks and has not run yet, let it take them
                        # before this frame is decoded (see _on_binary). Bounded, as a guard.
                        for _ in range(_MAX_YIELDS):
                            if not handing_over():
                                break
                            await asyncio.sleep(0)
                        on_binary(message, received_at, received_wall)
                    else:
                        on_text(message)
        except TimeoutError:
            ws.transport.abort()
            return self._life.silent()
        except ConnectionClosed as exc:
            return _describe(exc)
        if self._stopping:
            return "stopped"
        protocol = ws.protocol
        return _closed(protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent)

    async def _sender(self, ws: ClientConnection) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            if self._stopping:
                return
            try:
                await self._flush(ws)
            except ConnectionClosed:
                return

    async def _flush(self, ws: ClientConnection) -> None:
        for message in self.session.data_to_send():
            await ws.send(message)

    async def _close(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            await ws.close()

    # Refusals and failures

    async def _failed_attempt(self, reason: str) -> None:
        await self._carry_out(self._life.attempt_failed(self._masked(reason)))

    async def _carry_out(self, steps: Iterable[Step]) -> None:
        """Carry out what :class:`~kitefan.lifecycle.ConnectionLife` decided, in order."""
        for step in steps:
            if isinstance(step, Report):
                self._set_state(step.state, step.message, step.gap)
            elif isinstance(step, TellRefused):
                self._sink.on_refused(self, step.refusal, step.status)
            else:
                await self._pause(step.seconds)

    async def recover(self, reason: str) -> None:
        """Wait before running again after :meth:`run` raised (a bug, ``reason`` says which).

        The connection is ``reconnecting`` meanwhile (``connecting`` if it never opened). The
        wait is a backoff of its own, which grows while the bug keeps recurring and starts over
        once the connection stayed up for ``backoff_max_s``; :meth:`stop` cuts it short. The next
        :meth:`run` counts a reconnect and reports the gap since the last frame.
        """
        connected_at = self.counters.connected_at
        uptime = None if connected_at is None else time.perf_counter() - connected_at
        last_frame = self._last_frame_wall or time.time()
        await self._carry_out(self._life.crashed(reason, uptime_s=uptime, last_frame=last_frame))

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    # Frames

    def _on_binary(self, data: bytes, received_at: float, received_wall: float) -> None:
        """Check, count and hand on one binary frame, read off the socket at ``received_at``
        (``time.perf_counter()``), which was ``received_wall`` (``time.time()``).

        The frame is not decoded here: its batch decodes when a consumer reads its ticks. Frames
        of several connections often arrive at the same moment; :meth:`_read` yields to a
        consumer that was handed ticks and has not run yet before calling this, so that each
        frame reaches the consumers (and is decoded there) before the next is taken, instead of
        the first waiting for all the others.
        """
        counters = self.counters
        counters.frames += 1
        counters.bytes += len(data)
        counters.last_frame_at = received_at
        wall = received_wall
        self._last_frame_wall = wall
        if len(data) < 2:
            counters.heartbeats += 1
            return
        try:
            count, skipped = scan_frame(data)
        except CodecError as exc:
            counters.decode_errors += 1
            self._sink.on_server_text(self, f"skipped a frame: {exc}", error=True)
            return
        if skipped:
            counters.skipped_packets += skipped
        if not count:
            return
        counters.ticks += count
        silent = self.session.silent
        if silent:
            silent.difference_update(frame_tokens(data))
        # The exchange delay, sampled once a frame from the first packet when it is a full one
        # (its exchange timestamp, where the packet-field table puts it, after the frame's count
        # and the packet's length). Ticks stamped before this socket opened are the server's
        # cached last ticks, sent on subscribe: old by design, not late.
        if data[2] == 0 and data[3] == _FULL:
            stamp = int.from_bytes(data[_FIRST_FULL_STAMP:_FIRST_FULL_STAMP_END], "big")
            if stamp >= self._opened_s:
                delay = int(wall) - stamp
                counts = counters.delay_counts
                counts[delay] = counts.get(delay, 0) + 1
        self._sink.on_ticks(
            TickBatch(self.key_id, self.index, data, received_at, wall, count=count)
        )

    def _on_text(self, text: str) -> None:
        counters = self.counters
        now = time.perf_counter()
        counters.frames += 1
        counters.bytes += len(text)
        counters.last_frame_at = now
        self._last_frame_wall = time.time()
        try:
            message = decode_text(text)
        except CodecError as exc:
            counters.decode_errors += 1
            self._sink.on_server_text(self, f"skipped a text message: {exc}", error=True)
            return
        if isinstance(message, OrderUpdate):
            counters.orders += 1
            self._sink.on_order(self, message)
        elif isinstance(message, ServerError):
            counters.server_errors += 1
            self._sink.on_server_text(self, message.text, error=True)
        elif isinstance(message, ServerNotice):
            self._sink.on_server_text(self, message.text, error=False)
        elif isinstance(message, UnknownText):
            counters.decode_errors += 1
            self._sink.on_server_text(
                self, f"skipped a text message of unknown type {message.type!r}", error=True
            )

    # Internals

    def _set_state(self, state: ConnState, message: str, gap: Gap | None = None) -> None:
        self.state = state
        self._sink.on_state(self, message, gap)

    def _url_with_credentials(self) -> str:
        # ticker_url_problems refused a url with a query, a fragment or a user part.
        cred = self.credential
        return (
            f"{self.url}?api_key={quote(cred.api_key, safe='')}"
            f"&access_token={quote(cred.access_token, safe='')}"
        )

    def _masked(self, text: str) -> str:
        """``text`` without the credentials, should a server have echoed them into it."""
        text = _mask_secrets(text)
        cred = self.credential
        for secret in (cred.api_key, cred.access_token):
            for form in {secret, quote(secret, safe="")}:
                if len(form) >= 4:
                    text = text.replace(form, "…")
        return text

    def _shown(self, text: str) -> str:
        """A text the server chose, as a status may show it: masked, printable, short."""
        text = self._masked(text).encode("ascii", "backslashreplace").decode()
        return text if len(text) <= 200 else text[:200] + "…"
