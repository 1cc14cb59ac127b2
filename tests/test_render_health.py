"""What a pipe's stderr says of a feed's health (``kitefan.render.health``), from known events.

Issue 12, item 5.
"""

from __future__ import annotations

from kitefan.events import ErrorEvent, Event, Gap, Status, StatusEvent
from kitefan.render.health import HealthLines

T0 = 1764561600.0  # 2025-12-01 09:30:00 IST

REFUSED = (
    "attempt failed: connection refused by 127.0.0.1:1: nothing listens there; check the url's "
    "host and port, and that the server runs; next try in {:.1f} s"
)
CANNOT = (
    "warning: key alpha, connection 0: cannot connect: connection refused by 127.0.0.1:1: "
    "nothing listens there; check the url's host and port, and that the server runs"
)


def status(key: str, conn: int | None, state: Status, message: str, at: float = T0) -> StatusEvent:
    return StatusEvent(key, conn, state, message, at)


def test_repeated_failed_attempts_are_one_line_then_counted() -> None:
    health = HealthLines()
    out = []
    for i, delay in enumerate((0.5, 1.1, 2.3, 4.0)):
        event = status("alpha", 0, Status.CONNECTING, REFUSED.format(delay), T0 + i)
        out += health.take([event], T0 + i)
    assert out == [f"{CANNOT}; next try in 0.5 s"]
    # After the window, the next one is shown with how many were not.
    later = status("alpha", 0, Status.CONNECTING, REFUSED.format(30.0), T0 + 61)
    assert health.take([later], T0 + 61) == [
        f"{CANNOT}; next try in 30.0 s (repeated 3 times since 09:30:00 IST)"
    ]
    assert health.take([status("alpha", 0, Status.CONNECTING, REFUSED.format(30.0))], T0 + 70) == []
    assert health.take([status("alpha", 0, Status.CONNECTED, "connected")], T0 + 71) == [
        f"{CANNOT} (repeated 1 time since 09:31:01 IST)",
        "kitefan: key alpha, connection 0: connected",
    ]
    assert health.flush() == []


def test_a_lost_connection_and_its_gap() -> None:
    health = HealthLines()
    lost = status("bravo", 1, Status.RECONNECTING, "lost: dropped without a close frame")
    assert health.take([lost], T0) == [
        "warning: key bravo, connection 1: lost (dropped without a close frame); reconnecting"
    ]
    gap = Gap(T0 - 0.4, T0 + 15.1, (1, 2, 3), "dropped without a close frame")
    back = StatusEvent("bravo", 1, Status.CONNECTED, "reconnected after 15.5 s", T0 + 15.1, gap)
    assert health.take([back], T0 + 15.1) == [
        "warning: key bravo, connection 1: back after 15.5 s; its 3 symbols have a gap from "
        "09:29:59 to 09:30:15 IST"
    ]


def test_a_refused_key_names_where_its_symbols_went_and_when_it_is_back() -> None:
    health = HealthLines(moved_to=lambda key: ["alpha", "charlie"])
    assert health.take([status("alpha", 0, Status.CONNECTED, "connected")], T0) == []
    refused = status("bravo", None, Status.AUTH_FAILED, "refused with HTTP 403: expired; renew it")
    assert health.take([refused], T0) == [
        "warning: key bravo: refused with HTTP 403: expired; renew it; its symbols moved to "
        "alpha, charlie"
    ]
    back = status("bravo", None, Status.CONNECTED, "token accepted again")
    assert health.take([back], T0 + 1) == ["kitefan: key bravo: token accepted again"]


def test_refusals_before_any_connection_are_held_and_dropped_when_every_key_fails() -> None:
    health = HealthLines(hold_s=3.0)
    refused = [status(k, None, Status.AUTH_FAILED, "refused with HTTP 403") for k in ("a", "b")]
    assert health.take(refused, T0) == []
    # The stream fails (every key refused): flush is not called, nothing was said.
    # Had one key been slow to answer, the refusals are said after the hold:
    assert health.take([status("c", 0, Status.CONNECTING, "attempt failed: x")], T0 + 3) == [
        "warning: key c, connection 0: cannot connect: x",
        "warning: key a: refused with HTTP 403",
        "warning: key b: refused with HTTP 403",
    ]


def test_feed_events_server_errors_and_what_is_not_health() -> None:
    health = HealthLines()
    events: list[Event] = [
        status("*", None, Status.CONFIG_REJECTED, "SIGHUP: not applied: kitefan.toml: bad"),
        status("*", None, Status.CONFIG_APPLIED, "kitefan distribute: 2 symbols added"),
        status("*", None, Status.PUBLISH_FAILED, "cannot publish to Redis at redis://h:1/0 (down)"),
        status("alpha", None, Status.MESSAGE, "a broadcast"),
        ErrorEvent("alpha", 2, "Can't subscribe to more than 3000 instruments.\x1b[2J", T0),
        ErrorEvent("alpha", 2, "Can't subscribe to more than 3000 instruments.\x1b[2J", T0),
    ]
    assert health.take(events, T0) == [
        "warning: SIGHUP: not applied: kitefan.toml: bad",
        "kitefan: kitefan distribute: 2 symbols added",
        "warning: cannot publish to Redis at redis://h:1/0 (down)",
        "warning: key alpha, connection 2: Can't subscribe to more than 3000 instruments.[2J",
    ]
    assert health.flush() == [
        "warning: key alpha, connection 2: Can't subscribe to more than 3000 instruments.[2J "
        "(repeated 1 time since 09:30:00 IST)"
    ]
