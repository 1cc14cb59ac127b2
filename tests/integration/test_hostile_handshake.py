"""Handshakes and frames kitefan cannot use: a redirecting handshake and a text frame that is not
UTF-8 (against the real simulator), a url it cannot use and a broken proxy setting (no server), a
proxy answering with a redirect and a server that is no WebSocket server (stand-ins: the
simulator cannot be either).

Each is a failed attempt or a lost socket of that one connection (a status that says what
happened, then the backoff), never the end of the stream, and no output carries the api key or
the access token (every secret here contains ``SENTINEL``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import pytest
from streams import SENTINEL, account, environment, kitefan, write_config

from kitefan.config import AppConfig, Credential, KeyConfig, Strategy, SymbolSpec, Tuning
from kitefan.events import Event, StatusEvent
from kitefan.manager import EventStream, FeedManager
from kitefan.models import Mode
from kitefan.simulator import Simulator

pytestmark = pytest.mark.integration


class FastTuning(TypedDict):
    """The tuning of these tests: for ``Tuning(**FAST)`` and a config file's ``[tuning]``."""

    backoff_initial_s: float
    backoff_max_s: float
    connect_timeout_s: float


FAST = FastTuning(backoff_initial_s=0.05, backoff_max_s=0.2, connect_timeout_s=2.0)
TOKENS = [(1000 + i) << 8 | 1 for i in range(5)]
NO_REDIRECTS = "kitefan does not follow redirects; check the url"


_NEXT_TRY = re.compile(r"; next try in \d+\.\d s$")


def tried(message: str) -> str:
    """A failed attempt's status without the "; next try in N.N s" that every one ends with."""
    assert _NEXT_TRY.search(message), message
    return _NEXT_TRY.sub("", message)


def records(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def config(url: str) -> AppConfig:
    alpha = account("alpha")
    return AppConfig(
        source="<test>",
        url=url,
        strategy=Strategy.ROUND_ROBIN,
        mode=Mode.QUOTE,
        max_connections_per_key=1,
        max_symbols_per_connection=3000,
        keys=(KeyConfig("alpha", Credential(alpha.api_key, alpha.access_token)),),
        symbols=tuple(SymbolSpec(t, str(t), Mode.QUOTE) for t in TOKENS),
        tuning=Tuning(**FAST),
    )


async def statuses(
    stream: EventStream[Event], match: Callable[[StatusEvent], bool], count: int
) -> list[StatusEvent]:
    """The first ``count`` status events that ``match``."""
    found: list[StatusEvent] = []
    async with asyncio.timeout(10):
        async for event in stream:
            if isinstance(event, StatusEvent) and match(event):
                found.append(event)
                if len(found) == count:
                    return found
    raise AssertionError("the stream ended")


@pytest.mark.parametrize(
    ("status", "location", "shown"),
    [
        (302, "http://127.0.0.1:9/ticker", "http://127.0.0.1:9/ticker"),
        (301, "#x", "#x"),
        (
            307,
            f"ws://127.0.0.1:9/?api_key={account('alpha').api_key}"
            f"&access_token={account('alpha').access_token}",
            "ws://127.0.0.1:9/?api_key=…&access_token=…",
        ),
    ],
    ids=["http", "fragment", "echoes-the-credentials"],
)
async def test_a_redirecting_handshake_is_a_failed_attempt_of_the_stream(
    tmp_path: Path, status: int, location: str, shown: str
) -> None:
    async with Simulator([account("alpha")], heartbeat_interval_s=0.2) as sim:
        sim.set_redirect(status, location)
        path = write_config(
            tmp_path / "kitefan.toml", sim.url, quote=TOKENS, keys=["alpha"], tuning=FAST
        )
        code, out, err = await kitefan(
            "stream",
            "--config",
            str(path),
            "--format",
            "jsonl",
            "--duration",
            "2",
            env=environment(tmp_path),
        )
    assert code == 0
    attempts = [r for r in records(out) if r["type"] == "status"]
    expected = f"attempt failed: the server redirected to {shown} (HTTP {status}): {NO_REDIRECTS}"
    assert {(r["key"], r["state"], tried(r["message"])) for r in attempts} == {
        ("alpha", "connecting", expected)
    }
    per_connection = Counter(r["connection"] for r in attempts)
    assert min(per_connection.values()) >= 2  # each tried again, after its backoff
    # Every status is an answer the simulator gave; an answer still on its way when the stream
    # stopped has none.
    assert len(attempts) <= sim.refusals()[status] <= len(attempts) + len(per_connection)
    # On stderr: the first failure of each connection, said once (its repeats folded), then
    # the summary.
    lines = err.splitlines()
    assert lines[-1].startswith("kitefan: duration reached after 2.")
    reason = expected.removeprefix("attempt failed: ")
    for index in per_connection:
        first = f"warning: key alpha, connection {index}: cannot connect: {reason}; next try in "
        assert sum(line.startswith(first) for line in lines) == 1, err
    assert SENTINEL not in out + err


async def test_with_debug_the_redirect_logs_its_traceback_without_the_credentials(
    tmp_path: Path,
) -> None:
    alpha = account("alpha")
    echo = f"ws://127.0.0.1:9/?api_key={alpha.api_key}&access_token={alpha.access_token}"
    async with Simulator([alpha], heartbeat_interval_s=0.2) as sim:
        sim.set_redirect(302, echo)
        path = write_config(tmp_path / "kitefan.toml", sim.url, quote=TOKENS, keys=["alpha"])
        code, out, err = await kitefan(
            "stream",
            "--config",
            str(path),
            "--format",
            "jsonl",
            "--duration",
            "1",
            "--debug",
            env=environment(tmp_path),
        )
    assert code == 0
    assert "Traceback (most recent call last)" in err
    assert (
        "websockets.exceptions.InvalidStatus: server rejected WebSocket connection: HTTP 302" in err
    )
    assert "> GET /?api_key=…&access_token=… HTTP/1.1" in err
    assert "< Location: ws://127.0.0.1:9/?api_key=…&access_token=…" in err
    assert SENTINEL not in out + err


async def test_a_connection_tries_again_through_redirects_until_it_is_served() -> None:
    async with Simulator([account("alpha")], heartbeat_interval_s=0.2) as sim:
        sim.set_redirect(308, "wss://127.0.0.1:9/")
        async with FeedManager(config(sim.url)) as feed:
            events = feed.events()
            failed = await statuses(events, lambda e: e.state == "connecting", 2)
            assert [tried(e.message) for e in failed] == [
                f"attempt failed: the server redirected to wss://127.0.0.1:9/ (HTTP 308): "
                f"{NO_REDIRECTS}"
            ] * 2
            sim.set_redirect(None)
            (connected,) = await statuses(events, lambda e: e.state == "connected", 1)
            assert (connected.key, connected.connection, connected.message) == (
                "alpha",
                0,
                "connected",
            )
            async with asyncio.timeout(10):
                await sim.wait_for_subscriptions(len(TOKENS))


async def test_a_redirect_without_a_location_says_so() -> None:
    async with Simulator([account("alpha")], heartbeat_interval_s=0.2) as sim:
        sim.set_redirect(303)
        async with FeedManager(config(sim.url)) as feed:
            (failed,) = await statuses(feed.events(), lambda e: e.state == "connecting", 1)
    assert tried(failed.message) == (
        "attempt failed: the server answered HTTP 303 with no Location; check the url"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ws://127.0.0.1:70000", "port 70000 is out of range; a port is 1 to 65535"),
        ("ws://127.0.0.1:9/#x", 'must not have a fragment: write "ws://127.0.0.1:9/"'),
        (
            "ws://127.0.0.1:9/?uid=1",
            "must not have a query (kitefan adds api_key and access_token itself): "
            'write "ws://127.0.0.1:9/"',
        ),
    ],
    ids=["port", "fragment", "query"],
)
async def test_a_url_kitefan_cannot_use_fails_each_attempt_without_the_credentials(
    url: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    # No server: the url is refused before any socket is opened.
    caplog.set_level(logging.DEBUG, logger="kitefan")
    async with FeedManager(config(url)) as feed:
        failed = await statuses(feed.events(), lambda e: e.state == "connecting", 2)
        assert [tried(e.message) for e in failed] == [f"attempt failed: invalid url: {reason}"] * 2
        assert feed.stats().keys[0].state.value == "connecting"
    assert SENTINEL not in caplog.text


async def test_invalid_utf8_in_a_text_frame_is_reported_as_such_and_reconnected() -> None:
    async with Simulator([account("alpha")], heartbeat_interval_s=0.2) as sim:
        async with FeedManager(config(sim.url)) as feed:
            events = feed.events()
            await statuses(events, lambda e: e.state == "connected", 1)
            assert await sim.send_invalid_utf8() == 1
            reason = "the server sent invalid UTF-8 in a text frame (closed with 1007)"
            (lost,) = await statuses(events, lambda e: e.state == "reconnecting", 1)
            assert lost.message == f"lost: {reason}"
            (back,) = await statuses(events, lambda e: e.state == "connected", 1)
            assert back.gap is not None
            assert back.gap.reason == reason
            assert sorted(back.gap.tokens) == TOKENS
        assert sim.close_codes()[1007] == 1


async def test_a_proxy_answering_with_a_redirect_is_a_failed_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The simulator cannot be a proxy (websockets' server reads only GET requests): a stand-in
    # answers the CONNECT with a redirect.
    requests: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: #x\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    proxy = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with proxy:
        port = proxy.sockets[0].getsockname()[1]
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ws_proxy", f"http://127.0.0.1:{port}")
        async with FeedManager(config("ws://127.0.0.1:9")) as feed:
            failed = await statuses(feed.events(), lambda e: e.state == "connecting", 2)
    assert [tried(e.message) for e in failed] == [
        "attempt failed: the proxy refused the connection with HTTP 302"
    ] * 2
    assert requests[0].startswith(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\n")


async def test_an_invalid_proxy_in_the_environment_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kitefan")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ws_proxy", f"ftp://me:{SENTINEL}-proxy-password@127.0.0.1:1")
    async with FeedManager(config("ws://127.0.0.1:9")) as feed:
        (failed,) = await statuses(feed.events(), lambda e: e.state == "connecting", 1)
    assert tried(failed.message) == (
        "attempt failed: invalid proxy in the environment: scheme ftp isn't supported"
    )
    assert "InvalidProxy" in caplog.text  # the traceback, for --debug
    assert SENTINEL not in caplog.text


def echo_upgrade(request_line: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + request_line + b"\r\n"
        b"Connection: Upgrade\r\n\r\n"
    )


def not_http(request_line: bytes) -> bytes:
    return b"SSH-2.0-OpenSSH_9.6 " + request_line + b"\r\n"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            echo_upgrade,
            "invalid handshake answer: invalid Upgrade header: expected comma at 4 in "
            "GET /?api_key=…&access_token=… HTTP/1.1",
        ),
        (
            not_http,
            "not a WebSocket handshake answer: did not receive a valid HTTP response "
            "(unsupported protocol; expected HTTP/1.1: SSH-2.0-OpenSSH_9.6 "
            "GET /?api_key=…&access_token=… HTTP/1.1)",
        ),
    ],
    ids=["bad-upgrade-header", "not-http"],
)
async def test_an_odd_handshake_answer_echoing_the_request_is_a_masked_failed_attempt(
    answer: Callable[[bytes], bytes], reason: str
) -> None:
    # Not the simulator: a server that is not a WebSocket server at all, echoing the request
    # line (and so the credentials) into its answer.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        writer.write(answer(request.split(b"\r\n", 1)[0]))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        async with FeedManager(config(f"ws://127.0.0.1:{port}")) as feed:
            failed = await statuses(feed.events(), lambda e: e.state == "connecting", 2)
    assert [tried(e.message) for e in failed] == [f"attempt failed: {reason}"] * 2
