"""The simulator as a client sees it: a real server on 127.0.0.1, real websockets clients.

Every wait is on a condition under a timeout. The few short windows in which nothing may arrive
(silence, unsubscribe, rate) are the property under test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeGuard, TypeVar, overload
from urllib.parse import quote, urlencode

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
)

from kitefan.codec import (
    ERROR_BAD_TOKENS,
    ERROR_TOO_MANY,
    decode_frame,
    decode_text,
    error_message,
    order_message,
)
from kitefan.errors import CodecError, InstrumentsError
from kitefan.models import Mode, OrderUpdate
from kitefan.simulator import MALFORMED_FRAME, Account, Market, Simulator
from kitefan.simulator.server import INVALID_UTF8_TEXT

pytestmark = pytest.mark.integration

INFY = 408065  # NSE equity
RELIANCE = 738561
NIFTY = 256265  # index
SENSEX = 265  # index
TIMEOUT = 10.0


@pytest.fixture
def alpha(accounts: tuple[Account, Account]) -> Account:
    return accounts[0]


@pytest.fixture
def bravo(accounts: tuple[Account, Account]) -> Account:
    return accounts[1]


def url(sim: Simulator, account: Account, **extra: str) -> str:
    query = urlencode({"api_key": account.api_key, "access_token": account.access_token, **extra})
    return f"{sim.url}/?{query}"


@asynccontextmanager
async def client(sim: Simulator, account: Account) -> AsyncIterator[ClientConnection]:
    async with connect(url(sim, account)) as ws:
        yield ws


async def send(ws: ClientConnection, action: str, value: object) -> None:
    await ws.send(json.dumps({"a": action, "v": value}))


M = TypeVar("M", bytes, str)


@overload
async def next_frame(ws: ClientConnection, accept: Callable[[bytes | str], TypeGuard[M]]) -> M: ...


@overload
async def next_frame(
    ws: ClientConnection, accept: Callable[[bytes | str], bool]
) -> bytes | str: ...


async def next_frame(ws: ClientConnection, accept: Callable[[bytes | str], bool]) -> bytes | str:
    """The next message ``accept`` takes, skipping the others (of the type ``accept`` vouches
    for, when it is a type guard: ``ticks_frame`` gives bytes, ``text_frame`` a str)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            message = await ws.recv()
            if accept(message):
                return message


def ticks_frame(message: bytes | str) -> TypeGuard[bytes]:
    return isinstance(message, bytes) and len(message) > 1


def text_frame(message: bytes | str) -> TypeGuard[str]:
    return isinstance(message, str)


def tokens_in(message: bytes | str) -> set[int]:
    return {t.instrument_token for t in decode_frame(message)} if ticks_frame(message) else set()


async def collect(ws: ClientConnection, seconds: float) -> list[bytes | str]:
    """Everything that arrives within ``seconds`` (the window is what is being tested)."""
    got: list[bytes | str] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                got.append(await ws.recv())
    except TimeoutError:
        return got


async def closing(ws: ClientConnection) -> ConnectionClosed:
    """Read until the connection closes; return how it closed."""
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed


def status_of(raised: pytest.ExceptionInfo[InvalidStatus]) -> int:
    return raised.value.response.status_code


# Subscriptions and modes ------------------------------------------------------------------------


async def test_subscribe_sends_the_cached_tick_of_each_token_at_once_in_quote_mode(
    alpha: Account,
) -> None:
    async with Simulator([alpha], seed=42, rate=0.05) as sim, client(sim, alpha) as ws:
        await send(ws, "subscribe", [INFY, NIFTY])
        frame = await next_frame(ws, ticks_frame)
    fresh = Market(seed=42)  # quote packets carry no timestamp: the initial state is exact
    infy, nifty = fresh.packet(INFY, Mode.QUOTE, 0), fresh.packet(NIFTY, Mode.QUOTE, 0)
    assert frame == b"\x00\x02" + b"\x00\x2c" + infy + b"\x00\x1c" + nifty
    assert [(t.instrument_token, t.kind, t.mode) for t in decode_frame(frame)] == [
        (INFY, 44, Mode.QUOTE),
        (NIFTY, 28, Mode.QUOTE),
    ]


@pytest.mark.parametrize(
    ("mode", "kinds"), [("ltp", {INFY: 8, NIFTY: 8}), ("full", {INFY: 184, NIFTY: 32})]
)
async def test_a_mode_sends_a_fresh_packet_then_only_packets_of_that_mode(
    simulator: Simulator, alpha: Account, mode: str, kinds: dict[int, int]
) -> None:
    async with client(simulator, alpha) as ws:
        await send(ws, "subscribe", [INFY, NIFTY])
        await next_frame(ws, ticks_frame)
        await send(ws, "mode", [mode, [INFY, NIFTY]])
        fresh = await next_frame(ws, lambda m: ticks_frame(m) and len(decode_frame(m)) == 2)
        assert isinstance(fresh, bytes)
        assert {t.instrument_token: t.kind for t in decode_frame(fresh)} == kinds
        for _ in range(10):
            for tick in decode_frame(await next_frame(ws, ticks_frame)):
                assert tick.kind == kinds[tick.instrument_token]
                assert tick.mode == Mode(mode)
    assert simulator.requests.mode_messages == 1


async def test_mode_on_a_token_not_subscribed_subscribes_it(
    simulator: Simulator, alpha: Account
) -> None:
    async with client(simulator, alpha) as ws:
        await send(ws, "mode", ["full", [INFY]])
        frame = await next_frame(ws, ticks_frame)
        assert [(t.instrument_token, t.kind) for t in decode_frame(frame)] == [(INFY, 184)]
        (view,) = simulator.connections(alpha.api_key)
        assert view.subscriptions == {INFY: Mode.FULL}


async def test_unsubscribe_stops_the_ticks_of_that_token(
    simulator: Simulator, alpha: Account
) -> None:
    async with client(simulator, alpha) as ws:
        await send(ws, "subscribe", [INFY])
        await next_frame(ws, lambda m: INFY in tokens_in(m))
        await send(ws, "unsubscribe", [INFY])
        await send(ws, "subscribe", [RELIANCE])
        # Requests are answered in order: after RELIANCE's snapshot, INFY never comes again.
        await next_frame(ws, lambda m: RELIANCE in tokens_in(m))
        later = await collect(ws, 0.5)
        assert any(RELIANCE in tokens_in(m) for m in later)
        assert not any(INFY in tokens_in(m) for m in later)
        assert simulator.connections(alpha.api_key)[0].subscriptions == {RELIANCE: Mode.QUOTE}


async def test_the_3000_limit_counts_duplicates_and_the_connection_stays(alpha: Account) -> None:
    tokens = [((10_000 + i) << 8) | 1 for i in range(2000)]
    async with Simulator([alpha], rate=0.1) as sim, client(sim, alpha) as ws:
        await send(ws, "subscribe", tokens)
        await send(ws, "subscribe", tokens[:1000])  # duplicates: 3000 counted, 2000 tokens
        await sim.wait_until(lambda: sim.requests.subscribe_messages == 2)
        await send(ws, "subscribe", [INFY])
        error = await next_frame(ws, text_frame)
        assert error == '{"type":"error","data":"Can\'t subscribe to more than 3000 instruments."}'
        assert error == error_message(ERROR_TOO_MANY)
        (view,) = sim.connections(alpha.api_key)
        assert (len(view.subscriptions), view.tokens_used) == (2000, 3000)
        assert INFY not in view.subscriptions
        # Still open and working: free room, and the next subscribe is served.
        await send(ws, "unsubscribe", [tokens[-1]])
        await send(ws, "subscribe", [INFY])
        await next_frame(ws, lambda m: INFY in tokens_in(m))


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ('{"a":"subscribe","v":["408065"]}', ERROR_BAD_TOKENS),
        ('{"a":"mode","v":["full",["408065"]]}', ERROR_BAD_TOKENS),
        ('{"a":"subscribe","v":[408065', "Invalid message: not valid JSON"),
        ("hello", "Invalid message: not valid JSON"),
        ('{"a":"mode","v":["fast",[408065]]}', "Invalid message: unknown mode 'fast'"),
    ],
)
async def test_unreadable_requests_get_an_error_text_and_the_connection_stays(
    simulator: Simulator, alpha: Account, message: str, reply: str
) -> None:
    async with client(simulator, alpha) as ws:
        await ws.send(message)
        assert await next_frame(ws, text_frame) == json.dumps(
            {"type": "error", "data": reply}, separators=(",", ":")
        )
        await send(ws, "subscribe", [INFY])
        await next_frame(ws, lambda m: INFY in tokens_in(m))
    assert simulator.requests.invalid_messages == 1


async def test_a_token_on_two_connections_gets_the_same_values(
    simulator: Simulator, alpha: Account, bravo: Account
) -> None:
    async with client(simulator, alpha) as first, client(simulator, bravo) as second:
        for ws in (first, second):
            await send(ws, "mode", ["full", [INFY]])
            await next_frame(ws, ticks_frame)  # the snapshot
        # From the first market step the second sees, both see the same frames, byte for byte.
        seconds = [await next_frame(second, ticks_frame) for _ in range(5)]
        await next_frame(first, lambda m: m == seconds[0])
        firsts = [seconds[0]] + [await next_frame(first, ticks_frame) for _ in range(4)]
        assert firsts == seconds
        assert len(set(seconds)) == 5  # and never the same packet twice in a row


async def test_an_instruments_dump_seeds_starting_prices(alpha: Account, tmp_path: Path) -> None:
    dump = tmp_path / "instruments.csv"
    dump.write_text(
        "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,"
        "lot_size,instrument_type,segment,exchange\n"
        "408065,1594,INFY,INFOSYS,1512.35,,0.0,0.05,1,EQ,NSE,NSE\n"
    )
    async with Simulator([alpha], instruments=dump, rate=0.05) as sim, client(sim, alpha) as ws:
        await send(ws, "subscribe", [INFY])
        (tick,) = decode_frame(await next_frame(ws, ticks_frame))
    assert tick.ohlc is not None
    assert tick.ohlc.close == 1512.35  # the previous close is the dump's last price
    assert 1490 < tick.last_price < 1535


def test_bad_construction_is_refused_without_naming_secrets(alpha: Account, tmp_path: Path) -> None:
    with pytest.raises(InstrumentsError, match="cannot read"):
        Simulator([alpha], instruments=tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="api key of an earlier account") as raised:
        Simulator([alpha, Account(alpha.api_key, "another-token")])
    assert alpha.api_key not in str(raised.value)
    for kwargs in ({"rate": 0.0}, {"heartbeat_interval_s": 0.0}, {"max_connections_per_key": 0}):
        with pytest.raises(ValueError):
            Simulator([alpha], **kwargs)
    with pytest.raises(ValueError, match="non-empty"):
        Account("", "token")
    assert repr(alpha) == "Account(label='alpha')"


# Handshake -----------------------------------------------------------------------------------


async def test_parameters_in_any_order_url_encoded_with_extra_ones_ignored() -> None:
    odd = Account("key+with/odd=chars&", "token with spaces?%", label="odd")
    async with Simulator([odd]) as sim:
        query = (
            f"uid={int(time.time() * 1000)}&access_token={quote(odd.access_token, safe='')}"
            f"&api_key={quote(odd.api_key, safe='')}&x=1"
        )
        async with connect(f"{sim.url}/?{query}") as ws:
            assert await next_frame(ws, lambda m: m == b"\x00") == b"\x00"
            assert [view.label for view in sim.connections(odd.api_key)] == ["odd"]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("api_key=alpha-api-key-0001&access_token=wrong", 403),
        ("api_key=nobody&access_token=alpha-access-token-0001", 403),
        ("access_token=bravo-access-token-0002&api_key=alpha-api-key-0001", 403),  # swapped key
        ("api_key=alpha-api-key-0001", 400),
        ("access_token=alpha-access-token-0001", 400),
        ("api_key=&access_token=alpha-access-token-0001", 400),
        ("", 400),
    ],
)
async def test_bad_credentials_are_refused_before_the_upgrade(
    simulator: Simulator, query: str, status: int
) -> None:
    with pytest.raises(InvalidStatus) as raised:
        async with connect(f"{simulator.url}/?{query}"):
            pass
    assert status_of(raised) == status
    assert simulator.refusals() == {status: 1}
    assert simulator.counters.connections_opened == 0


async def test_another_path_is_not_found(simulator: Simulator, alpha: Account) -> None:
    with pytest.raises(InvalidStatus) as raised:
        async with connect(url(simulator, alpha).replace("/?", "/ticker?")):
            pass
    assert status_of(raised) == 404


async def test_a_fourth_connection_of_a_key_gets_429_until_one_closes(
    simulator: Simulator, alpha: Account, bravo: Account
) -> None:
    first, second, third = [await connect(url(simulator, alpha)) for _ in range(3)]
    try:
        with pytest.raises(InvalidStatus) as raised:
            async with connect(url(simulator, alpha)):
                pass
        assert status_of(raised) == 429
        assert raised.value.response.reason_phrase == "Too Many Requests"
        async with client(simulator, bravo):  # other keys have their own three
            pass
        await first.close()
        await simulator.wait_for_connections(2, alpha.api_key)
        async with client(simulator, alpha):
            assert len(simulator.connections(alpha.api_key)) == 3
    finally:
        for ws in (second, third):
            await ws.close()
    assert simulator.refusals() == {429: 1}


# Liveness ------------------------------------------------------------------------------------


async def test_an_idle_connection_gets_a_one_byte_heartbeat_every_interval(alpha: Account) -> None:
    async with Simulator([alpha], heartbeat_interval_s=0.2) as sim, client(sim, alpha) as ws:
        assert await next_frame(ws, lambda m: True) == b"\x00"
        got = await collect(ws, 1.1)
        (view,) = sim.connections()
        assert set(got) == {b"\x00"}
        # One every 0.2 s of idleness: about 5 in 1.1 s, never more than 6.
        assert 3 <= len(got) <= 6
        assert view.heartbeats_sent in (len(got) + 1, len(got) + 2)  # one may be on its way
        assert view.frames_sent == view.texts_sent == 0


async def test_pings_are_answered(simulator: Simulator, alpha: Account) -> None:
    async with client(simulator, alpha) as ws:
        pong = await ws.ping(b"kitefan")
        async with asyncio.timeout(TIMEOUT):
            latency = await pong
        assert latency >= 0


# Faults --------------------------------------------------------------------------------------


async def test_drop_aborts_without_a_close_frame_and_only_for_that_key(
    simulator: Simulator, alpha: Account, bravo: Account
) -> None:
    async with client(simulator, alpha) as dropped, client(simulator, bravo) as kept:
        await simulator.wait_for_connections(2)
        assert await simulator.drop_connections(alpha.api_key) == 1
        closed = await closing(dropped)
        assert isinstance(closed, ConnectionClosedError)
        assert closed.rcvd is None  # no close frame: 1006
        assert dropped.close_code == 1006
        assert await next_frame(kept, lambda m: m == b"\x00") == b"\x00"
    assert simulator.close_codes()[1006] == 1


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1012, "restart")])
async def test_close_sends_a_close_frame_with_the_code(
    simulator: Simulator, alpha: Account, code: int, reason: str
) -> None:
    async with client(simulator, alpha) as ws:
        await simulator.wait_for_connections(1)
        assert await simulator.close_connections(code, reason) == 1
        closed = await closing(ws)
        assert isinstance(closed, ConnectionClosedOK if code == 1000 else ConnectionClosedError)
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (code, reason)
    assert simulator.connections() == []


async def test_silence_sends_nothing_at_all_then_recovers(
    simulator: Simulator, alpha: Account, bravo: Account
) -> None:
    async with client(simulator, alpha) as ws, client(simulator, bravo) as other:
        await send(ws, "subscribe", [INFY])
        await next_frame(ws, lambda m: INFY in tokens_in(m))
        (view,) = simulator.connections(alpha.api_key)
        simulator.set_silent(True, alpha.api_key)
        sent = view.frames_sent + view.heartbeats_sent + view.texts_sent
        # In flight before the silence, at most; then nothing for over two heartbeat intervals,
        # not even an answer to a new request.
        await send(ws, "subscribe", [RELIANCE])
        got = await collect(ws, 0.6)
        assert view.frames_sent + view.heartbeats_sent + view.texts_sent == sent
        assert not any(RELIANCE in tokens_in(m) for m in got)
        assert view.subscriptions == {INFY: Mode.QUOTE, RELIANCE: Mode.QUOTE}
        # Other keys go on, and a new connection of the silent key hears nothing either.
        assert await next_frame(other, lambda m: m == b"\x00") == b"\x00"
        async with client(simulator, alpha) as late:
            assert await collect(late, 0.5) == []
        simulator.set_silent(False, alpha.api_key)
        await next_frame(ws, lambda m: RELIANCE in tokens_in(m))


async def test_silence_on_every_key_and_back(simulator: Simulator, alpha: Account) -> None:
    async with client(simulator, alpha) as ws:
        await next_frame(ws, lambda m: m == b"\x00")
        (view,) = simulator.connections()
        simulator.set_silent(True)
        sent = view.heartbeats_sent
        got = await collect(ws, 0.6)
        # Nothing sent since, and nothing received but what was sent before.
        assert view.heartbeats_sent == sent
        assert 1 + len(got) == sent
        simulator.set_silent(False)
        assert await next_frame(ws, lambda m: True) == b"\x00"


async def test_an_expired_token_gets_403_until_a_fresh_one_is_set(
    simulator: Simulator, alpha: Account
) -> None:
    async with client(simulator, alpha) as ws:
        await simulator.wait_for_connections(1)
        await simulator.expire_token(alpha.api_key)
        assert isinstance(await closing(ws), ConnectionClosedError)
        assert ws.close_code == 1006
    with pytest.raises(InvalidStatus) as raised:
        async with client(simulator, alpha):
            pass
    assert status_of(raised) == 403
    simulator.set_token(alpha.api_key, "alpha-fresh-token-0003")
    fresh = Account(alpha.api_key, "alpha-fresh-token-0003")
    async with client(simulator, fresh) as ws:
        assert await next_frame(ws, lambda m: m == b"\x00") == b"\x00"
    with pytest.raises(InvalidStatus):
        async with client(simulator, alpha):
            pass
    assert simulator.refusals() == {403: 2}


async def test_expiring_without_drop_keeps_open_connections(
    simulator: Simulator, alpha: Account
) -> None:
    async with client(simulator, alpha) as ws:
        await simulator.wait_for_connections(1)
        await simulator.expire_token(alpha.api_key, drop=False)
        assert await next_frame(ws, lambda m: m == b"\x00") == b"\x00"
        with pytest.raises(InvalidStatus):
            async with client(simulator, alpha):
                pass


async def handshake_answer(sim: Simulator, account: Account) -> bytes:
    """The head of the server's answer to a WebSocket upgrade request, read raw (a websockets
    client would follow a redirect)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        query = urlencode({"api_key": account.api_key, "access_token": account.access_token})
        writer.write(
            f"GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1:{sim.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        async with asyncio.timeout(TIMEOUT):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


async def test_a_redirect_answers_every_handshake_until_lifted(
    simulator: Simulator, alpha: Account
) -> None:
    async with client(simulator, alpha) as ws:
        await simulator.wait_for_connections(1)
        simulator.set_redirect(307, "ws://127.0.0.1:9/elsewhere")
        head = await handshake_answer(simulator, alpha)
        assert head.startswith(b"HTTP/1.1 307 Temporary Redirect\r\n")
        assert b"\r\nLocation: ws://127.0.0.1:9/elsewhere\r\n" in head
        simulator.set_redirect(302)
        head = await handshake_answer(simulator, alpha)
        assert head.startswith(b"HTTP/1.1 302 Found\r\n")
        assert b"Location" not in head
        # The open connection is left alone.
        assert await next_frame(ws, lambda m: m == b"\x00") == b"\x00"
        simulator.set_redirect(None)
        async with client(simulator, alpha):
            await simulator.wait_for_connections(2)
    assert simulator.refusals() == {307: 1, 302: 1}
    for status, location, message in (
        (200, None, "a redirect is HTTP 300 to 305, 307 or 308, not 200"),
        (306, None, "a redirect is HTTP 300 to 305, 307 or 308, not 306"),
        (301, "ws://x/\r\nSet-Cookie: a=b", "a Location cannot have a line break"),
    ):
        with pytest.raises(ValueError) as raised:
            simulator.set_redirect(status, location)
        assert str(raised.value) == message


async def test_a_text_frame_of_invalid_utf8_makes_a_client_close_with_1007(
    simulator: Simulator, alpha: Account
) -> None:
    async with client(simulator, alpha) as ws:
        await simulator.wait_for_connections(1)
        assert await simulator.send_invalid_utf8() == 1
        closed = await closing(ws)
    assert isinstance(closed, ConnectionClosedError)
    assert closed.sent is not None
    assert closed.sent.code == 1007
    async with asyncio.timeout(TIMEOUT):
        await simulator.wait_until(lambda: simulator.close_codes() == {1007: 1})
    with pytest.raises(UnicodeDecodeError):
        INVALID_UTF8_TEXT.decode()


async def test_a_delay_holds_every_frame_back(simulator: Simulator, alpha: Account) -> None:
    async with client(simulator, alpha) as ws:
        simulator.set_delay(0.4)
        sent_at = time.monotonic()
        await send(ws, "subscribe", [INFY])
        await next_frame(ws, lambda m: INFY in tokens_in(m))
        assert time.monotonic() - sent_at >= 0.4
        simulator.set_delay(0)


async def test_a_malformed_frame_fails_to_decode_and_the_connection_stays(
    simulator: Simulator, alpha: Account
) -> None:
    async with client(simulator, alpha) as ws:
        await simulator.wait_for_connections(1)
        assert await simulator.send_malformed() == 1
        frame = await next_frame(ws, lambda m: m != b"\x00")
        assert frame == MALFORMED_FRAME
        assert isinstance(frame, bytes)
        with pytest.raises(CodecError) as raised:
            decode_frame(frame)
        assert raised.value.offset == 14
        assert await next_frame(ws, lambda m: m == b"\x00") == b"\x00"
    assert simulator.counters.malformed_sent == 1


async def test_an_order_update_reaches_every_connection_of_its_key_only(
    simulator: Simulator, alpha: Account, bravo: Account
) -> None:
    async with (
        client(simulator, alpha) as one,
        client(simulator, alpha) as two,
        client(simulator, bravo) as other,
    ):
        await simulator.wait_for_connections(3)
        data = await simulator.push_order(alpha.api_key)
        for ws in (one, two):
            text = await next_frame(ws, text_frame)
            assert text == order_message(data)
            update = decode_text(text)
            assert isinstance(update, OrderUpdate)
            assert update.order_id == data["order_id"]
        custom = {"order_id": "B1", "status": "OPEN"}
        assert await simulator.push_order(bravo.api_key, custom) == custom
        # The first text the other key sees is its own order, not the first key's.
        expected = '{"type":"order","data":{"order_id":"B1","status":"OPEN"}}'
        assert await next_frame(other, text_frame) == expected
        assert [v.orders_sent for v in simulator.connections()] == [1, 1, 1]


async def test_orders_can_come_on_their_own(alpha: Account) -> None:
    async with Simulator([alpha], order_interval_s=0.2) as sim, client(sim, alpha) as ws:
        first = decode_text(await next_frame(ws, text_frame))
        second = decode_text(await next_frame(ws, text_frame))
        assert isinstance(first, OrderUpdate)
        assert isinstance(second, OrderUpdate)
        assert first.order_id != second.order_id


async def test_fault_controls_refuse_an_unknown_key_without_naming_it(
    simulator: Simulator,
) -> None:
    secret = "secret-key-never-shown"
    for call in (
        simulator.drop_connections(secret),
        simulator.close_connections(api_key=secret),
        simulator.expire_token(secret),
        simulator.send_malformed(secret),
        simulator.push_order(secret),
    ):
        with pytest.raises(KeyError) as raised:
            await call
        assert secret not in str(raised.value)
    for sync_call in (
        lambda: simulator.set_silent(True, secret),
        lambda: simulator.set_token(secret, "x"),
        lambda: simulator.connections(secret),
    ):
        with pytest.raises(KeyError):
            sync_call()


# Rates ---------------------------------------------------------------------------------------


async def test_no_token_gets_more_than_rate_packets_a_second_nor_a_repeated_one(
    alpha: Account,
) -> None:
    rate = 5
    tokens = [((20_000 + i) << 8) | 1 for i in range(30)] + [NIFTY, SENSEX]
    async with Simulator([alpha], rate=rate) as sim, client(sim, alpha) as ws:
        await send(ws, "mode", ["full", tokens])
        await next_frame(ws, ticks_frame)  # the snapshot
        received = await collect(ws, 2.5)
    per_second: Counter[tuple[int, int]] = Counter()
    last: dict[int, tuple[int, ...]] = {}
    for message in received:
        for tick in decode_frame(message) if ticks_frame(message) else []:
            assert last.get(tick.instrument_token) != tick.values  # only on a change
            last[tick.instrument_token] = tick.values
            assert tick.exchange_epoch_s is not None  # full packets say when the step was
            per_second[tick.instrument_token, tick.exchange_epoch_s] += 1
    # Counted by the second the market stepped, not by arrival: jitter cannot bunch them up.
    assert max(per_second.values()) <= rate
    assert sum(per_second.values()) >= len(tokens) * rate * 2.5 * 0.25  # and it does tick


async def test_the_maximum_rate_streams_big_frames_of_correct_packets(alpha: Account) -> None:
    tokens = [((30_000 + i) << 8) | 1 for i in range(2000)] + [NIFTY]
    async with Simulator([alpha], rate=None) as sim, client(sim, alpha) as ws:
        await send(ws, "mode", ["full", tokens])
        ticks = 0
        per_token: dict[int, int] = defaultdict(int)
        started = time.monotonic()
        while ticks < 50_000:
            message = await next_frame(ws, ticks_frame)
            assert isinstance(message, bytes)
            assert len(message) <= 256 * 1024
            for tick in decode_frame(message):
                per_token[tick.instrument_token] += 1
                assert tick.kind == (32 if tick.instrument_token == NIFTY else 184)
            ticks += message[0] << 8 | message[1]
        assert set(per_token) == set(tokens)
        assert time.monotonic() - started < TIMEOUT
        # Requests are still served between frames.
        await send(ws, "unsubscribe", tokens[:-1])
        await send(ws, "subscribe", [INFY])
        await next_frame(ws, lambda m: INFY in tokens_in(m))
        for later in await collect(ws, 0.3):
            assert tokens_in(later) <= {NIFTY, INFY}


# Secrets -------------------------------------------------------------------------------------


async def test_no_secret_in_logs_or_reprs(
    simulator: Simulator, alpha: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kitefan.simulator")
    async with client(simulator, alpha) as ws:
        await simulator.wait_for_connections(1)
        await send(ws, "subscribe", [INFY])
        await simulator.push_order(alpha.api_key)
        simulator.set_silent(True, alpha.api_key)
        simulator.set_silent(False, alpha.api_key)
        views = repr(simulator.connections())
    with pytest.raises(InvalidStatus):
        async with connect(url(simulator, Account(alpha.api_key, "wrong-token-xyz"))):
            pass
    await simulator.expire_token(alpha.api_key)
    simulator.set_token(alpha.api_key, "fresh-secret-token")
    assert "alpha" in caplog.text
    for secret in (alpha.api_key, alpha.access_token, "wrong-token-xyz", "fresh-secret-token"):
        assert secret not in caplog.text
        assert secret not in views
        assert secret not in repr(alpha)
