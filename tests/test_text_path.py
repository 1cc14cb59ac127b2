"""The whole path of a server text, from the wire to what is shown: ``decode_text``, the
connection's text handling, the manager's events, the JSON lines and the dashboard.

Whatever a server sends, nothing raises, every text is counted once, error texts keep their
exact text in the event and the JSON line, and nothing a terminal would obey reaches the
dashboard. A few known hostile texts pin the exact messages.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from app_configs import app_config, key
from hypothesis import HealthCheck, given, settings, strategies as st
from rich.console import Console

from kitefan.codec import MAX_TEXT_DEPTH, decode_text, error_message, notice_message
from kitefan.config import Tuning
from kitefan.connection import FeedConnection
from kitefan.errors import CodecError
from kitefan.events import ErrorEvent, Event, OrderEvent, StatusEvent
from kitefan.manager import EventStream, FeedManager
from kitefan.models import OrderUpdate, ServerError, ServerNotice, UnknownText
from kitefan.render.dashboard import TickBoard, dashboard
from kitefan.render.records import json_lines
from kitefan.render.text import printable

AT = 1700023532.25

# What a terminal obeys: C0 (the dashboard's own line breaks aside), DEL, C1, the bidi marks.
UNSAFE = {
    *map(chr, range(0x20)),
    "\x7f",
    *map(chr, range(0x80, 0xA0)),
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
}

# Text that favours what hurts: escape sequences, control characters, brackets (Rich markup).
hostile_text = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(sorted(UNSAFE)),
        st.sampled_from(["\x1b[2J", "\x1b]0;title\x07", "[bold]", "[/]", "\u202e"]),
    ),
    max_size=12,
).map("".join)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),  # NaN != NaN; Infinity is generated, and read back
    hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=12,
)
ORDER_FIELDS = (
    "order_id",
    "status",
    "tradingsymbol",
    "transaction_type",
    "filled_quantity",
    "average_price",
    "exchange_update_timestamp",
    "meta",
)
order_data = st.dictionaries(
    st.sampled_from(ORDER_FIELDS) | hostile_text, json_values, max_size=len(ORDER_FIELDS) + 2
)


def _nested(depth: int, kind: str) -> str:
    return f'{{"type":"{kind}","data":' + "[" * depth + "]" * depth + "}"


texts = st.one_of(
    order_data.map(lambda d: json.dumps({"type": "order", "data": d})),
    json_values.map(lambda v: json.dumps({"type": "error", "data": v})),
    json_values.map(lambda v: json.dumps({"type": "message", "data": v})),
    st.builds(lambda t, v: json.dumps({"type": t, "data": v}), hostile_text, json_values),
    json_values.map(json.dumps),
    hostile_text,
    st.builds(_nested, st.integers(1, 3000), st.sampled_from(["order", "error", "message"])),
)


def make_feed() -> FeedManager:
    config = app_config(
        [key("alpha", "alpha-api-key", "alpha-token")],
        url="ws://127.0.0.1:9/",
        max_connections_per_key=1,
    )
    return FeedManager(config)


def connection_of(feed: FeedManager) -> FeedConnection:
    """Key alpha's connection 0, reporting to the feed (as the feed makes it, without a socket)."""
    return FeedConnection(
        key_id="alpha",
        index=0,
        url=feed.config.url,
        credential=feed.config.keys[0].credential,
        tuning=Tuning(),
        sink=feed._sink,
    )


def rendered(feed: FeedManager, events: Sequence[Event]) -> str:
    """The dashboard with these events in its panel (six at a time, as many as it shows), wide
    enough that no event line is cut (the dashboard cuts what does not fit, with an ellipsis)."""
    out = io.StringIO()
    width = 200 + max(
        (len(str(getattr(e, "text", getattr(e, "message", "")))) for e in events), default=0
    )
    console = Console(file=out, width=width, color_system=None)
    stats = feed.stats()
    for start in range(0, len(events), 6):
        view = dashboard(
            TickBoard([]),
            stats,
            feed.name_of,
            events[start : start + 6],
            now=AT,
            title="kitefan",
            width=width,
            height=40,
        )
        console.print(view)
    return out.getvalue()


def squeezed(text: str) -> str:
    """The text without whitespace and panel borders: what survives a wrap in the panel."""
    return "".join(c for c in text if not c.isspace() and c != "│")


def run_texts(texts: Sequence[str]) -> tuple[FeedManager, FeedConnection, list[Event]]:
    feed = make_feed()
    stream: EventStream[Event] = feed.events()
    conn = connection_of(feed)
    for text in texts:
        conn._on_text(text)
    return feed, conn, stream.drain()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(texts, min_size=1, max_size=6))
def test_any_server_text_is_counted_surfaced_and_shown_safely(sent: list[str]) -> None:
    feed, conn, events = run_texts(sent)

    # What each text should give, from decode_text (whose own contract is tested below).
    expected: list[tuple[str, Any]] = []
    seen_orders: set[str] = set()
    for text in sent:
        try:
            message = decode_text(text)
        except CodecError as exc:
            expected.append(("error", f"skipped a text message: {exc}"))
            continue
        if isinstance(message, OrderUpdate):
            if message.dedup_key not in seen_orders:
                seen_orders.add(message.dedup_key)
                expected.append(("order", message.data))
        elif isinstance(message, ServerError):
            expected.append(("error", message.text))
        elif isinstance(message, ServerNotice):
            expected.append(("message", message.text))
        else:
            assert isinstance(message, UnknownText)
            expected.append(("error", f"skipped a text message of unknown type {message.type!r}"))

    got: list[tuple[str, Any]] = []
    for event in events:
        if isinstance(event, OrderEvent):
            got.append(("order", event.update.data))
        elif isinstance(event, ErrorEvent):
            got.append(("error", event.text))
        else:
            assert isinstance(event, StatusEvent)
            assert event.state == "message"
            got.append(("message", event.message))
        assert (event.key, event.connection) == ("alpha", 0)
    assert got == expected

    counters = conn.counters
    assert counters.frames == len(sent)
    assert counters.bytes == sum(map(len, sent))
    errors = [text for kind, text in expected if kind == "error"]
    assert counters.decode_errors + counters.server_errors == len(errors)
    assert counters.orders == sum(1 for t in sent if _decodes_to(t, OrderUpdate))
    assert feed.key_stats("alpha").orders == len(seen_orders)
    assert counters.internal_errors == 0

    # JSON lines: one per event, the exact text back, nothing raw a terminal would obey.
    lines = json_lines(events, feed.name_of).splitlines()
    assert len(lines) == len(events)
    for line, event in zip(lines, events, strict=True):
        assert not UNSAFE & set(line)
        record = json.loads(line)
        if isinstance(event, ErrorEvent):
            assert (record["type"], record["message"]) == ("error", event.text)
        elif isinstance(event, OrderEvent):
            assert record["type"] == "order"
            assert record["data"] == event.update.data
        else:
            assert isinstance(event, StatusEvent)
            assert (record["type"], record["message"]) == ("status", event.message)

    # The dashboard: no control character but its own line breaks, every text shown stripped.
    screen = rendered(feed, events)
    assert not (UNSAFE - {"\n"}) & set(screen)
    flat = squeezed(screen)
    for kind, text in expected:
        if kind != "order":
            assert squeezed(printable(text)) in flat


def _decodes_to(text: str, kind: type) -> bool:
    try:
        return isinstance(decode_text(text), kind)
    except CodecError:
        return False


# Known hostile texts, with their exact outcome ------------------------------------------------


def test_an_order_id_that_is_a_list_is_skipped_with_a_reason() -> None:
    _feed, conn, events = run_texts(['{"type":"order","data":{"order_id":["A1"],"status":"OPEN"}}'])
    assert isinstance(events[0], ErrorEvent)
    assert events == [
        ErrorEvent(
            "alpha",
            0,
            "skipped a text message: order message whose order_id is a list, "
            "not a string or a number",
            events[0].at,
        )
    ]
    assert (conn.counters.decode_errors, conn.counters.orders) == (1, 0)


def test_a_status_that_is_an_object_is_skipped_and_other_odd_fields_deduplicate() -> None:
    status_object = '{"type":"order","data":{"order_id":"A1","status":{"s":1}}}'
    odd = json.dumps({"type": "order", "data": {"order_id": 7, "filled_quantity": [1, {"a": 2}]}})
    feed, conn, events = run_texts([status_object, odd, odd])
    assert [type(e) for e in events] == [ErrorEvent, OrderEvent]
    error, order = events
    assert isinstance(error, ErrorEvent) and isinstance(order, OrderEvent)
    assert error.text == (
        "skipped a text message: order message whose status is an object, not a string or a number"
    )
    assert order.update.data == {
        "order_id": 7,
        "filled_quantity": [1, {"a": 2}],
    }
    assert (conn.counters.decode_errors, conn.counters.orders) == (1, 2)
    assert feed.key_stats("alpha").orders == 1


def test_text_nested_100k_deep_is_skipped_with_a_reason() -> None:
    for kind in ("order", "error", "message"):
        _feed, conn, events = run_texts([_nested(100_000, kind)])
        assert [e.text for e in events if isinstance(e, ErrorEvent)] == [
            f"skipped a text message: text message nests deeper than {MAX_TEXT_DEPTH} levels"
        ]
        assert len(events) == 1
        assert conn.counters.decode_errors == 1


def test_nesting_up_to_the_limit_is_read() -> None:
    # The message object is level 1; its data, n lists deep, reaches level n + 1.
    text = _nested(MAX_TEXT_DEPTH - 1, "error")
    assert decode_text(text) == ServerError(json.dumps(json.loads(text)["data"]))
    _feed, _conn, events = run_texts([_nested(MAX_TEXT_DEPTH, "error")])
    assert [e.text for e in events if isinstance(e, ErrorEvent)] == [
        f"skipped a text message: text message nests deeper than {MAX_TEXT_DEPTH} levels"
    ]


def test_an_escape_sequence_is_kept_in_the_event_and_json_and_stripped_on_screen() -> None:
    feed, _conn, events = run_texts(
        [error_message("\x1b[2Jcleared"), notice_message("\x1b]0;pwned\x07hello\nworld")]
    )
    error, notice = events
    assert isinstance(error, ErrorEvent) and error.text == "\x1b[2Jcleared"
    assert isinstance(notice, StatusEvent) and notice.message == "\x1b]0;pwned\x07hello\nworld"
    lines = json_lines(events, feed.name_of)
    assert '"message":"\\u001b[2Jcleared"' in lines
    assert '"message":"\\u001b]0;pwned\\u0007hello\\nworld"' in lines
    screen = rendered(feed, events)
    assert "\x1b" not in screen and "\x07" not in screen
    assert "alpha#0 error: [2Jcleared" in screen
    assert "alpha#0 message: ]0;pwnedhello world" in screen


def test_a_text_of_unknown_type_is_counted_and_surfaced() -> None:
    _feed, conn, events = run_texts(['{"type":"ping","data":1}'])
    assert [e.text for e in events if isinstance(e, ErrorEvent)] == [
        "skipped a text message of unknown type 'ping'"
    ]
    assert conn.counters.decode_errors == 1
