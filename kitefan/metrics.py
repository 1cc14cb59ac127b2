"""Prometheus metrics of a running stream: ``kitefan stream --metrics HOST:PORT``.

The numbers are the feed's own stats, read when Prometheus scrapes (a custom collector over
``feed.stats()``), so there is no second set of counters to drift from what ``kitefan stats``
shows. The exposition is written by ``prometheus_client``, the ecosystem's own client library,
which negotiates the format from the scraper's ``Accept`` header (the classic text format by
default, OpenMetrics when asked).

The endpoint is a small HTTP/1.1 server on the stream's own event loop (not the library's
threaded server): ``GET /metrics`` answers the exposition, anything else 404 (405 for other
methods). It binds loopback unless told otherwise; a host beyond loopback is allowed only when
given explicitly, and the caller is told (:func:`is_loopback`).

Metrics, labelled ``key`` (the config id) and ``connection`` (0, 1 or 2):

* counters: ``kitefan_ticks_total``, ``kitefan_frames_total``, ``kitefan_bytes_total``,
  ``kitefan_heartbeats_total``, ``kitefan_reconnects_total``, ``kitefan_dropped_ticks_total``,
  ``kitefan_decode_errors_total``, ``kitefan_skipped_packets_total``,
  ``kitefan_server_errors_total``; ``kitefan_order_updates_total`` (``key`` only, each update
  once);
* gauges: ``kitefan_connection_up``, ``kitefan_symbols`` (also ``mode``),
  ``kitefan_never_ticked_symbols``, ``kitefan_last_frame_age_seconds``,
  ``kitefan_connection_uptime_seconds``, ``kitefan_exchange_delay_seconds`` (also ``quantile``,
  whole seconds), ``kitefan_key_state`` (``key``, ``state``: 1 for the key's state, 0 for the
  others), ``kitefan_uptime_seconds`` (no labels);
* while the stream publishes to Redis (``--publish``), labelled ``stream``: the counters
  ``kitefan_publish_entries_total``, ``kitefan_publish_ticks_total``,
  ``kitefan_publish_dropped_ticks_total``, ``kitefan_publish_dropped_events_total``,
  ``kitefan_publish_reconnects_total``, and the gauges ``kitefan_publish_up`` and
  ``kitefan_publish_buffered_bytes``.

Plus the client library's standard ``process_*`` and ``python_*`` metrics of the stream process.

Owns: ``FeedCollector``, ``MetricsServer``, ``parse_address``, ``is_loopback``. Must not import
rich, typer or the manager (it reads a stats callable).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from kitefan.events import ConnState, KeyState
from kitefan.models import Mode
from kitefan.stats import ConnectionStats, FeedStats, PublishStats

__all__ = [
    "DEFAULT_HOST",
    "FeedCollector",
    "MetricsServer",
    "is_loopback",
    "parse_address",
]

log = logging.getLogger(__name__)

#: The host ``--metrics PORT`` binds.
DEFAULT_HOST = "127.0.0.1"

_HEADER_LIMIT = 16 * 1024
_READ_TIMEOUT_S = 10.0
_LABELS = ["key", "connection"]

# name, help, the ConnectionStats field
_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("kitefan_ticks", "Ticks received (packets decoded).", "ticks"),
    ("kitefan_frames", "WebSocket frames received, heartbeats and texts included.", "frames"),
    ("kitefan_bytes", "Payload bytes received.", "bytes"),
    ("kitefan_heartbeats", "1-byte heartbeat frames received.", "heartbeats"),
    ("kitefan_reconnects", "Times the connection was opened again after being lost.", "reconnects"),
    ("kitefan_dropped_ticks", "Ticks dropped because a consumer fell behind.", "drops"),
    ("kitefan_decode_errors", "Frames or texts that did not decode (skipped).", "decode_errors"),
    ("kitefan_skipped_packets", "Packets of unknown length skipped.", "skipped_packets"),
    ("kitefan_server_errors", "Error texts sent by the server.", "server_errors"),
)


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
        counters = {
            name: CounterMetricFamily(name, help_, labels=_LABELS) for name, help_, _ in _COUNTERS
        }
        orders = CounterMetricFamily(
            "kitefan_order_updates", "Order updates delivered (once per key).", labels=["key"]
        )
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
            orders.add_metric([key.id], key.orders)
            for state in KeyState:
                key_state.add_metric([key.id, state.value], 1.0 if key.state is state else 0.0)
            for conn in key.connections:
                labels = [key.id, str(conn.index)]
                for name, _, field in _COUNTERS:
                    counters[name].add_metric(labels, _field(conn, field))
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
            *counters.values(),
            orders,
            up,
            symbols,
            never,
            age,
            conn_uptime,
            delay,
            key_state,
            uptime,
        ]


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


def _field(conn: ConnectionStats, name: str) -> float:
    value = getattr(conn, name)
    assert isinstance(value, int)
    return float(value)


class MetricsServer:
    """The metrics endpoint: an async context manager serving ``GET /metrics``.

    Entering binds ``host:port`` (so a port in use fails before the feed starts); until
    :meth:`attach` the kitefan metrics are absent. Leaving stops serving.

    Args:
        host: the address to bind (loopback by default).
        port: the port; 0 picks a free one (see :attr:`url`).
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.host = host
        self.port = port
        self.collector = FeedCollector(lambda: None)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

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
        self._server = await asyncio.start_server(
            self._serve_client, self.host, self.port, limit=_HEADER_LIMIT
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self._address = (host, port)

    async def close(self) -> None:
        """Stop serving; end the scrapes in progress."""
        server = self._server
        self._server = None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
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

    # HTTP

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                request_line = await reader.readline()
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
            status, content_type, body = self._answer(request_line, headers)
            head = (
                f"HTTP/1.1 {status.value} {status.phrase}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode("latin-1")
            method = request_line.split(b" ", 1)[0]
            writer.write(head if method == b"HEAD" else head + body)
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(
        self, request_line: bytes, headers: dict[str, str]
    ) -> tuple[HTTPStatus, str, bytes]:
        parts = request_line.decode("latin-1").split()
        text = "text/plain; charset=utf-8"
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return HTTPStatus.BAD_REQUEST, text, b"bad request\n"
        method, target, _ = parts
        path = target.split("?", 1)[0]
        if path != "/metrics":
            return HTTPStatus.NOT_FOUND, text, b"not found: the metrics are at /metrics\n"
        if method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, text, b"use GET\n"
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        return HTTPStatus.OK, content_type, encoder(self.registry)
