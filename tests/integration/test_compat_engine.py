"""kitefan.compat.KiteTicker on kitefan's engine, against the real simulator: what it does that
the official client does not (the watchdog, honouring reconnect=False, subscriptions before
connecting), and the official client's semantics it keeps (retry counting, the 403's texts,
the constructor's limits). The side-by-side run with the official client is in
tests/interop/test_compat.py.

The ticker runs threaded (its engine in its own thread); the test waits on what its callbacks
record, through a condition, never a sleep.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kitefan.compat import KiteTicker
from kitefan.config import Tuning
from kitefan.models import Mode
from kitefan.simulator import Account, Simulator

pytestmark = pytest.mark.integration

ACCOUNT = Account("alpha-api-key-0001", "alpha-access-token-0001", label="alpha")
FAST = Tuning(
    connect_timeout_s=2.0,
    liveness_timeout_s=0.5,
    backoff_initial_s=0.05,
    backoff_max_s=0.1,
    close_timeout_s=1.0,
)
INFY, NIFTY = 408065, 256265


class Recorder:
    """Every callback of a ticker, in order, with a condition to wait on."""

    def __init__(self, ticker: KiteTicker) -> None:
        self.calls: list[list[Any]] = []
        self.ticks: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        ticker.on_connect = lambda ws, response: self.add("connect")
        ticker.on_close = lambda ws, code, reason: self.add("close", code, reason)
        ticker.on_error = lambda ws, code, reason: self.add("error", code, reason)
        ticker.on_reconnect = lambda ws, attempts: self.add("reconnect", attempts)
        ticker.on_noreconnect = lambda ws: self.add("noreconnect")
        ticker.on_ticks = self.on_ticks

    def add(self, *call: Any) -> None:
        with self._changed:
            self.calls.append(list(call))
            self._changed.notify_all()

    def on_ticks(self, ws: KiteTicker, ticks: list[dict[str, Any]]) -> None:
        with self._changed:
            self.ticks.extend(ticks)
            self._changed.notify_all()

    async def until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(predicate, within)

        assert await asyncio.to_thread(wait), self.calls


@asynccontextmanager
async def running(ticker: KiteTicker) -> AsyncIterator[KiteTicker]:
    """The ticker connected in its own thread; stopped, and its thread gone, on leaving (the
    join runs off the loop, which serves the simulator meanwhile)."""
    ticker.connect(threaded=True)
    try:
        yield ticker
    finally:
        ticker.stop()
        assert ticker.websocket_thread is not None
        await asyncio.to_thread(ticker.websocket_thread.join, 5)
        assert not ticker.websocket_thread.is_alive()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_subscriptions_made_before_connecting_are_sent_and_stop_ends_the_thread() -> None:
    async with Simulator([ACCOUNT], seed=1, rate=20.0, heartbeat_interval_s=0.2) as sim:
        ticker = KiteTicker(ACCOUNT.api_key, ACCOUNT.access_token, root=sim.url, tuning=FAST)
        record = Recorder(ticker)
        assert ticker.subscribe([INFY, NIFTY]) is True
        assert ticker.set_mode(ticker.MODE_FULL, [INFY]) is True
        assert not ticker.is_connected()
        async with running(ticker):
            await record.until(lambda: {t["mode"] for t in record.ticks} >= {"full", "quote"})
            assert ticker.is_connected()
            assert sim.connections()[0].subscriptions == {INFY: Mode.FULL, NIFTY: Mode.QUOTE}
            ticker.unsubscribe([NIFTY])
            async with asyncio.timeout(10):
                await sim.wait_until(lambda: sim.connections()[0].subscriptions == {INFY: "full"})
        assert record.calls[0] == ["connect"]
        assert record.calls[-1] == ["close", 1000, ""]
        assert not ticker.is_connected()
        assert ticker.subscribed_tokens == {INFY: "full"}


async def test_a_silent_server_is_noticed_and_the_ticker_reconnects_and_resubscribes() -> None:
    # The official client pings, and the server answers pings while silent: it never notices.
    async with Simulator([ACCOUNT], seed=1, rate=20.0, heartbeat_interval_s=0.2) as sim:
        ticker = KiteTicker(ACCOUNT.api_key, ACCOUNT.access_token, root=sim.url, tuning=FAST)
        record = Recorder(ticker)
        ticker.set_mode(ticker.MODE_LTP, [INFY])
        async with running(ticker):
            await record.until(lambda: ["connect"] in record.calls)
            sim.set_silent(True)
            await record.until(lambda: ["close", 1006, "no frame for 0.5 s"] in record.calls)
            sim.set_silent(False)
            await record.until(lambda: record.calls.count(["connect"]) == 2)
            async with asyncio.timeout(10):
                await sim.wait_until(
                    lambda: [c.subscriptions for c in sim.connections()] == [{INFY: "ltp"}]
                )
        assert record.calls[:4] == [
            ["connect"],
            ["error", 1006, "no frame for 0.5 s"],
            ["close", 1006, "no frame for 0.5 s"],
            ["connect"],
        ]


async def test_reconnect_false_is_honoured() -> None:
    async with Simulator([ACCOUNT], seed=1, rate=20.0, heartbeat_interval_s=0.2) as sim:
        ticker = KiteTicker(
            ACCOUNT.api_key, ACCOUNT.access_token, root=sim.url, reconnect=False, tuning=FAST
        )
        record = Recorder(ticker)
        async with running(ticker):
            await record.until(lambda: ["connect"] in record.calls)
            await sim.drop_connections()
            await record.until(lambda: any(c[0] == "close" for c in record.calls))
            assert not ticker.is_connected()
            assert sim.counters.connections_opened == 1
        assert record.calls == [
            ["connect"],
            ["error", 1006, "dropped without a close frame"],
            ["close", 1006, "dropped without a close frame"],
        ]


async def test_attempts_are_counted_as_the_official_client_counts_them() -> None:
    ticker = KiteTicker(
        ACCOUNT.api_key,
        ACCOUNT.access_token,
        root=f"ws://127.0.0.1:{closed_port()}",
        reconnect_max_tries=2,
        tuning=FAST,
    )
    record = Recorder(ticker)
    async with running(ticker):
        await record.until(lambda: ["noreconnect"] in record.calls)
    # No on_error nor on_close: no socket ever opened (the official client's
    # clientConnectionFailed); on_reconnect from the second failure on, then on_noreconnect.
    assert record.calls == [["reconnect", 1], ["reconnect", 2], ["noreconnect"]]


async def test_a_refused_token_reaches_on_error_and_on_close_as_the_official_client_says_it() -> (
    None
):
    async with Simulator([ACCOUNT]) as sim:
        ticker = KiteTicker(ACCOUNT.api_key, "not-the-token", root=sim.url, tuning=FAST)
        record = Recorder(ticker)
        async with running(ticker):
            await record.until(lambda: len(record.calls) == 2)
        assert sim.refusals() == {403: 1}
    text = "WebSocket connection upgrade failed (403 - Forbidden)"
    assert record.calls == [["error", 1006, text], ["close", 1006, text]]


async def test_a_bug_in_kitefan_restarts_the_connection_and_a_callbacks_error_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    opened = KiteTicker._opened
    bugs = [KeyError("a bug in kitefan")]

    def buggy(self: KiteTicker, response: Any) -> None:
        if bugs:
            raise bugs.pop()
        opened(self, response)

    monkeypatch.setattr(KiteTicker, "_opened", buggy)
    async with Simulator([ACCOUNT], seed=1, rate=20.0, heartbeat_interval_s=0.2) as sim:
        ticker = KiteTicker(ACCOUNT.api_key, ACCOUNT.access_token, root=sim.url, tuning=FAST)
        record = Recorder(ticker)
        ticker.on_open = lambda ws: 1 / 0
        ticker.subscribe([INFY])
        async with running(ticker):
            await record.until(lambda: ["connect"] in record.calls and bool(record.ticks))
        assert sim.counters.connections_opened == 2
    assert record.calls[:3] == [
        ["error", 1006, "dropped without a close frame"],
        ["close", 1006, "dropped without a close frame"],
        ["connect"],
    ]
    messages = [r.getMessage() for r in caplog.records if r.name == "kitefan.compat"]
    assert messages[:2] == [
        "internal error (KeyError) in kitefan; restarting the connection",
        "the on_open callback raised",
    ]


def test_the_constructor_keeps_the_official_limits(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "kitefan.compat"):
        ticker = KiteTicker("k" * 16, "t" * 32, reconnect_max_tries=500, reconnect_max_delay=1)
    assert (ticker.reconnect_max_tries, ticker.reconnect_max_delay) == (300, 5)
    assert [r.getMessage() for r in caplog.records] == [
        "`reconnect_max_tries` can not be more than 300. Setting to highest possible value - 300.",
        "`reconnect_max_delay` can not be less than 5. Setting to lowest possible value - 5.",
    ]
    assert ticker.root == "wss://ws.kite.trade"
    assert "t" * 8 not in repr(ticker) and "k" * 8 not in repr(ticker)
    assert repr(ticker) == "KiteTicker(root='wss://ws.kite.trade', connected=False)"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.connect(proxy={"host": "p", "port": 1}), "kitefan takes its proxy from"),
        (lambda t: t.connect(disable_ssl_verification=True), "kitefan always verifies TLS"),
        (lambda t: t.set_mode("fast", [1]), "'fast' is not a valid Mode"),
        (lambda t: t.subscribe(["NSE:INFY"]), "instrument tokens are integers, not 'NSE:INFY'"),
    ],
)
def test_what_kitefan_does_not_take_is_refused_at_once(
    call: Callable[[KiteTicker], object], message: str
) -> None:
    ticker = KiteTicker("k" * 16, "t" * 32)
    with pytest.raises(ValueError, match=f"^{message}"):
        call(ticker)
    assert ticker.subscribed_tokens == {}
