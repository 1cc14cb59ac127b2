"""Status: the words a StatusEvent carries, as one type, and how each reads back.

Every member's record is checked byte for byte on each path it takes out of a feed (a jsonl line,
a recording's status body, a Redis entry's event field) and back (a recording read, a Redis
entry decoded); a word this version does not know reads back as itself instead of failing.
"""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import pytest

from kitefan.broker import decode_entry, event_fields
from kitefan.events import ConnState, Gap, Status, StatusEvent
from kitefan.recording.format import KIND_STATUS, Record, event_record, record_event
from kitefan.render.dashboard import event_text
from kitefan.render.health import HealthLines
from kitefan.render.records import json_lines

AT = 1_700_000_000.25  # 2023-11-15 03:43:20.250 IST
KITEFAN = Path(__file__).resolve().parent.parent / "kitefan"

# Every word, as it is written: the enum's values are the recorded/published words themselves.
WORDS = {
    Status.CONNECTING: "connecting",
    Status.CONNECTED: "connected",
    Status.RECONNECTING: "reconnecting",
    Status.MESSAGE: "message",
    Status.AUTH_FAILED: "auth_failed",
    Status.SLOT_LIMITED: "slot_limited",
    Status.REPLAN_FAILED: "replan_failed",
    Status.CONFIG_APPLIED: "config_applied",
    Status.CONFIG_REJECTED: "config_rejected",
    Status.PUBLISH_FAILED: "publish_failed",
    Status.TAKEN_OVER: "taken_over",
    Status.LEASE_LAPSED: "lease_lapsed",
}


def test_the_table_names_every_member() -> None:
    assert list(WORDS) == list(Status)


@pytest.mark.parametrize("state", list(Status))
def test_each_state_is_the_same_bytes_on_every_path_out_and_back(state: Status) -> None:
    word = WORDS[state]
    event = StatusEvent("alpha", 1, state, "the message", AT)
    assert json_lines([event], str) == (
        '{"type":"status","key":"alpha","connection":1,"at":"2023-11-15T03:43:20.250+05:30",'
        f'"state":"{word}","message":"the message"}}\n'
    )
    record = event_record(event)
    assert record.body == (
        b'{"state":"' + word.encode() + b'","message":"the message","at":1700000000.25}'
    )
    back = record_event(record)
    assert back == event and isinstance(back, StatusEvent) and back.state is state
    fields = event_fields(event, b"node-1")
    assert fields[b"event"] == json_lines([event], str).rstrip("\n").encode()
    entry = decode_entry(b"1-0", fields, 0.0)
    assert entry.item == event and isinstance(entry.item, StatusEvent)
    assert entry.item.state is state


def test_a_gap_rides_along_unchanged() -> None:
    gap = Gap(AT - 2.5, AT, (256265, 738561), "taken over from node-2")
    event = StatusEvent("alpha", None, Status.TAKEN_OVER, "taken over", AT, gap)
    assert json_lines([event], str) == (
        '{"type":"status","key":"alpha","connection":null,"at":"2023-11-15T03:43:20.250+05:30",'
        '"state":"taken_over","message":"taken over","gap":{"start":'
        '"2023-11-15T03:43:17.750+05:30","end":"2023-11-15T03:43:20.250+05:30","seconds":2.5,'
        '"symbols":2,"reason":"taken over from node-2"}}\n'
    )
    assert record_event(event_record(event)) == event
    assert decode_entry(b"1-0", event_fields(event, b"n"), 0.0).item == event


def test_a_word_this_version_does_not_know_reads_back_as_itself() -> None:
    body = b'{"state":"quota_exceeded","message":"from a newer kitefan","at":1700000000.25}'
    event = record_event(Record(KIND_STATUS, "alpha", None, 1_700_000_000_250_000_000, body))
    assert isinstance(event, StatusEvent)
    state = event.state
    assert isinstance(state, Status) and not state.known and state not in Status
    assert state == "quota_exceeded" and str(state) == "quota_exceeded"
    assert f"{state}" == "quota_exceeded" and json.dumps(state) == '"quota_exceeded"'
    assert event_record(event).body == body  # written again as it was read
    assert json_lines([event], str) == (
        '{"type":"status","key":"alpha","connection":null,"at":"2023-11-15T03:43:20.250+05:30",'
        '"state":"quota_exceeded","message":"from a newer kitefan"}\n'
    )
    published = decode_entry(b"1-0", event_fields(event, b"n"), 0.0).item
    assert published == event and isinstance(published, StatusEvent)
    assert not published.state.known
    # Shown, not acted on: the dashboard's events panel prints it, a pipe's stderr says nothing.
    assert event_text(event).plain == "03:43:20 alpha quota_exceeded: from a newer kitefan"
    assert HealthLines().take([event], AT) == []
    again = pickle.loads(pickle.dumps(state))
    assert again == state and not again.known
    assert pickle.loads(pickle.dumps(Status.CONNECTED)) is Status.CONNECTED


def test_reading_a_known_word_gives_the_member_and_the_constructor_stays_strict() -> None:
    assert all(Status.read(word) is state and state.known for state, word in WORDS.items())
    with pytest.raises(ValueError, match="'quota_exceeded' is not a valid Status"):
        Status("quota_exceeded")


def test_a_connection_reports_its_own_states_and_not_its_refusals_or_close() -> None:
    reported = {state: Status.of_connection(state) for state in ConnState}
    assert reported == {
        ConnState.CONNECTING: Status.CONNECTING,
        ConnState.CONNECTED: Status.CONNECTED,
        ConnState.RECONNECTING: Status.RECONNECTING,
        ConnState.AUTH_FAILED: None,  # said once for the key, by the feed's health
        ConnState.SLOT_LIMITED: None,
        ConnState.CLOSED: None,
    }


def _uses() -> dict[str, set[str]]:
    """Which modules (outside events.py) name each member as ``Status.NAME``."""
    uses: dict[str, set[str]] = {}
    for path in KITEFAN.rglob("*.py"):
        if path.name == "events.py" and path.parent == KITEFAN:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "Status"
            ):
                uses.setdefault(node.attr, set()).add(str(path.relative_to(KITEFAN)))
    return uses


def test_every_member_is_documented_and_sent_by_its_producer() -> None:
    doc = Status.__doc__ or ""
    assert [w for w in WORDS.values() if f"* ``{w}``: " not in doc] == []
    producers = {
        # A connection's own states: lifecycle.py decides them, the manager sends what
        # Status.of_connection makes of them.
        "CONNECTING": {"lifecycle.py"},
        "CONNECTED": {"lifecycle.py", "failover.py"},
        "RECONNECTING": {"lifecycle.py"},
        "MESSAGE": {"manager.py"},
        "AUTH_FAILED": {"failover.py"},
        "SLOT_LIMITED": {"failover.py"},
        "REPLAN_FAILED": {"failover.py"},
        "CONFIG_APPLIED": {"control.py"},
        "CONFIG_REJECTED": {"control.py"},
        "PUBLISH_FAILED": {"cli/stream.py"},
        "TAKEN_OVER": {"share.py"},
        "LEASE_LAPSED": {"share.py"},
    }
    assert list(producers) == [s.name for s in Status]
    uses = _uses()
    for name in (s.name for s in map(Status.of_connection, ConnState) if s is not None):
        if f"ConnState.{name}" in (KITEFAN / "lifecycle.py").read_text():
            uses.setdefault(name, set()).add("lifecycle.py")
    assert "Status.of_connection(conn.state)" in (KITEFAN / "manager.py").read_text()
    assert {n: m - uses.get(n, set()) for n, m in producers.items() if m - uses.get(n, set())} == {}
