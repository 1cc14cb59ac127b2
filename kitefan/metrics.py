"""Prometheus metrics of a running stream: ``kitefan stream --metrics HOST:PORT``.

The numbers are the feed's own stats, read when Prometheus scrapes (a custom collector over
``feed.stats()``), so there is no second set of counters to drift from what ``kitefan stats``
shows. The exposition is written by ``prometheus_client``, the ecosystem's own client library,
which negotiates the format from the scraper's ``Accept`` header (the classic text format by
default, OpenMetrics when asked).

The endpoint is a small HTTP/1.1 server on the stream's own event loop (not the library's
threaded server): ``GET /metrics`` answers the exposition, anything else 404 (405 for other
methods); one request per connection, then it is closed. It binds loopback unless told otherwise;
a host beyond loopback is allowed only when given explicitly, and the caller is told
(:func:`is_loopback`).

Whoever can reach the port shares the stream's process, so what one client may cost is bounded
(:class:`HttpLimits`): a request head of at most 8 KiB (8192 bytes, the blank line included) and
50 header lines, else 431; at most 16 connections at once, one more answered 503 and closed at
once; 5 s from connecting to being answered and done, else 408 (a slow loris) or cut (a client
that does not take its answer). The server holds at most 8 KiB per connection, so 128 KiB in all
(:attr:`MetricsServer.buffered_bytes`); it keeps at most 16 descriptors, and a flood of
connections costs a few dozen more only for the moment it takes to refuse them (it accepts at
most 16 at one go; 2000 connecting at once peaked at 64 in all). That stays far below a
process's descriptor limit (1024 by default, 256 on some systems): scrapers, or anyone else,
cannot starve the feed's own reconnects. What follows a request (a body, a second request) is
dropped, and the connection cut when that goes on past 8 KiB. No HTTP library is added for
this: the endpoint serves one kind of request, read by an asyncio protocol that holds only what
it has to.

Metrics, labelled ``key`` (the config id) and ``connection`` (0, 1 or 2):

* counters, one family per counter of the table (:class:`kitefan.stats.Counts`: its name and
  help come from there): ``kitefan_ticks_total``, ``kitefan_frames_total``,
  ``kitefan_bytes_total``, ``kitefan_heartbeats_total``, ``kitefan_skipped_packets_total``,
  ``kitefan_reconnects_total``, ``kitefan_decode_errors_total``,
  ``kitefan_server_errors_total``, ``kitefan_internal_errors_total``,
  ``kitefan_dropped_ticks_total``; ``kitefan_order_updates_total`` (``key`` only, each update
  once: a counter the key counts itself);
* gauges: ``kitefan_connection_up``, ``kitefan_symbols`` (also ``mode``),
  ``kitefan_never_ticked_symbols``, ``kitefan_last_frame_age_seconds``,
  ``kitefan_connection_uptime_seconds``, ``kitefan_exchange_delay_seconds`` (also ``quantile``,
  whole seconds), ``kitefan_key_state`` (``key``, ``state``: 1 for the key's state, 0 for the
  others), ``kitefan_uptime_seconds`` (no labels);
* while the stream publishes to Redis (``--publish``), labelled ``stream``: the counters
  ``kitefan_publish_entries_total``, ``kitefan_publish_ticks_total``,
  ``kitefan_publish_dropped_ticks_total``, ``kitefan_publish_dropped_events_total``,
  ``kitefan_publish_reconnects_total``, and the gauges ``kitefan_publish_up`` and
  ``kitefan_publish_buffered_bytes``;
* while the stream records (``--record``), labelled ``path``: the counters
  ``kitefan_record_ticks_total``, ``kitefan_record_frames_total``,
  ``kitefan_record_bytes_total`` (compressed, on disk), ``kitefan_record_chunks_total``,
  ``kitefan_record_dropped_ticks_total``, ``kitefan_record_dropped_events_total`` and
  ``kitefan_record_write_errors_total``.
* with ``redundancy = 2``: the counters ``kitefan_redundant_ticks_total`` (no labels: snapshots
  delivered once), ``kitefan_redundant_duplicates_total`` and ``kitefan_redundant_missed_total``
  (``key``: copies dropped, and snapshots only the other key delivered).

Plus the client library's standard ``process_*`` and ``python_*`` metrics of the stream process.

Owns: ``FeedCollector``, ``MetricsServer``, ``HttpLimits``, ``parse_address``, ``is_loopback``.
Must not import rich, typer or the manager (it reads a stats callable).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Self

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from kitefan.events import ConnState, KeyState
from kitefan.models import Mode
from kitefan.stats import (
    COUNTERS,
    FeedStats,
    PublishStats,
    RecordStats,
    RedundancyStats,
)

__all__ = [
    "DEFAULT_HOST",
    "FeedCollector",
    "HttpLimits",
    "MetricsServer",
    "is_loopback",
    "parse_address",
]

log = logging.getLogger(__name__)

#: The host ``--metrics PORT`` binds.
DEFAULT_HOST = "127.0.0.1"

_TEXT = "text/plain; charset=utf-8"
_LABELS = ["key", "connection"]
_KEY_COUNTERS = tuple(c for c in COUNTERS if c.per_key)
_CONNECTION_COUNTERS = tuple(c for c in COUNTERS if not c.per_key)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``[IPV6]:PORT`` as (host, port).

    The host defaults to 127.0.0.1; port 0 picks a free port.

    Raises:
        ValueError: not of this form, or the port is not 0-65535 (the message says which).
    """
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"expected HOST:PORT (an IPv6 host in brackets: [::1]:9108), got {text!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected HOST:PORT with a port of 0-65535, got {text!r}")
    return host or DEFAULT_HOST, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``), reachable only from here."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FeedCollector:
    """A Prometheus collector reading a feed's stats at scrape time.

    Args:
        stats: returns the feed's stats now, or None while there is no feed yet.
    """

    def __init__(self, stats: Callable[[], FeedStats | None]) -> None:
        self.stats = stats

    def collect(self) -> Iterable[Metric]:
        """Every kitefan metric, from one stats snapshot."""
        snapshot = self.stats()
        if snapshot is None:
            return []
        # One family per counter of the table, in its order (see kitefan.stats.Counts).
        counters = {
            c.name: CounterMetricFamily(c.metric, c.help, labels=["key"] if c.per_key else _LABELS)
            for c in COUNTERS
        }
        up = GaugeMetricFamily(
            "kitefan_connection_up", "1 when the connection is connected.", labels=_LABELS
        )
        symbols = GaugeMetricFamily(
            "kitefan_symbols",
            "Symbols the connection carries, by mode.",
            labels=[*_LABELS, "mode"],
        )
        never = GaugeMetricFamily(
            "kitefan_never_ticked_symbols",
            "Subscribed symbols that have not ticked since they were subscribed.",
            labels=_LABELS,
        )
        age = GaugeMetricFamily(
            "kitefan_last_frame_age_seconds",
            "Seconds since the connection's last frame (heartbeats count).",
            labels=_LABELS,
        )
        conn_uptime = GaugeMetricFamily(
            "kitefan_connection_uptime_seconds",
            "Seconds since the connection was last (re)opened; absent while it is down.",
            labels=_LABELS,
        )
        delay = GaugeMetricFamily(
            "kitefan_exchange_delay_seconds",
            "Receipt time minus exchange timestamp of full-mode ticks, whole seconds "
            "(1 s resolution), by quantile.",
            labels=[*_LABELS, "quantile"],
        )
        key_state = GaugeMetricFamily(
            "kitefan_key_state",
            "1 for the key's current state, 0 for the others.",
            labels=["key", "state"],
        )
        for key in snapshot.keys:
            for counter in _KEY_COUNTERS:
                counters[counter.name].add_metric([key.key_id], getattr(key, counter.name))
            for state in KeyState:
                key_state.add_metric([key.key_id, state.value], 1.0 if key.state is state else 0.0)
            for conn in key.connections:
                labels = [key.key_id, str(conn.index)]
                for counter in _CONNECTION_COUNTERS:
                    counters[counter.name].add_metric(labels, getattr(conn, counter.name))
                up.add_metric(labels, 1.0 if conn.state is ConnState.CONNECTED else 0.0)
                for mode in Mode:
                    symbols.add_metric(
                        [*labels, mode.value], conn.symbols_by_mode.get(mode.value, 0)
                    )
                never.add_metric(labels, conn.never_ticked)
                if conn.last_frame_age_s is not None:
                    age.add_metric(labels, conn.last_frame_age_s)
                if conn.uptime_s is not None:
                    conn_uptime.add_metric(labels, conn.uptime_s)
                if conn.exchange_delay_p50_s is not None:
                    delay.add_metric([*labels, "0.5"], conn.exchange_delay_p50_s)
                if conn.exchange_delay_p99_s is not None:
                    delay.add_metric([*labels, "0.99"], conn.exchange_delay_p99_s)
        uptime = GaugeMetricFamily("kitefan_uptime_seconds", "Seconds since the stream started.")
        uptime.add_metric([], snapshot.uptime_s)
        return [
            *_publish_metrics(snapshot.publish),
            *_record_metrics(snapshot.record),
            *_redundancy_metrics(snapshot.redundancy),
            *counters.values(),
            up,
            symbols,
            never,
            age,
            conn_uptime,
            delay,
            key_state,
            uptime,
        ]


def _redundancy_metrics(redundancy: RedundancyStats | None) -> list[Metric]:
    """What the merge of redundant keys did (only with ``redundancy = 2``)."""
    if redundancy is None:
        return []
    delivered = CounterMetricFamily(
        "kitefan_redundant_ticks", "Snapshots of redundant symbols delivered once."
    )
    delivered.add_metric([], redundancy.delivered)
    duplicates = CounterMetricFamily(
        "kitefan_redundant_duplicates",
        "A key's copies dropped because the other key's copy came first.",
        labels=["key"],
    )
    missed = CounterMetricFamily(
        "kitefan_redundant_missed",
        "Snapshots of a key's symbols that only the other key delivered.",
        labels=["key"],
    )
    for key, count in redundancy.duplicates.items():
        duplicates.add_metric([key], count)
    for key, count in redundancy.missed.items():
        missed.add_metric([key], count)
    return [delivered, duplicates, missed]


def _publish_metrics(publish: PublishStats | None) -> list[Metric]:
    """What ``--publish`` did (only while the stream publishes to Redis)."""
    if publish is None:
        return []
    labels = ["stream"]
    values = [publish.stream]
    families: list[Metric] = []
    for name, help_, value in (
        (
            "kitefan_publish_entries",
            "Entries written to the Redis stream.",
            publish.published_entries,
        ),
        ("kitefan_publish_ticks", "Ticks written to the Redis stream.", publish.published_ticks),
        (
            "kitefan_publish_dropped_ticks",
            "Ticks that did not reach Redis (buffer full while it was slow or down, or in "
            "flight when it failed).",
            publish.dropped_ticks,
        ),
        (
            "kitefan_publish_dropped_events",
            "Order, status and error events that did not reach Redis.",
            publish.dropped_events,
        ),
        ("kitefan_publish_reconnects", "Connections to Redis made again.", publish.reconnects),
    ):
        counter = CounterMetricFamily(name, help_, labels=labels)
        counter.add_metric(values, value)
        families.append(counter)
    up = GaugeMetricFamily("kitefan_publish_up", "1 while Redis takes entries.", labels=labels)
    up.add_metric(values, 1.0 if publish.state == "connected" else 0.0)
    buffered = GaugeMetricFamily(
        "kitefan_publish_buffered_bytes", "Bytes of entries waiting for Redis.", labels=labels
    )
    buffered.add_metric(values, publish.buffered_bytes)
    return [*families, up, buffered]


def _record_metrics(record: RecordStats | None) -> list[Metric]:
    """What ``--record`` did (only while the stream records)."""
    if record is None:
        return []
    families: list[Metric] = []
    for name, help_, value in (
        ("kitefan_record_ticks", "Ticks recorded.", record.ticks),
        ("kitefan_record_frames", "Frames recorded.", record.frames),
        (
            "kitefan_record_bytes",
            "Bytes appended to the recording (compressed).",
            record.bytes_written,
        ),
        ("kitefan_record_chunks", "Chunks written whole to the recording.", record.chunks),
        (
            "kitefan_record_dropped_ticks",
            "Ticks that never reached the recording (a full queue, or a failed write).",
            record.dropped_ticks,
        ),
        (
            "kitefan_record_dropped_events",
            "Order and error events that never reached the recording.",
            record.dropped_events,
        ),
        (
            "kitefan_record_write_errors",
            "Writes to the recording that failed.",
            record.write_errors,
        ),
    ):
        counter = CounterMetricFamily(name, help_, labels=["path"])
        counter.add_metric([record.path], value)
        families.append(counter)
    return families


@dataclass(frozen=True)
class HttpLimits:
    """What one client may cost the stream; over a limit, it is answered and closed.

    Args:
        head_bytes: the request line and headers, the blank line included (431 over it).
        header_lines: header lines (431 over it).
        connections: connections served at once; one more is answered 503 and closed at once.
        request_s: seconds from connecting to being answered and done (408, or cut, after it).
    """

    head_bytes: int = 8 * 1024
    header_lines: int = 50
    connections: int = 16
    request_s: float = 5.0


class MetricsServer:
    """The metrics endpoint: an async context manager serving ``GET /metrics``.

    Entering binds ``host:port`` (so a port in use fails before the feed starts); until
    :meth:`attach` the kitefan metrics are absent. Leaving stops serving.

    Args:
        host: the address to bind (loopback by default).
        port: the port; 0 picks a free one (see :attr:`url`).
        limits: what one client may cost (the defaults are the documented limits).
    """

    def __init__(
        self, host: str = DEFAULT_HOST, port: int = 0, *, limits: HttpLimits = HttpLimits()
    ) -> None:
        self.host = host
        self.port = port
        self.limits = limits
        self.collector = FeedCollector(lambda: None)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._exchanges: set[_Exchange] = set()

    def __repr__(self) -> str:
        return f"MetricsServer({self.host}:{self.port})"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            OSError: the address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        # The backlog is also how many connections the loop accepts at one go: kept to the
        # cap, so that refusing a flood holds few descriptors even for a moment.
        self._server = await loop.create_server(
            lambda: _Exchange(self), self.host, self.port, backlog=self.limits.connections
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self._address = (host, port)

    async def close(self) -> None:
        """Stop serving; cut the scrapes in progress."""
        server = self._server
        self._server = None
        if server is not None:
            server.close()
        exchanges = list(self._exchanges)
        for exchange in exchanges:
            exchange.abort()
        if exchanges:
            await asyncio.gather(*(e.done for e in exchanges))
        if server is not None:
            await server.wait_closed()

    def attach(self, stats: Callable[[], FeedStats | None]) -> None:
        """Read the kitefan metrics from ``stats`` from now on."""
        self.collector.stats = stats

    @property
    def url(self) -> str:
        """``http://HOST:PORT/metrics`` of the bound endpoint."""
        if self._address is None:
            raise RuntimeError("the metrics endpoint is not started")
        host, port = self._address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    @property
    def connections(self) -> int:
        """The connections being served now (at most ``limits.connections``)."""
        return len(self._exchanges)

    @property
    def buffered_bytes(self) -> int:
        """The request bytes held now, over every connection (at most ``limits.head_bytes``
        each)."""
        return sum(len(exchange.head) for exchange in self._exchanges)

    def _answer(
        self, request_line: bytes, headers: dict[str, str]
    ) -> tuple[HTTPStatus, str, bytes]:
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return HTTPStatus.BAD_REQUEST, _TEXT, b"bad request\n"
        method, target, _ = parts
        path = target.split("?", 1)[0]
        if path != "/metrics":
            return HTTPStatus.NOT_FOUND, _TEXT, b"not found: the metrics are at /metrics\n"
        if method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, _TEXT, b"use GET\n"
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        return HTTPStatus.OK, content_type, encoder(self.registry)


def _response(
    status: HTTPStatus, content_type: str, body: bytes, *, head_only: bool = False
) -> bytes:
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    return head if head_only else head + body


class _Exchange(asyncio.Protocol):
    """One connection: one request read within the limits, one answer, then closed.

    A protocol rather than a stream reader, so that what it holds is exactly :attr:`head`,
    never more than ``head_bytes``: a chunk received beyond it is dropped as it arrives.
    """

    def __init__(self, server: MetricsServer) -> None:
        self.server = server
        self.limits = server.limits
        self.head = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._scanned = 0  # how far ``head`` has been split into lines
        self._lines = 0  # complete lines so far, the request line included
        self._answered = False
        self._dropped = 0  # bytes received after the answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if len(self.server._exchanges) >= self.limits.connections:
            # Refused at once: it never holds a slot, a buffer or a timer.
            self._answered = True
            self.done.set_result(None)
            body = f"too many connections: at most {self.limits.connections} at a time\n"
            transport.write(_response(HTTPStatus.SERVICE_UNAVAILABLE, _TEXT, body.encode()))
            transport.close()
            return
        self.server._exchanges.add(self)
        self._timer = asyncio.get_running_loop().call_later(self.limits.request_s, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.head = bytearray()
        self.server._exchanges.discard(self)
        if not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            # A body, a pipelined request, or a flood after its 431: dropped, and cut when it
            # goes on (the answer has been sent; this only lets a normal client read it).
            self._dropped += len(data)
            if self._dropped > self.limits.head_bytes:
                self.abort()
            return
        self.head += data[: self.limits.head_bytes - len(self.head)]
        while (end := self.head.find(b"\n", self._scanned)) >= 0:
            size = end - self._scanned
            blank = size == 0 or (size == 1 and self.head[self._scanned] == 0x0D)  # \r\n
            self._scanned = end + 1
            if blank and self._lines > 0:
                self._serve()
                return
            self._lines += 1
            if self._lines - 1 > self.limits.header_lines:
                self._refuse(f"too many header lines: at most {self.limits.header_lines}")
                return
        if len(self.head) >= self.limits.head_bytes:
            self._refuse(f"request head too large: at most {self.limits.head_bytes} bytes")

    def eof_received(self) -> bool | None:
        if not self._answered:
            self._finish(_response(HTTPStatus.BAD_REQUEST, _TEXT, b"incomplete request\n"))
        return None  # the transport closes

    def abort(self) -> None:
        """Cut the connection now (what is unsent is dropped)."""
        if self._transport is not None:
            self._transport.abort()

    def _serve(self) -> None:
        request_line, *fields = [
            line.removesuffix(b"\r") for line in bytes(self.head[: self._scanned]).split(b"\n")
        ]
        headers: dict[str, str] = {}
        for field in fields:
            name, _, value = field.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        status, content_type, body = self.server._answer(request_line, headers)
        head_only = request_line.split(b" ", 1)[0] == b"HEAD"
        self._finish(_response(status, content_type, body, head_only=head_only))

    def _refuse(self, why: str) -> None:
        status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
        self._finish(_response(status, _TEXT, f"{why}\n".encode()))

    def _finish(self, response: bytes) -> None:
        """Send the answer and end the sending side; the client's close ends the exchange."""
        assert self._transport is not None
        self._answered = True
        self.head = bytearray()
        self._transport.write(response)
        if self._transport.can_write_eof():
            self._transport.write_eof()
        else:
            self._transport.close()

    def _expire(self) -> None:
        assert self._transport is not None
        if self._answered or self._transport.get_write_buffer_size():
            log.debug(
                "metrics: a client took over %g s to take its answer: cut", self.limits.request_s
            )
            self._transport.abort()
            return
        log.debug("metrics: a request not complete within %g s: cut", self.limits.request_s)
        self._answered = True
        self.head = bytearray()
        self._transport.write(_response(HTTPStatus.REQUEST_TIMEOUT, _TEXT, b"request timeout\n"))
        if self._transport.get_write_buffer_size():
            self._transport.abort()
        else:
            self._transport.close()
