"""One connection's life on the pure core (kitefan.lifecycle): no socket, no loop, times given.

Each test tells a :class:`ConnectionLife` how attempts and sockets ended and checks the steps it
answers with: the state and message reported, the refusal passed on, the wait. The backoff has
no jitter here, so every delay is exact. tests/integration/test_manager.py keeps the same
stories against the simulator (a drop, a silent socket, a refused token, a bug).
"""

from __future__ import annotations

from dataclasses import replace

from kitefan.events import ConnState, Gap
from kitefan.lifecycle import ConnectionLife, Pause, Report, TellRefused
from kitefan.retry import Refusal
from kitefan.settings import Tuning

TUNING = replace(
    Tuning(),
    backoff_initial_s=0.5,
    backoff_factor=2.0,
    backoff_max_s=4.0,
    backoff_jitter=0.0,
    auth_retry_s=300.0,
    slot_retry_s=60.0,
    liveness_timeout_s=0.6,
)


def life() -> ConnectionLife:
    return ConnectionLife(TUNING)


def test_failed_attempts_before_any_open_are_connecting_with_a_growing_capped_backoff() -> None:
    c = life()
    steps = [c.attempt_failed("connection refused by 127.0.0.1:9") for _ in range(5)]
    assert steps[0] == (
        Report(
            ConnState.CONNECTING,
            "attempt failed: connection refused by 127.0.0.1:9; next try in 0.5 s",
        ),
        Pause(0.5),
    )
    assert [s[1] for s in steps] == [Pause(0.5), Pause(1.0), Pause(2.0), Pause(4.0), Pause(4.0)]


def test_refusals_tell_the_owner_and_wait_their_own_time() -> None:
    c = life()
    assert c.refused(403) == (
        Report(ConnState.AUTH_FAILED, "refused with HTTP 403"),
        TellRefused(Refusal.AUTH, 403),
        Pause(300.0),
    )
    assert c.refused(429) == (
        Report(ConnState.SLOT_LIMITED, "refused with HTTP 429"),
        TellRefused(Refusal.SLOTS, 429),
        Pause(60.0),
    )
    # Any other status is a failed attempt, on the backoff (which the refusals did not grow).
    assert c.refused(500) == (
        Report(ConnState.CONNECTING, "attempt failed: HTTP 500; next try in 0.5 s"),
        Pause(0.5),
    )


def test_a_first_open_is_connected_and_resets_the_backoff() -> None:
    c = life()
    c.attempt_failed("timed out")
    c.attempt_failed("timed out")
    opened = c.opened(100.0, [408065])
    assert opened.report == Report(ConnState.CONNECTED, "connected")
    assert not opened.reconnected and c.ever_opened
    assert c.lost("dropped without a close frame", 105.0) == (
        Report(ConnState.RECONNECTING, "lost: dropped without a close frame"),
        Pause(0.5),
    )


def test_a_loss_is_reported_as_a_gap_over_what_the_connection_carries_when_it_reopens() -> None:
    c = life()
    c.opened(100.0, [408065, 738561])
    c.lost("no frame for 0.6 s", 104.25)
    # Attempts failing meanwhile are reconnecting, and the gap still starts at the last frame.
    failed = c.attempt_failed("connection refused by 127.0.0.1:9")
    assert failed[0].state is ConnState.RECONNECTING  # type: ignore[union-attr]  # a status first
    assert failed[1] == Pause(1.0)
    opened = c.opened(106.75, [408065, 738561])
    assert opened.reconnected
    assert opened.report == Report(
        ConnState.CONNECTED,
        "reconnected after 2.5 s",
        Gap(104.25, 106.75, (408065, 738561), "no frame for 0.6 s"),
    )
    # The loss is closed: a later open without a loss is not a reconnect.
    assert c.lost_at is None
    assert c.opened(110.0, [408065]).report == Report(ConnState.CONNECTED, "connected")


def test_a_reconnect_carrying_nothing_counts_but_has_no_gap() -> None:
    c = life()
    c.opened(100.0, [])
    c.lost("closed by the server with code 1000", 101.0)
    opened = c.opened(102.0, [])
    assert opened.reconnected
    assert opened.report == Report(ConnState.CONNECTED, "reconnected after 1.0 s")


def test_a_bug_waits_its_own_backoff_reset_only_after_a_long_enough_uptime() -> None:
    c = life()
    first = c.crashed("internal error (ValueError)", uptime_s=None, last_frame=50.0)
    assert first == (
        Report(ConnState.CONNECTING, "lost: internal error (ValueError)"),
        Pause(0.5),
    )
    # Never opened: the next open is a first connect, not a reconnect.
    assert c.lost_at is None
    assert c.attempt_failed("timed out")[1] == Pause(0.5)  # the ordinary backoff is apart
    c.opened(100.0, [408065])
    short = c.crashed("internal error (KeyError)", uptime_s=1.0, last_frame=100.5)
    assert short == (
        Report(ConnState.RECONNECTING, "lost: internal error (KeyError)"),
        Pause(1.0),
    )
    reopened = c.opened(101.5, [408065])
    assert reopened.report.gap == Gap(100.5, 101.5, (408065,), "internal error (KeyError)")
    # Up for longer than backoff_max_s: the restart backoff starts over.
    long = c.crashed("internal error (KeyError)", uptime_s=4.5, last_frame=106.0)
    assert long[1] == Pause(0.5)


def test_the_liveness_deadline_and_what_a_silent_socket_says() -> None:
    c = life()
    assert c.liveness_s == 0.6
    assert c.silent() == "no frame for 0.6 s"
