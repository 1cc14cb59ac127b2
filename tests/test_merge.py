"""The merge of redundant feeds: each snapshot delivered once, duplicates and one-sided snapshots
counted per key, exact frames out (no sockets: batches built from packets, times given)."""

from __future__ import annotations

from kitefan.codec import decode_frame, frame_of_packets, scan_frame
from kitefan.events import TickBatch
from kitefan.merge import WINDOW_S, Merge
from kitefan.models import Tick


def ltp(token: int, price: int) -> Tick:
    return Tick(8, (token, price))


def quote(token: int, price: int) -> Tick:
    return Tick(44, (token, price, 1, 2, 3, 4, 5, 6, 7, 8, 9))


def full(token: int, price: int, second: int) -> Tick:
    values = (token, price, 1, 2, 3, 4, 5, 6, 7, 8, 9, second, 0, 0, 0, second)
    return Tick(184, values + (1, 2, 3) * 10)


def batch(key: str, at: float, *ticks: Tick, connection: int = 0) -> TickBatch:
    return TickBatch.of_ticks(key, connection, ticks, received_at=at, received_wall=1000 + at)


ROUTES = {1: ("a", "b"), 2: ("a", "b"), 3: ("b", "c")}


def merge() -> Merge:
    return Merge(["a", "b", "c"], ROUTES)


def test_the_first_copy_is_delivered_as_it_came_and_the_second_dropped() -> None:
    m = merge()
    first = batch("a", 0.0, full(1, 100, 10), full(2, 200, 10))
    assert m.push(first) is first
    assert m.push(batch("b", 0.05, full(2, 200, 10), full(1, 100, 10))) is None
    assert (m.counts.delivered, m.counts.duplicates) == (2, {"a": 0, "b": 2, "c": 0})
    m.flush()
    assert m.counts.missed == {"a": 0, "b": 0, "c": 0}
    assert m.pending == 0


def test_a_batch_that_lost_packets_is_a_new_frame_of_the_rest_in_order() -> None:
    m = merge()
    m.push(batch("a", 0.0, full(1, 100, 10)))
    second = batch("b", 0.01, quote(2, 5), full(1, 100, 10), ltp(9, 7), full(1, 101, 11))
    out = m.push(second)
    assert out is not None and out is not second
    assert (out.key, out.connection, out.received_at, out.received_wall) == ("b", 0, 0.01, 1000.01)
    assert (
        out.frame
        == frame_of_packets(
            [
                second.frame[4:48],  # quote(2, 5)
                second.frame[48 + 186 + 2 : 48 + 186 + 2 + 8],  # ltp(9, 7): token 9 has no route
                second.frame[-184:],  # full(1, 101, 11)
            ]
        )
    )
    assert scan_frame(out.frame) == (3, 0) and len(out) == 3
    assert decode_frame(out.frame) == [quote(2, 5), ltp(9, 7), full(1, 101, 11)]
    assert (m.counts.delivered, m.counts.passed, m.counts.duplicate_count) == (3, 1, 1)


def test_a_snapshot_on_one_key_only_is_delivered_and_counted_missed_by_the_other() -> None:
    m = merge()
    m.push(batch("a", 0.0, full(1, 100, 10), full(2, 200, 10)))
    m.push(batch("b", 0.1, full(1, 100, 10)))  # b never sends token 2's second 10
    m.push(batch("b", 1.0, full(3, 300, 11)))  # c never sends token 3's second 11
    assert m.counts.missed == {"a": 0, "b": 0, "c": 0}  # not settled: copies may still come
    m.expire(0.0 + WINDOW_S + 0.01)
    assert m.counts.missed == {"a": 0, "b": 1, "c": 0}
    assert m.pending == 1
    m.expire(1.0 + WINDOW_S + 0.01)
    assert m.counts.missed == {"a": 0, "b": 1, "c": 1}
    assert (m.counts.delivered, m.counts.duplicate_count, m.counts.one_sided) == (3, 1, 2)


def test_equal_quotes_within_the_window_are_one_snapshot_whichever_key_sent_them() -> None:
    m = merge()
    same = quote(1, 500)
    assert m.push(batch("a", 0.0, same)) is not None
    assert m.push(batch("b", 0.02, same)) is None
    assert m.push(batch("a", 1.0, same)) is None  # the same bytes again: the same snapshot
    assert m.push(batch("b", 1.5, quote(1, 501))) is not None
    assert m.push(batch("a", 1.52, quote(1, 501))) is None
    m.flush()
    assert m.counts.delivered == 2
    assert m.counts.duplicates == {"a": 2, "b": 1, "c": 0}
    assert m.counts.missed == {"a": 0, "b": 0, "c": 0}


def test_a_repeat_of_the_last_delivered_state_is_a_duplicate_however_late() -> None:
    """A reconnected key's first packet repeats the state the other key already delivered."""
    m = merge()
    m.push(batch("a", 0.0, full(1, 100, 10)))
    m.push(batch("b", 0.01, full(1, 100, 10)))
    assert m.push(batch("a", 30.0, full(1, 100, 10))) is None
    assert m.counts.duplicates == {"a": 1, "b": 1, "c": 0}


def test_equal_quotes_further_apart_than_the_window_with_a_change_between_are_two_ticks() -> None:
    m = merge()
    m.push(batch("a", 0.0, ltp(1, 5)))
    m.push(batch("a", 0.5, ltp(1, 6)))
    assert m.push(batch("b", WINDOW_S + 0.5, ltp(1, 5))) is not None  # back to 5: a new tick
    m.flush()
    assert m.counts.delivered == 3
    assert m.counts.missed == {"a": 1, "b": 2, "c": 0}


def test_tokens_on_one_key_and_unknown_keys_pass_through_unexamined() -> None:
    m = merge()
    single = batch("c", 0.0, ltp(7, 1), ltp(7, 1))
    assert m.push(single) is single
    stranger = batch("z", 0.0, ltp(1, 1))
    assert m.push(stranger) is stranger
    assert (m.counts.passed, m.counts.delivered, m.pending) == (3, 0, 0)


def test_a_new_route_takes_effect_for_the_next_packets() -> None:
    m = merge()
    m.route({1: ("a", "c")})
    m.push(batch("a", 0.0, ltp(1, 5)))
    assert m.push(batch("c", 0.1, ltp(1, 5))) is None
    m.push(batch("a", 0.2, ltp(1, 6)))
    m.flush()
    assert m.pending == 0
    assert m.counts.missed == {"a": 0, "b": 0, "c": 1}
    assert m.push(batch("b", 5.0, ltp(2, 1))).count == 1  # type: ignore[union-attr]  # a batch passes
    assert m.counts.passed == 1  # token 2 is no longer redundant


def test_a_connection_drop_on_one_key_loses_nothing() -> None:
    """a drops from second 3 to 6: every second is delivered once; b's copies fill the gap."""
    m = merge()
    delivered: list[int] = []
    for second in range(10):
        at = float(second)
        for key, lag in (("a", 0.0), ("b", 0.03)):
            if key == "a" and 3 <= second < 6:
                continue
            out = m.push(batch(key, at + lag, full(1, 100 + second, second)))
            if out is not None:
                delivered.extend(t.values[-31] for t in out.ticks)
    m.flush()
    assert delivered == list(range(10))
    assert m.counts.missed == {"a": 3, "b": 0, "c": 0}
    assert m.counts.duplicates == {"a": 0, "b": 7, "c": 0}


def test_a_full_copy_older_than_the_last_delivered_is_a_duplicate_however_late() -> None:
    """A key lagging more than the window behind: its copies of snapshots the other key already
    delivered, and superseded since, are duplicates too (full mode carries the exchange time)."""
    m = merge()
    m.push(batch("a", 0.0, full(1, 100, 10)))
    m.push(batch("a", 1.0, full(1, 101, 11)))
    # b, 3 s behind: its copy of second 10 comes after second 11 was delivered.
    assert m.push(batch("b", 3.0, full(1, 100, 10))) is None
    assert m.push(batch("b", 4.0, full(1, 101, 11))) is None  # the last delivered, again
    newer = batch("b", 4.5, full(1, 102, 12))
    assert m.push(newer) is newer  # the lagging key's new snapshot is still delivered
    assert m.counts.duplicates == {"a": 0, "b": 2, "c": 0}
    assert m.counts.delivered == 3
