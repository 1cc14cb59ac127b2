"""A simulator connection's outbox on the pure core (kitefan.simulator.outbox): no server, no
loop, times given.

Each test puts frames in at given times and checks what the outbox answers when asked what to
send: which frame goes out when, the heartbeats of an idle connection, what a silent connection
loses, and what a slow client loses and how it is counted. tests/integration/test_simulator.py
keeps the same behaviour on the wire (delays, heartbeats, silence).
"""

from __future__ import annotations

from kitefan.codec import HEARTBEAT
from kitefan.simulator.outbox import (
    QUEUED,
    REFUSED,
    SHED,
    Idle,
    Kind,
    Lose,
    Outbox,
    Outgoing,
    Send,
    Sent,
    Shed,
    Stream,
    Wait,
)


def sent(step: object) -> Outgoing:
    assert isinstance(step, Send), step
    return step.item


def test_frames_go_out_in_order_each_when_its_delay_is_over() -> None:
    box = Outbox(0.0, heartbeat_s=1.0)
    assert box.put(0.0, b"first", Kind.TICKS, 1, delay_s=0.5) is QUEUED
    assert box.put(0.25, "second", Kind.TEXT, delay_s=0.5) is QUEUED
    assert box.queued_bytes == 11
    assert box.next(0.25) == Wait(0.25)
    assert sent(box.next(0.5)) == Outgoing(0.5, b"first", Kind.TICKS, 1, None)
    assert box.next(0.5) == Wait(0.25)
    assert sent(box.next(0.75)).payload == "second"
    assert box.queued_bytes == 0
    # Nothing queued: idle until a heartbeat is due a second after the last put.
    assert box.next(0.75) == Idle(0.5)


def test_an_idle_connection_gets_a_heartbeat_each_interval_and_a_put_holds_it_off() -> None:
    box = Outbox(10.0, heartbeat_s=1.0)
    assert box.next(10.5) == Idle(0.5)
    heartbeat = sent(box.next(11.0))
    assert (heartbeat.payload, heartbeat.kind, heartbeat.ticks) == (HEARTBEAT, Kind.HEARTBEAT, 0)
    box.sent_item(heartbeat)
    assert box.next(11.0) == Idle(1.0)
    box.put(11.5, b"tick", Kind.TICKS, 1)
    assert sent(box.next(11.5)).payload == b"tick"
    assert box.next(12.0) == Idle(0.5)  # a second from the put, not from the heartbeat
    # The delay fault holds the heartbeat too.
    assert box.next(12.5, delay_s=0.25) == Wait(0.25)
    assert sent(box.next(12.75)).payload == HEARTBEAT
    assert (box.sent.heartbeats_sent, box.sent.bytes_sent) == (1, 1)


def test_a_silent_connection_loses_what_was_queued_and_gets_no_heartbeat() -> None:
    box = Outbox(0.0, heartbeat_s=1.0)
    box.put(0.0, b"tick", Kind.TICKS, 1)
    step = box.next(0.0, silent=True)
    assert isinstance(step, Lose)
    assert step.item.payload == b"tick"
    assert box.next(5.0, silent=True) == Idle(1.0)
    assert not box.queue
    assert box.sent == Sent()
    # Speaking again, the heartbeat comes a whole interval after the silent one was skipped.
    assert box.next(5.5) == Idle(0.5)


def test_streaming_waits_for_what_is_queued_and_stops_while_silent() -> None:
    box = Outbox(0.0, heartbeat_s=1.0)
    assert box.next(0.0, stream=True) == Stream()
    assert box.next(2.0, stream=True) == Stream()  # streaming, no heartbeat is needed
    box.put(2.0, "an error", Kind.TEXT)
    assert sent(box.next(2.0, stream=True)).payload == "an error"
    assert box.next(2.0, stream=True, silent=True) == Idle(1.0)
    box.streamed(3.0, 250, 10_000)
    assert box.next(3.5) == Idle(0.5)
    assert (box.sent.frames_sent, box.sent.ticks_sent, box.sent.bytes_sent) == (1, 250, 10_000)


def test_a_slow_client_is_shed_once_and_loses_what_was_queued() -> None:
    box = Outbox(0.0, heartbeat_s=1.0, max_backlog_bytes=10)
    assert box.put(0.0, b"1234", Kind.TICKS, 2) is QUEUED
    assert box.put(0.0, b"5678", Kind.TICKS, 2) is QUEUED
    assert (box.shed, box.queued_bytes) == (None, 8)
    assert box.put(0.0, b"90ab", Kind.TICKS, 2) is SHED  # 12 bytes: past the bound
    assert box.shed == Shed(frames=3, bytes=12)
    # From then on nothing is taken, so the driver drops and counts the client once.
    assert box.put(0.0, b"cd", Kind.TICKS, 1) is REFUSED
    assert box.put(0.0, "text", Kind.TEXT) is REFUSED
    left = box.close()
    assert [item.payload for item in left] == [b"1234", b"5678", b"90ab"]
    assert (box.queued_bytes, box.sent) == (0, Sent())
    assert box.shed == Shed(frames=3, bytes=12)


def test_a_closed_outbox_takes_nothing() -> None:
    box = Outbox(0.0, heartbeat_s=1.0)
    assert box.close() == []
    assert box.put(0.0, b"x", Kind.TICKS, 1) is REFUSED
    assert box.next(5.0) == Idle(1.0)
    assert not box.queue


def test_every_kind_is_counted_on_the_connection_and_in_the_totals() -> None:
    totals = Sent()
    one = Outbox(0.0, heartbeat_s=1.0, totals=(totals,))
    two = Outbox(0.0, heartbeat_s=1.0, totals=(totals,))
    for payload, kind, ticks in (
        (b"\x00\x03" + b"x" * 8, Kind.TICKS, 3),
        ('{"type": "error"}', Kind.TEXT, 0),
        ('{"type": "order"}', Kind.ORDER, 0),
        (b"\x00\x02\x00", Kind.MALFORMED, 0),
    ):
        one.put(0.0, payload, kind, ticks)
        one.sent_item(sent(one.next(0.0)))
    two.put(0.0, b"\x00\x01" + b"y" * 8, Kind.TICKS, 1)
    two.sent_item(sent(two.next(0.0)))
    assert one.sent == Sent(
        frames_sent=1,
        ticks_sent=3,
        texts_sent=2,
        orders_sent=1,
        malformed_sent=1,
        bytes_sent=10 + 17 + 17 + 3,
    )
    assert two.sent == Sent(frames_sent=1, ticks_sent=1, bytes_sent=10)
    assert totals == Sent(
        frames_sent=2,
        ticks_sent=4,
        texts_sent=2,
        orders_sent=1,
        malformed_sent=1,
        bytes_sent=57,
    )
