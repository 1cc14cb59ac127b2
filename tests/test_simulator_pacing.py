"""The simulator's pacing on the pure core (kitefan.simulator.pacing): no server, no loop.

The market's slices and the replay's instants are run on a virtual clock, and each test checks
exactly when each step is due: round robin at a rate, no token stepped twice within a period, no
burst after a late wake-up; a replay's lead-in, its instants at a speed, and at maximum speed
the wait for the clients to drain. tests/integration/test_simulator.py and test_replay_server.py
keep the same pacing on the wire.
"""

from __future__ import annotations

import pytest

from kitefan.simulator.pacing import (
    MarketSchedule,
    MarketStep,
    ReplaySchedule,
    TokenSlices,
    lead_in_wait,
    slice_count,
)


def test_the_tokens_are_spread_over_a_slice_per_tenth_of_a_second_of_the_period() -> None:
    assert [slice_count(rate) for rate in (None, 20.0, 10.0, 2.0, 1.0, 0.5, 0.01)] == [
        1,
        1,
        1,
        5,
        10,
        20,
        20,
    ]


def test_a_token_keeps_its_slice_and_neighbours_spread() -> None:
    slices = TokenSlices(4)
    tokens = [256265, 256266, 256267, 256268, 738561, 738562]
    where = {token: slices.slice_of(token) for token in tokens}
    assert where == {token: TokenSlices(4).slice_of(token) for token in tokens}
    assert len(set(where.values())) > 1
    for token in tokens:
        slices.add(token)
    assert sorted(t for index in range(4) for t in slices[index]) == tokens
    slices.discard(256265)
    slices.discard(1)  # never added: nothing happens
    assert 256265 not in slices[where[256265]]
    assert len(slices) == 4
    with pytest.raises(ValueError):
        TokenSlices(0)


def run(schedule: MarketSchedule, now: float, steps: int) -> list[tuple[int, float]]:
    """Step ``steps`` times, each as soon as it is due; return (slice, when) of each."""
    out = []
    for _ in range(steps):
        step = schedule.due(now)
        now += step.wait
        schedule.ran(now)
        out.append((step.slice, now))
    return out


def test_the_slices_step_round_robin_one_interval_apart() -> None:
    schedule = MarketSchedule(1.0, 4, now=0.0)
    assert run(schedule, 0.0, 6) == [
        (0, 0.25),
        (1, 0.5),
        (2, 0.75),
        (3, 1.0),
        (0, 1.25),
        (1, 1.5),
    ]


def test_a_late_step_goes_at_once_without_a_burst_to_catch_up() -> None:
    schedule = MarketSchedule(1.0, 4, now=0.0)
    run(schedule, 0.0, 5)  # slice 0 last at 1.25
    # The loop was held up until 3.0: slice 1 (due at 1.5) goes at once, and only it.
    assert schedule.due(3.0) == MarketStep(1, 0.0)
    schedule.ran(3.0)
    assert schedule.due(3.0) == MarketStep(2, 0.25)
    assert run(schedule, 3.0, 3) == [(2, 3.25), (3, 3.5), (0, 3.75)]


def test_a_slice_is_never_stepped_again_within_a_period() -> None:
    schedule = MarketSchedule(1.0, 2, now=0.0)
    assert schedule.due(0.0) == MarketStep(0, 0.5)
    schedule.ran(0.875)  # woke late
    assert schedule.due(0.875) == MarketStep(1, 0.125)
    schedule.ran(1.0)
    # By the interval slice 0 would be due at 1.5; by the period not before 1.875.
    assert schedule.due(1.0) == MarketStep(0, 0.875)


def test_a_schedule_needs_a_rate() -> None:
    for rate in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            MarketSchedule(rate, 1, now=0.0)


def test_a_replay_starts_a_quarter_second_after_the_last_request_or_two_seconds_in() -> None:
    assert lead_in_wait(10.0, 10.0, now=10.0) == 0.25
    assert lead_in_wait(10.0, 11.5, now=11.5) == 0.25  # each request pushes the start on...
    assert lead_in_wait(10.0, 11.875, now=11.875) == 0.125  # ...but not past 2 s in
    assert lead_in_wait(10.0, 10.0, now=10.25) == 0.0
    assert lead_in_wait(10.0, 10.0, now=11.0) < 0


def never() -> int:
    raise AssertionError("the backlog is asked only at maximum speed")


def test_at_a_speed_each_instant_is_due_at_its_recorded_offset_and_late_ones_go_at_once() -> None:
    schedule = ReplaySchedule(2.0)
    t0 = 1_700_000_000_000_000_000
    second = 1_000_000_000
    schedule.begin(100.0)
    assert schedule.wait(t0, 100.0, never) == 0.0
    assert schedule.wait(t0 + second, 100.0, never) == 0.5
    assert schedule.wait(t0 + 3 * second, 100.5, never) == 1.0
    # Held up until 105: the next instants go at once; the schedule is kept, not the gaps.
    assert schedule.wait(t0 + 4 * second, 105.0, never) == -3.0
    assert schedule.wait(t0 + 12 * second, 105.0, never) == 1.0
    # A new pass (--loop) starts again from its first instant.
    schedule.begin(200.0)
    assert schedule.wait(t0 + 20 * second, 200.0, never) == 0.0
    assert schedule.wait(t0 + 21 * second, 200.0, never) == 0.5


def test_at_maximum_speed_an_instant_waits_for_every_queue_to_drain() -> None:
    schedule = ReplaySchedule(None, low_water_bytes=100)
    schedule.begin(0.0)
    assert schedule.wait(1, 0.0, lambda: 100) == 0.0
    assert schedule.wait(2, 0.0, lambda: 101) is None
    assert schedule.drained(100)
    assert not schedule.drained(101)
    with pytest.raises(ValueError):
        ReplaySchedule(0.0)
