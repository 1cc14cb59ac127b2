"""FeedSession, driven with calls only: the exact messages it asks to send."""

from __future__ import annotations

import pytest

from kitefan.models import Mode
from kitefan.session import FeedSession


def test_nothing_is_sent_while_closed_and_everything_on_open() -> None:
    session = FeedSession(batch_size=2)
    session.add([(1, Mode.QUOTE), (2, Mode.FULL), (3, Mode.QUOTE), (4, Mode.LTP)])
    assert session.data_to_send() == []
    session.opened()
    assert session.data_to_send() == [
        '{"a":"subscribe","v":[1,2]}',
        '{"a":"subscribe","v":[3,4]}',
        '{"a":"mode","v":["ltp",[4]]}',
        '{"a":"mode","v":["quote",[1,3]]}',
        '{"a":"mode","v":["full",[2]]}',
    ]
    assert session.data_to_send() == []


def test_reopen_resubscribes_everything_in_its_mode() -> None:
    session = FeedSession(batch_size=500)
    session.add([(10, Mode.FULL), (11, Mode.QUOTE)])
    session.opened()
    session.data_to_send()
    session.set_mode([11], Mode.LTP)
    assert session.data_to_send() == ['{"a":"mode","v":["ltp",[11]]}']
    session.closed()
    session.add([(12, Mode.QUOTE)])
    session.remove([10])
    assert session.data_to_send() == []
    session.opened()
    assert session.data_to_send() == [
        '{"a":"subscribe","v":[11,12]}',
        '{"a":"mode","v":["ltp",[11]]}',
        '{"a":"mode","v":["quote",[12]]}',
    ]


def test_changes_while_open_go_out_at_once() -> None:
    session = FeedSession(batch_size=500)
    session.opened()
    session.add([(5, Mode.QUOTE), (6, Mode.FULL)])
    assert session.data_to_send() == [
        '{"a":"subscribe","v":[5,6]}',
        '{"a":"mode","v":["quote",[5]]}',
        '{"a":"mode","v":["full",[6]]}',
    ]
    session.add([(5, Mode.QUOTE), (6, Mode.LTP), (7, Mode.LTP)])
    assert session.data_to_send() == [
        '{"a":"subscribe","v":[7]}',
        '{"a":"mode","v":["ltp",[7]]}',
        '{"a":"mode","v":["ltp",[6]]}',
    ]
    session.remove([5, 99])
    assert session.data_to_send() == ['{"a":"unsubscribe","v":[5]}']
    assert dict(session.wanted) == {6: Mode.LTP, 7: Mode.LTP}


def test_unsent_messages_are_dropped_when_the_socket_closes() -> None:
    session = FeedSession()
    session.opened()
    session.add([(1, Mode.QUOTE)])
    session.closed()
    assert session.data_to_send() == []
    assert dict(session.wanted) == {1: Mode.QUOTE}


def test_silent_tokens_are_those_subscribed_since_open() -> None:
    session = FeedSession()
    session.add([(1, Mode.QUOTE), (2, Mode.QUOTE)])
    assert session.silent == set()
    session.opened()
    assert session.silent == {1, 2}
    session.silent.discard(1)
    session.add([(3, Mode.FULL)])
    assert session.silent == {2, 3}
    session.remove([2])
    assert session.silent == {3}
    session.closed()
    session.opened()
    assert session.silent == {1, 3}


def test_clear_unsubscribes_everything() -> None:
    session = FeedSession(batch_size=2)
    session.add([(1, Mode.QUOTE), (2, Mode.QUOTE), (3, Mode.QUOTE)])
    session.opened()
    session.data_to_send()
    session.clear()
    assert session.data_to_send() == [
        '{"a":"unsubscribe","v":[1,2]}',
        '{"a":"unsubscribe","v":[3]}',
    ]
    assert len(session) == 0


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        FeedSession(batch_size=0)


def test_the_count_by_mode_follows_every_change() -> None:
    session = FeedSession(batch_size=500)
    assert session.count_by_mode() == {Mode.LTP: 0, Mode.QUOTE: 0, Mode.FULL: 0}
    session.add([(1, Mode.FULL), (2, Mode.FULL), (3, Mode.QUOTE)])
    assert session.count_by_mode() == {Mode.LTP: 0, Mode.QUOTE: 1, Mode.FULL: 2}
    session.set_mode([2], Mode.LTP)
    assert session.count_by_mode() == {Mode.LTP: 1, Mode.QUOTE: 1, Mode.FULL: 1}
    session.remove([1, 99])
    assert session.count_by_mode() == {Mode.LTP: 1, Mode.QUOTE: 1, Mode.FULL: 0}
    session.clear()
    assert session.count_by_mode() == {Mode.LTP: 0, Mode.QUOTE: 0, Mode.FULL: 0}
