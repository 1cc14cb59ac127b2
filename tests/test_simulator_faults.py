"""The simulator's faults on the pure core (kitefan.simulator.faults): no server, no loop.

A fault plan's schedule is run on a virtual clock (which fault fires when, in which order, and
what a late driver gets), and the standing faults are checked exactly: who is silent, and which
connection loses which packet under ``--drop-packets KEY:N``. Parsing the plan is tested in
tests/test_simulator_feed.py; tests/integration/test_simulate_cli.py and test_redundancy.py keep
the faults on the wire.
"""

from __future__ import annotations

import pytest

from kitefan.simulator.faults import (
    CloseConnections,
    DropConnections,
    ExpireToken,
    FaultAction,
    FaultPlan,
    FaultSchedule,
    FaultState,
    SendMalformed,
    SetSilent,
)


def timeline(schedule: FaultSchedule, now: float, until: float) -> list[tuple[float, FaultAction]]:
    """Every fault fired up to ``until``, each at the moment it is due."""
    out: list[tuple[float, FaultAction]] = []
    while (wait := schedule.wait(now)) is not None and now + wait <= until:
        now += wait
        out.extend((now, action) for action in schedule.fire(now))
    return out


def test_each_fault_fires_at_its_time_and_those_due_together_in_the_plans_order() -> None:
    plan = FaultPlan(
        drop_every_s=2.0,
        close_every_s=3.0,
        close_code=4000,
        silent_after_s=1.0,
        silent_for_s=4.0,
        expire_after=(("alpha", 5.0), ("bravo", 0.0)),
        malformed_every_s=6.0,
    )
    schedule = FaultSchedule(plan, start=100.0)
    assert timeline(schedule, 100.0, until=106.0) == [
        (100.0, ExpireToken("bravo")),
        (101.0, SetSilent(True)),
        (102.0, DropConnections()),
        (103.0, CloseConnections(4000)),
        (104.0, DropConnections()),
        (105.0, SetSilent(False)),
        (105.0, ExpireToken("alpha")),
        (106.0, DropConnections()),
        (106.0, CloseConnections(4000)),
        (106.0, SendMalformed()),
    ]
    # Only the periodic ones are left.
    assert timeline(schedule, 106.0, until=108.0) == [(108.0, DropConnections())]


def test_a_late_driver_gets_each_fault_once_and_the_next_on_the_schedule() -> None:
    schedule = FaultSchedule(FaultPlan(drop_every_s=1.0, silent_after_s=0.5), start=0.0)
    assert schedule.wait(0.0) == 0.5
    assert schedule.fire(0.25) == []
    assert schedule.fire(3.5) == [SetSilent(True), DropConnections()]  # by when each was due
    assert schedule.wait(3.5) == 0.5
    assert schedule.fire(4.0) == [DropConnections()]


def test_a_plan_with_nothing_timed_has_nothing_to_fire() -> None:
    for plan in (FaultPlan(), FaultPlan(delay_s=0.2, drop_packets=(("alpha", 3),))):
        schedule = FaultSchedule(plan, start=0.0)
        assert schedule.wait(0.0) is None
        assert schedule.fire(10.0) == []
    once = FaultSchedule(FaultPlan(silent_after_s=1.0), start=0.0)
    assert once.fire(1.0) == [SetSilent(True)]
    assert once.wait(1.0) is None


def test_silence_on_one_key_on_every_key_and_lifted() -> None:
    state: FaultState[str] = FaultState()
    assert not state.silent("alpha")
    state.set_silent(True, "alpha")
    assert (state.silent("alpha"), state.silent("bravo")) == (True, False)
    state.set_silent(True)
    assert state.silent("bravo")
    state.set_silent(False, "alpha")
    assert state.silent("alpha")  # every key is still silent
    state.set_silent(True, "bravo")
    state.set_silent(False)  # lifts every silence, per-key ones included
    assert (state.silent("alpha"), state.silent("bravo")) == (False, False)


def test_every_nth_shared_packet_is_lost_to_the_losing_key_only() -> None:
    assert not FaultState[str]().dropping
    state: FaultState[str] = FaultState()
    state.drop_packets("bravo", 2)
    assert state.dropping
    # One connection of each key gets each packet: bravo's copy of every 2nd goes.
    assert [state.lose(["alpha", "bravo"]) for _ in range(5)] == [[], [1], [], [1], []]
    assert (state.packets_dropped("bravo"), state.packets_dropped("alpha")) == (2, 0)
    # A packet no other key gets is not shared: never lost, not counted.
    assert state.lose(["bravo"]) == []
    assert state.lose(["bravo", "bravo"]) == []
    assert state.lose(["bravo", "alpha"]) == [0]  # the 6th shared packet
    # Two of bravo's connections get the packet: each copy counts.
    assert state.lose(["alpha", "bravo", "bravo"]) == [2]
    assert state.packets_dropped("bravo") == 4


def test_a_silent_key_shares_nothing_and_loses_nothing() -> None:
    state: FaultState[str] = FaultState()
    state.drop_packets("bravo", 1)
    state.set_silent(True, "alpha")
    assert state.lose(["alpha", "bravo"]) == []  # the other copy does not go out
    state.set_silent(False, "alpha")
    state.set_silent(True, "bravo")
    assert state.lose(["alpha", "bravo"]) == []
    assert state.packets_dropped("bravo") == 0
    state.set_silent(False)
    assert state.lose(["alpha", "bravo"]) == [1]
    state.drop_packets("bravo", 0)
    assert not state.dropping
    assert state.lose(["alpha", "bravo"]) == []
    assert state.packets_dropped("bravo") == 1
    with pytest.raises(ValueError, match="every is 0"):
        state.drop_packets("bravo", -1)


def test_the_delay_and_the_redirect_are_checked() -> None:
    state: FaultState[str] = FaultState()
    state.set_delay(0.25)
    assert state.delay_s == 0.25
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="a delay is 0 or more seconds"):
            state.set_delay(bad)
    assert state.delay_s == 0.25
    state.set_redirect(302, "http://elsewhere/")
    assert state.redirect is not None
    assert (state.redirect[0].value, state.redirect[1]) == (302, "http://elsewhere/")
    for status in (200, 306, 400):
        with pytest.raises(ValueError, match=f"not {status}"):
            state.set_redirect(status)
    with pytest.raises(ValueError, match="line break"):
        state.set_redirect(301, "http://a/\r\nSet-Cookie: x")
    state.set_redirect(None)
    assert state.redirect is None
