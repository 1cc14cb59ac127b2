"""The simulator's pure parts besides the market: a connection's subscriptions (sans-I/O), order
updates in the postback shape, and fault specs from the command line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kitefan.codec import ERROR_BAD_TOKENS, ERROR_TOO_MANY
from kitefan.models import Mode
from kitefan.simulator.faults import FaultPlan, FaultSpecError, parse_fault_plan
from kitefan.simulator.feed import Feed, Reply, RequestCounts
from kitefan.simulator.orders import CHECKSUM_SECRET, order_postback

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def error(text: str) -> str:
    return json.dumps({"type": "error", "data": text}, separators=(",", ":"))


def sub(*tokens: object) -> str:
    return json.dumps({"a": "subscribe", "v": list(tokens)})


# Subscriptions --------------------------------------------------------------------------------


def test_subscribe_is_quote_by_default_and_asks_for_the_cached_packets() -> None:
    feed = Feed()
    assert feed.receive(sub(408065, 256265)) == Reply(
        snapshot=(408065, 256265), added=(408065, 256265)
    )
    assert feed.subscriptions == {408065: Mode.QUOTE, 256265: Mode.QUOTE}


def test_resubscribing_keeps_the_mode_and_sends_the_packet_again() -> None:
    feed = Feed()
    feed.receive('{"a": "mode", "v": ["full", [408065]]}')
    assert feed.receive(sub(408065, 408065)) == Reply(snapshot=(408065,))
    assert feed.subscriptions == {408065: Mode.FULL}
    assert feed.tokens_used == 3  # the implicit subscribe, then twice more


def test_duplicates_count_toward_the_limit_and_an_overflowing_request_is_refused_whole() -> None:
    feed = Feed()
    assert feed.receive(sub(*range(1, 2001))).added == tuple(range(1, 2001))
    assert feed.receive(sub(*range(1, 1001))).added == ()  # duplicates: 3000 used, 2000 tokens
    assert feed.tokens_used == 3000
    assert feed.receive(sub(5000)) == Reply(texts=(error(ERROR_TOO_MANY),))
    assert error(ERROR_TOO_MANY) == (
        '{"type":"error","data":"Can\'t subscribe to more than 3000 instruments."}'
    )
    assert len(feed.subscriptions) == 2000
    assert 5000 not in feed.subscriptions
    assert feed.requests.limit_errors == 1
    # Unsubscribing frees every count of a token.
    assert feed.receive('{"a":"unsubscribe","v":[1]}') == Reply(removed=(1,))
    assert feed.tokens_used == 2998
    assert feed.receive(sub(5000, 5001)).added == (5000, 5001)


def test_a_lower_limit_says_its_own_number() -> None:
    feed = Feed(max_tokens=2)
    assert feed.receive(sub(1, 2, 3)) == Reply(
        texts=(error("Can't subscribe to more than 2 instruments."),)
    )


def test_mode_sets_modes_and_asks_for_fresh_packets() -> None:
    feed = Feed()
    feed.receive(sub(1, 2, 3))
    assert feed.receive('{"v": ["ltp", [2, 3, 3]], "a": "mode"}') == Reply(snapshot=(2, 3))
    assert feed.subscriptions == {1: Mode.QUOTE, 2: Mode.LTP, 3: Mode.LTP}


def test_mode_on_a_token_not_subscribed_subscribes_it_when_implicit() -> None:
    feed = Feed()
    assert feed.receive('{"a":"mode","v":["full",[7, 8]]}') == Reply(snapshot=(7, 8), added=(7, 8))
    assert feed.subscriptions == {7: Mode.FULL, 8: Mode.FULL}
    assert feed.tokens_used == 2
    strict = Feed(implicit_subscribe_on_mode=False)
    assert strict.receive('{"a":"mode","v":["full",[7]]}') == Reply()
    assert strict.subscriptions == {}


def test_implicit_subscribes_respect_the_limit() -> None:
    feed = Feed(max_tokens=2)
    feed.receive(sub(1))
    assert feed.receive('{"a":"mode","v":["full",[1, 2, 3]]}') == Reply(
        texts=(error("Can't subscribe to more than 2 instruments."),)
    )
    assert feed.subscriptions == {1: Mode.QUOTE}


def test_unsubscribe_ignores_unknown_tokens_and_empty_lists_are_no_ops() -> None:
    feed = Feed()
    feed.receive(sub(1))
    assert feed.receive('{"a":"unsubscribe","v":[2]}') == Reply()
    assert feed.receive(sub()) == Reply()
    assert feed.receive('{"a":"unsubscribe","v":[]}') == Reply()
    assert feed.subscriptions == {1: Mode.QUOTE}


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (sub("408065"), ERROR_BAD_TOKENS),
        (sub(1.5), ERROR_BAD_TOKENS),
        (sub(True), ERROR_BAD_TOKENS),
        (sub(-1), ERROR_BAD_TOKENS),
        (sub(1 << 32), ERROR_BAD_TOKENS),
        ('{"a":"subscribe","v":"408065"}', ERROR_BAD_TOKENS),
        ('{"a":"mode","v":["full",["1"]]}', ERROR_BAD_TOKENS),
        ("{not json", "Invalid message: not valid JSON"),
        ('{"a":"subscribe"}', 'Invalid message: expected an object with "a" and "v"'),
        ('{"a":"join","v":[1]}', "Invalid message: unknown action 'join'"),
        ('{"a":"mode","v":["fast",[1]]}', "Invalid message: unknown mode 'fast'"),
    ],
)
def test_unreadable_requests_get_an_error_text_and_change_nothing(message: str, text: str) -> None:
    feed = Feed()
    feed.receive(sub(1))
    assert feed.receive(message) == Reply(texts=(error(text),))
    assert feed.subscriptions == {1: Mode.QUOTE}
    assert feed.requests.invalid_messages == 1


def test_requests_are_counted_on_the_connection_and_in_the_totals() -> None:
    totals = RequestCounts()
    first = Feed(totals=(totals,))
    second = Feed(totals=(totals,))
    first.receive(sub(1, 2, 2))
    first.receive('{"a":"mode","v":["ltp",[1]]}')
    second.receive(sub(3))
    second.receive('{"a":"unsubscribe","v":[3, 4]}')
    second.receive("?")
    assert first.requests == RequestCounts(
        subscribe_messages=1, subscribe_tokens=3, mode_messages=1, mode_tokens=1
    )
    assert totals == RequestCounts(
        subscribe_messages=2,
        subscribe_tokens=4,
        unsubscribe_messages=1,
        unsubscribe_tokens=2,
        mode_messages=1,
        mode_tokens=1,
        invalid_messages=1,
    )
    snapshot = totals.copy()
    second.receive(sub(9))
    assert (snapshot.subscribe_messages, totals.subscribe_messages) == (2, 3)


def test_drop_all_forgets_everything() -> None:
    feed = Feed()
    feed.receive(sub(1, 2, 1))
    assert feed.drop_all() == (1, 2)
    assert (feed.subscriptions, feed.tokens_used) == ({}, 0)


# Order updates --------------------------------------------------------------------------------


def test_order_updates_have_the_postback_shape() -> None:
    sample = json.loads((FIXTURES / "kiteconnect-mocks" / "postback.json").read_text())
    order = order_postback(308932, 1646279665.0)  # 2022-03-03 09:24:25 IST
    assert list(order) == list(sample)
    assert {k: type(v) for k, v in order.items() if k != "average_price"} == {
        k: type(v) for k, v in sample.items() if k != "average_price"
    }
    assert order["order_id"] == "220303000308932"
    assert order["order_timestamp"] == "2022-03-03 09:24:25"
    expected = hashlib.sha256(f"220303000308932{'2022-03-03 09:24:25'}{CHECKSUM_SECRET}".encode())
    assert order["checksum"] == expected.hexdigest()
    assert order_postback(308933, 1646279665.0)["order_id"] == "220303000308933"


# Fault specs ----------------------------------------------------------------------------------


def test_fault_specs_parse() -> None:
    plan = parse_fault_plan(
        drop_every="30",
        close_every="20:1012",
        silent_after="10:2.5",
        expire_after=["acct1:60", "acct:2:5"],
        delay_ms="250",
        malformed_every="7",
        drop_packets=["acct2:4"],
    )
    assert plan == FaultPlan(
        drop_every_s=30.0,
        close_every_s=20.0,
        close_code=1012,
        silent_after_s=10.0,
        silent_for_s=2.5,
        expire_after=(("acct1", 60.0), ("acct:2", 5.0)),
        delay_s=0.25,
        malformed_every_s=7.0,
        drop_packets=(("acct2", 4),),
    )
    assert plan.describe() == [
        "drop every connection every 30s",
        "close every connection with 1012 every 20s",
        "go silent after 10s for 2.5s",
        "expire the token of key 'acct1' after 60s",
        "expire the token of key 'acct:2' after 5s",
        "delay every frame by 250ms",
        "send a malformed frame every 7s",
        "key 'acct2' loses 1 in 4 packets it shares with another key",
    ]
    assert parse_fault_plan() == FaultPlan()
    assert parse_fault_plan(silent_after="0").silent_for_s is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"drop_every": "soon"},
            "--drop-every: expected a number of seconds (more than 0), got 'soon'",
        ),
        ({"drop_every": "0"}, "--drop-every: expected a number of seconds (more than 0), got '0'"),
        (
            {"drop_every": "inf"},
            "--drop-every: expected a number of seconds (more than 0), got 'inf'",
        ),
        (
            {"close_every": "5:1006"},
            "--close-every: expected SECONDS[:CODE] with a close code a server may send "
            "(1000-1003, 1007-1014, 3000-4999), got '5:1006'",
        ),
        (
            {"silent_after": "-1"},
            "--silent-after: expected a number of seconds (0 or more), got '-1'",
        ),
        ({"expire_after": ["60"]}, "--expire-after: expected KEY_ID:SECONDS, got '60'"),
        (
            {"drop_packets": ["acct2:0"]},
            "--drop-packets: expected KEY_ID:N with N a whole number from 1, got 'acct2:0'",
        ),
        (
            {"delay_ms": "x"},
            "--delay-ms: expected a number of milliseconds (0 or more), got 'x'",
        ),
    ],
)
def test_bad_fault_specs_say_which_option_and_what_it_takes(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(FaultSpecError) as raised:
        parse_fault_plan(**kwargs)  # type: ignore[arg-type]  # bad arguments are the test
    assert str(raised.value) == message
