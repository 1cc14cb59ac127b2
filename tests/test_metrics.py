"""The metrics endpoint: address parsing, the collector's exact figures, and the HTTP answers."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from polling import eventually
from prometheus_client.parser import text_string_to_metric_families

from kitefan.events import ConnState, KeyState
from kitefan.metrics import (
    DEFAULT_HOST,
    HttpLimits,
    MetricsServer,
    is_loopback,
    parse_address,
)
from kitefan.stats import ConnectionStats, FeedStats, KeyStats


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("9108", (DEFAULT_HOST, 9108)),
        (":9108", (DEFAULT_HOST, 9108)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("localhost:9108", ("localhost", 9108)),
        ("0.0.0.0:9108", ("0.0.0.0", 9108)),
        ("[::1]:9108", ("::1", 9108)),
    ],
)
def test_addresses(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected HOST:PORT with a port of 0-65535, got ''"),
        ("host:http", "expected HOST:PORT with a port of 0-65535, got 'host:http'"),
        ("127.0.0.1:70000", "expected HOST:PORT with a port of 0-65535, got '127.0.0.1:70000'"),
        ("::1:9108", "expected HOST:PORT (an IPv6 host in brackets: [::1]:9108), got '::1:9108'"),
    ],
)
def test_bad_addresses(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_address(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def connection(index: int, **changes: object) -> ConnectionStats:
    values: dict[str, object] = {
        "index": index,
        "state": ConnState.CONNECTED,
        "symbols": 5,
        "symbols_by_mode": {"ltp": 1, "quote": 3, "full": 1},
        "frames": 40,
        "ticks": 120,
        "bytes": 9000,
        "ticks_per_s": 12.0,
        "heartbeats": 4,
        "skipped_packets": 1,
        "decode_errors": 2,
        "server_errors": 3,
        "reconnects": 5,
        "drops": 6,
        "orders": 7,
        "last_gap": None,
        "last_frame_age_s": 0.5,
        "uptime_s": 60.0,
        "never_ticked": 2,
        "exchange_delay_p50_s": 1,
        "exchange_delay_p99_s": 3,
        "internal_errors": 8,
    }
    values.update(changes)
    return ConnectionStats(**values)  # type: ignore[arg-type]  # the fields given, by name


STATS = FeedStats(
    keys=(
        KeyStats("alpha", KeyState.CONNECTED, (connection(0), connection(2, ticks=7)), orders=9),
        KeyStats(
            "bravo",
            KeyState.AUTH_FAILED,
            (
                connection(
                    0,
                    state=ConnState.AUTH_FAILED,
                    last_frame_age_s=None,
                    uptime_s=None,
                    exchange_delay_p50_s=None,
                    exchange_delay_p99_s=None,
                ),
            ),
            orders=0,
        ),
    ),
    updated_at=1_700_000_000.0,
    uptime_s=300.0,
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("kitefan_")
    }


def metric_types(text: str) -> dict[str, str]:
    return {
        family.name: family.type
        for family in text_string_to_metric_families(text)
        if family.name.startswith("kitefan_")
    }


async def scrape(url: str, method: str = "GET", path: str = "/metrics") -> tuple[int, str, str]:
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(10):
        response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.decode().partition("\r\n\r\n")
    status = int(head.split()[1])
    content_type = next(
        line.split(":", 1)[1].strip()
        for line in head.splitlines()
        if line.lower().startswith("content-type:")
    )
    return status, content_type, body


async def test_the_endpoint_serves_every_metric_of_the_stats_exactly() -> None:
    async with MetricsServer("127.0.0.1", 0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        status, _, before = await scrape(server.url)
        assert status == 200
        assert not samples(before)  # no feed yet: only the process metrics
        server.attach(lambda: STATS)
        status, content_type, text = await scrape(server.url)
    assert status == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert "process_resident_memory_bytes" in text
    types = metric_types(text)
    assert types == {
        "kitefan_ticks": "counter",
        "kitefan_frames": "counter",
        "kitefan_bytes": "counter",
        "kitefan_heartbeats": "counter",
        "kitefan_reconnects": "counter",
        "kitefan_dropped_ticks": "counter",
        "kitefan_decode_errors": "counter",
        "kitefan_skipped_packets": "counter",
        "kitefan_server_errors": "counter",
        "kitefan_internal_errors": "counter",
        "kitefan_order_updates": "counter",
        "kitefan_connection_up": "gauge",
        "kitefan_symbols": "gauge",
        "kitefan_never_ticked_symbols": "gauge",
        "kitefan_last_frame_age_seconds": "gauge",
        "kitefan_connection_uptime_seconds": "gauge",
        "kitefan_exchange_delay_seconds": "gauge",
        "kitefan_key_state": "gauge",
        "kitefan_uptime_seconds": "gauge",
    }
    got = samples(text)

    def at(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    alpha0 = {"key": "alpha", "connection": "0"}
    assert at("kitefan_ticks_total", **alpha0) == 120
    assert at("kitefan_ticks_total", key="alpha", connection="2") == 7
    for name, value in [
        ("kitefan_frames_total", 40),
        ("kitefan_bytes_total", 9000),
        ("kitefan_heartbeats_total", 4),
        ("kitefan_skipped_packets_total", 1),
        ("kitefan_decode_errors_total", 2),
        ("kitefan_server_errors_total", 3),
        ("kitefan_internal_errors_total", 8),
        ("kitefan_reconnects_total", 5),
        ("kitefan_dropped_ticks_total", 6),
        ("kitefan_never_ticked_symbols", 2),
        ("kitefan_last_frame_age_seconds", 0.5),
        ("kitefan_connection_uptime_seconds", 60),
        ("kitefan_connection_up", 1),
    ]:
        assert at(name, **alpha0) == value, name
    assert at("kitefan_order_updates_total", key="alpha") == 9
    assert [at("kitefan_symbols", **alpha0, mode=m) for m in ("ltp", "quote", "full")] == [1, 3, 1]
    assert at("kitefan_exchange_delay_seconds", **alpha0, quantile="0.5") == 1
    assert at("kitefan_exchange_delay_seconds", **alpha0, quantile="0.99") == 3
    assert at("kitefan_connection_up", key="bravo", connection="0") == 0
    assert {
        state.value: at("kitefan_key_state", key="bravo", state=state.value) for state in KeyState
    } == {state.value: 1.0 if state is KeyState.AUTH_FAILED else 0.0 for state in KeyState}
    assert at("kitefan_uptime_seconds") == 300
    # What is unknown is absent, not zero.
    bravo0 = (("connection", "0"), ("key", "bravo"))
    for name in ("kitefan_last_frame_age_seconds", "kitefan_connection_uptime_seconds"):
        assert (name, bravo0) not in got
    assert not [k for k in got if k[0] == "kitefan_exchange_delay_seconds" and "bravo" in str(k)]


async def test_other_paths_and_methods_are_refused() -> None:
    async with MetricsServer("127.0.0.1", 0) as server:
        assert (await scrape(server.url, path="/"))[0] == 404
        assert (await scrape(server.url, path="/metricsx"))[0] == 404
        assert (await scrape(server.url, method="POST"))[0] == 405
        status, _, body = await scrape(server.url, method="HEAD")
        assert (status, body) == (200, "")
        assert (await scrape(server.url, path="/metrics?x=1"))[0] == 200


# What one client may cost ------------------------------------------------------------------------


def address(server: MetricsServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    return host, int(port)


async def exchange(server: MetricsServer, data: bytes) -> bytes:
    """Send ``data`` as it is; everything answered until the server closed."""
    reader, writer = await asyncio.open_connection(*address(server))
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def refusal(status: str, body: str) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode()


def head(size: int) -> bytes:
    """A GET /metrics request head of exactly ``size`` bytes."""
    start, end = b"GET /metrics HTTP/1.1\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


def test_the_limits_are_the_documented_ones() -> None:
    assert MetricsServer().limits == HttpLimits(
        head_bytes=8192, header_lines=50, connections=16, request_s=5.0
    )


async def test_a_head_over_8_kib_is_431_and_closed() -> None:
    async with MetricsServer("127.0.0.1", 0) as server:
        served = await exchange(server, head(8192))
        assert served.startswith(b"HTTP/1.1 200 OK\r\n")
        assert await exchange(server, head(8193)) == refusal(
            "431 Request Header Fields Too Large", "request head too large: at most 8192 bytes\n"
        )
        # The request line alone over the limit: the same.
        assert await exchange(server, b"GET /" + b"m" * 9000 + b" HTTP/1.1\r\n\r\n") == refusal(
            "431 Request Header Fields Too Large", "request head too large: at most 8192 bytes\n"
        )
        await eventually(lambda: server.connections == 0)
        assert server.buffered_bytes == 0


async def test_more_than_50_header_lines_is_431_and_closed() -> None:
    def request(lines: int) -> bytes:
        fields = b"".join(b"X-%d: 1\r\n" % i for i in range(lines - 1))
        accept = b"Accept: application/openmetrics-text; version=1.0.0\r\n"
        return b"GET /metrics HTTP/1.1\r\n" + fields + accept + b"\r\n"

    async with MetricsServer("127.0.0.1", 0) as server:
        served = await exchange(server, request(50))
        # Every line up to the 50th is read: the last one chose the format.
        assert served.startswith(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; "
        )
        assert served.endswith(b"# EOF\n")
        assert await exchange(server, request(51)) == refusal(
            "431 Request Header Fields Too Large", "too many header lines: at most 50\n"
        )
        # Refused at the 51st line, without waiting for the end of the head.
        assert await exchange(server, request(51)[:-2]) == refusal(
            "431 Request Header Fields Too Large", "too many header lines: at most 50\n"
        )
        # An end of input before the end of the head: 400.
        reader, writer = await asyncio.open_connection(*address(server))
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        writer.write_eof()
        async with asyncio.timeout(10):
            assert await reader.read() == refusal("400 Bad Request", "incomplete request\n")
        writer.close()


async def test_a_flood_of_headers_holds_at_most_the_head_limit_and_is_cut() -> None:
    """The issue's case: headers without end, as one endless line or as endless short lines.
    What the server holds is its own accounting."""
    endless_line = b"f" * 65536
    short_lines = (b"X-Flood: " + b"f" * 1000 + b"\r\n") * 64
    held: list[int] = []

    async def flood(server: MetricsServer, chunk: bytes) -> None:
        _, writer = await asyncio.open_connection(*address(server))
        sent = 0
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nX-Flood: ")
            while sent < 64 * 2**20:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                held.append(server.buffered_bytes)
        except ConnectionError:
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        raise AssertionError(f"sent {sent} bytes of headers and still not cut")

    # No time limit to speak of: the head limit alone must cut them.
    async with MetricsServer("127.0.0.1", 0, limits=HttpLimits(request_s=600)) as server:
        async with asyncio.timeout(30):
            await asyncio.gather(
                *(flood(server, endless_line) for _ in range(8)),
                *(flood(server, short_lines) for _ in range(8)),
            )
        assert held
        assert max(held) <= 16 * 8192
        await eventually(lambda: server.connections == 0)
        assert server.buffered_bytes == 0
        # And it still answers.
        assert (await exchange(server, head(100))).startswith(b"HTTP/1.1 200 OK\r\n")


async def test_a_slow_client_is_cut_after_the_time_per_request() -> None:
    """A slow loris: a header byte every 50 ms, never ending its head. No idle timeout would cut
    it; the time per request does."""
    async with MetricsServer("127.0.0.1", 0, limits=HttpLimits(request_s=0.5)) as server:
        loop = asyncio.get_running_loop()
        started = loop.time()
        reader, writer = await asyncio.open_connection(*address(server))
        answer = asyncio.ensure_future(reader.read())
        writer.write(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        trickled = 0
        async with asyncio.timeout(10):
            with contextlib.suppress(ConnectionError):
                while not answer.done():
                    writer.write(b"s")
                    await writer.drain()
                    trickled += 1
                    await asyncio.wait([answer], timeout=0.05)
            response = await answer
        elapsed = loop.time() - started
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        assert response == refusal("408 Request Timeout", "request timeout\n")
        assert elapsed >= 0.5
        assert trickled >= 5  # it was still sending when it was cut
        await eventually(lambda: server.connections == 0)
        assert (await exchange(server, head(100))).startswith(b"HTTP/1.1 200 OK\r\n")


def open_descriptors() -> int | None:
    """This process's open file descriptors, where /proc says (Linux)."""
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


async def test_connections_over_16_are_refused_at_once_and_hold_no_descriptor() -> None:
    """300 idle connections starved the feed of descriptors; now the port holds at most 16."""
    # Kept idle for as long as the test takes: the cap alone is tested here.
    async with MetricsServer("127.0.0.1", 0, limits=HttpLimits(request_s=600)) as server:
        before = open_descriptors()
        clients = [await asyncio.open_connection(*address(server)) for _ in range(40)]
        answers = [asyncio.ensure_future(reader.read()) for reader, _ in clients]
        await eventually(lambda: sum(a.done() for a in answers) == 24)
        assert server.connections == 16
        refused = refusal("503 Service Unavailable", "too many connections: at most 16 at a time\n")
        assert [a.result() for a in answers if a.done()] == [refused] * 24
        if before is not None:  # the 40 client ends, and the server's 16
            assert open_descriptors() == before + 40 + 16
        # One idle client leaves: a scrape gets its place.
        waiting = [w for (_, w), a in zip(clients, answers, strict=True) if not a.done()]
        waiting[0].close()
        await eventually(lambda: server.connections == 15)
        assert (await exchange(server, head(100))).startswith(b"HTTP/1.1 200 OK\r\n")
        for _, writer in clients:
            writer.close()
        await eventually(lambda: server.connections == 0)
        for answer in answers:
            with contextlib.suppress(ConnectionError):
                await answer
