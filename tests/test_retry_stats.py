"""Backoff, refusal classification, and the stats arithmetic (fake clock, exact figures)."""

from __future__ import annotations

import random

import pytest

from kitefan.events import ConnState, Gap, KeyState
from kitefan.retry import Backoff, Refusal, classify_status
from kitefan.stats import (
    ConnectionStats,
    FeedStats,
    KeyStats,
    LoopLag,
    LoopLagMeter,
    RateMeter,
    key_state,
    percentile_of_counts,
)


def test_backoff_without_jitter_doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial_s=1.0, factor=2.0, max_s=10.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_backoff_jitter_stays_in_range_and_under_the_cap() -> None:
    backoff = Backoff(1.0, 2.0, 30.0, 0.2, rng=random.Random(7))
    for attempt in range(40):
        base = min(30.0, 2.0**attempt)
        delay = backoff.next_delay()
        assert base * 0.8 <= delay <= min(30.0, base * 1.2)


def test_backoff_never_overflows() -> None:
    backoff = Backoff(1.0, 2.0, 60.0, 0.0, attempt=10_000)
    assert backoff.next_delay() == 60.0


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        (403, Refusal.AUTH),
        (401, Refusal.AUTH),
        (429, Refusal.SLOTS),
        (400, Refusal.RETRY),
        (500, Refusal.RETRY),
        (503, Refusal.RETRY),
    ],
)
def test_refusals_are_classified(status: int, refusal: Refusal) -> None:
    assert classify_status(status) is refusal


def test_rate_meter_over_a_window() -> None:
    meter = RateMeter(window_s=5.0, min_interval_s=0.2)
    assert meter.rate(100.0, 0) == 0.0
    assert meter.rate(101.0, 1000) == 1000.0
    assert meter.rate(102.0, 3000) == 1500.0
    assert meter.rate(104.5, 4000) == pytest.approx(4000 / 4.5)
    # The oldest sample goes once the next one is a whole window old.
    assert meter.rate(106.5, 4000) == pytest.approx(3000 / 5.5)
    # A counter that stopped moving reads zero once the window has passed.
    assert meter.rate(112.0, 4000) == 0.0


def test_percentile_of_counts() -> None:
    assert percentile_of_counts({}, 0.5) is None
    counts = {0: 90, 1: 9, 4: 1}
    assert percentile_of_counts(counts, 0.5) == 0
    assert percentile_of_counts(counts, 0.95) == 1
    assert percentile_of_counts(counts, 0.99) == 1
    assert percentile_of_counts(counts, 1.0) == 4


@pytest.mark.parametrize(
    ("states", "auth_failed", "slot_limited", "expected"),
    [
        ([], False, False, KeyState.IDLE),
        ([ConnState.CONNECTED, ConnState.CONNECTED], False, False, KeyState.CONNECTED),
        ([ConnState.CONNECTED, ConnState.RECONNECTING], False, False, KeyState.RECONNECTING),
        ([ConnState.CONNECTING], False, False, KeyState.CONNECTING),
        ([ConnState.CONNECTED], False, True, KeyState.SLOT_LIMITED),
        ([ConnState.CONNECTED], True, False, KeyState.AUTH_FAILED),
        ([ConnState.CLOSED, ConnState.CLOSED], False, False, KeyState.CLOSED),
    ],
)
def test_key_state(
    states: list[ConnState], auth_failed: bool, slot_limited: bool, expected: KeyState
) -> None:
    assert key_state(states, auth_failed=auth_failed, slot_limited=slot_limited) is expected


def _conn(index: int, ticks: int, state: ConnState = ConnState.CONNECTED) -> ConnectionStats:
    return ConnectionStats(
        index=index,
        state=state,
        symbols=10,
        symbols_by_mode={"ltp": 1, "quote": 8, "full": 1},
        frames=5,
        ticks=ticks,
        bytes=1000,
        ticks_per_s=2.5,
        heartbeats=1,
        skipped_packets=0,
        decode_errors=1,
        server_errors=0,
        reconnects=1,
        drops=3,
        orders=0,
        last_gap=Gap(1.0, 3.5, (1, 2), "dropped without a close frame") if index else None,
        last_frame_age_s=0.25 + index,
        uptime_s=10.0,
        never_ticked=2,
        exchange_delay_p50_s=0,
        exchange_delay_p99_s=1,
    )


def test_feed_stats_json_shape_and_sums() -> None:
    stats = FeedStats(
        keys=(
            KeyStats("alpha", KeyState.CONNECTED, (_conn(0, 100), _conn(1, 50)), orders=2),
            KeyStats("bravo", KeyState.AUTH_FAILED, (_conn(0, 7, ConnState.AUTH_FAILED),), 0),
        ),
        updated_at=1700000000.5,
        uptime_s=12.25,
    )
    data = stats.as_dict()
    assert set(data) == {"keys", "totals", "updated_at", "uptime_s", "loop_lag"}
    assert data["loop_lag"] is None  # no probe ran
    assert [k["id"] for k in data["keys"]] == ["alpha", "bravo"]
    alpha = data["keys"][0]
    assert (alpha["state"], alpha["symbols"], alpha["ticks"], alpha["drops"]) == (
        "connected",
        20,
        150,
        6,
    )
    assert alpha["connections_up"] == 2
    assert alpha["last_frame_age_s"] == 0.25
    assert alpha["last_gap"] == {
        "start": 1.0,
        "end": 3.5,
        "seconds": 2.5,
        "symbols": 2,
        "reason": "dropped without a close frame",
    }
    assert [c["index"] for c in alpha["connections"]] == [0, 1]
    assert alpha["connections"][0]["symbols_by_mode"] == {"ltp": 1, "quote": 8, "full": 1}
    assert data["keys"][1]["state"] == "auth_failed"
    assert data["totals"]["ticks"] == 157
    assert data["totals"]["symbols"] == 30
    assert data["totals"]["connections_up"] == 2
    assert data["totals"]["connections"] == 3
    assert data["updated_at"] == 1700000000.5
    assert stats.key("bravo").ticks == 7
    with pytest.raises(KeyError):
        stats.key("nope")


def test_loop_lag_meter_keeps_percentiles_since_the_start_and_for_the_window() -> None:
    meter = LoopLagMeter(window_s=10)
    assert meter.snapshot(0.0) == LoopLag(0, None, None, None, 10, None, None)
    for i in range(98):
        meter.add(0.0002, 100.0 + i * 0.01)  # 0.2 ms, in second 100
    meter.add(0.0031, 100.5)  # 3.1 ms
    meter.add(0.0450, 101.2)  # 45 ms, in second 101
    lag = meter.snapshot(101.5)
    assert (lag.samples, lag.p50_ms, lag.p99_ms, lag.max_ms) == (100, 0.2, 3.1, 45.0)
    assert (lag.recent_p99_ms, lag.recent_max_ms) == (3.1, 45.0)
    meter.add(0.0010, 111.0)  # seconds 100 and 101 fall out of the window
    later = meter.snapshot(111.0)
    assert (later.samples, later.max_ms) == (101, 45.0)
    assert (later.recent_p99_ms, later.recent_max_ms) == (1.0, 1.0)
    assert later.as_dict() == {
        "samples": 101,
        "p50_ms": 0.2,
        "p99_ms": 3.1,
        "max_ms": 45.0,
        "window_s": 10,
        "recent_p99_ms": 1.0,
        "recent_max_ms": 1.0,
    }
