"""A recording as the simulator's packet source, pure: instants, each connection's frames, modes
cut from the recorded packets, snapshots, the lacking-mode text, the window of the day."""

from __future__ import annotations

import json

import pytest

from kitefan.codec import decode_frame, error_message, frame_of_packets
from kitefan.models import Mode, PacketKind
from kitefan.simulator.feed import Feed
from kitefan.simulator.market import MAX_FRAME_BYTES, Market
from kitefan.simulator.recorded import (
    INSTANT_NS,
    RecordedFrame,
    Replay,
    Viewer,
    Window,
    index_frames,
    lacking_text,
    served_length,
)

NOW = 1_700_023_531  # 2023-11-15 10:15:31 IST
T0 = NOW * 1_000_000_000
INFY, TCS, SBIN = 408065, 2953217, 779521  # NSE
NIFTY = 256265  # index
MS = 1_000_000


def packets(market: Market, mode: Mode, *tokens: int, step: int = 0) -> list[bytes]:
    out = []
    for token in tokens:
        instrument = market.instrument(token, NOW)
        for i in range(step):
            instrument.step(NOW + i)
        out.append(instrument.packet(mode))
    return out


def frame(market: Market, mode: Mode, *tokens: int, step: int = 1) -> bytes:
    return frame_of_packets(packets(market, mode, *tokens, step=step))


def replay_of(frames: list[RecordedFrame], **options: object) -> Replay:
    return Replay(lambda: frames, index_frames(frames), **options)  # type: ignore[arg-type]  # each case passes its own options


def connection(replay: Replay) -> tuple[Feed, Viewer]:
    feed = Feed()
    return feed, replay.viewer(feed.subscriptions)


def ask(feed: Feed, view: Viewer, request: object) -> tuple[list[str], list[tuple[bytes, int]]]:
    reply = feed.receive(json.dumps(request))
    assert reply.texts == ()
    return view.request(reply.snapshot, reply.removed)


def play(replay: Replay, *views: Viewer) -> list[list[bytes]]:
    """Every instant of one pass; what each view got of it, frame by frame."""
    got: list[list[bytes]] = [[] for _ in views]
    for instant in replay.instants():
        replay.advance(instant)
        for i, view in enumerate(views):
            got[i].extend(data for data, _ in view.frames(instant))
    return got


def test_a_recorded_packet_is_served_in_each_mode_by_its_leading_bytes() -> None:
    assert {
        kind: [served_length(kind, mode) for mode in (Mode.FULL, Mode.QUOTE, Mode.LTP)]
        for kind in PacketKind
    } == {
        PacketKind.FULL: [184, 44, 8],
        PacketKind.QUOTE: [44, 44, 8],
        PacketKind.INDEX_FULL: [32, 28, 8],
        PacketKind.INDEX_QUOTE: [28, 28, 8],
        PacketKind.LTP: [8, 8, 8],
    }
    market = Market(seed=5)
    full = packets(market, Mode.FULL, INFY, NIFTY)
    assert full[0][:44] == market.packet(INFY, Mode.QUOTE, NOW)
    assert full[0][:8] == market.packet(INFY, Mode.LTP, NOW)
    assert full[1][:28] == market.packet(NIFTY, Mode.QUOTE, NOW)
    assert full[1][:8] == market.packet(NIFTY, Mode.LTP, NOW)


def test_a_connection_with_the_recorded_subscriptions_gets_the_recorded_bytes() -> None:
    market = Market(seed=1)
    recorded = [
        RecordedFrame(T0 + i * 100 * MS, frame(market, Mode.FULL, INFY, TCS, NIFTY), "a/1")
        for i in range(3)
    ]
    replay = replay_of(recorded)
    feed, view = connection(replay)
    assert ask(feed, view, {"a": "mode", "v": ["full", [INFY, TCS, NIFTY, SBIN]]}) == ([], [])
    (got,) = play(replay, view)
    assert got == [f.data for f in recorded]
    assert replay.position == 3
    assert replay.ticks == 9


def test_a_connection_gets_only_its_tokens_in_recorded_order_each_in_its_mode() -> None:
    market = Market(seed=2)
    data = frame(market, Mode.FULL, INFY, NIFTY, TCS, SBIN)
    replay = replay_of([RecordedFrame(T0, data)])
    feed, view = connection(replay)
    ask(feed, view, {"a": "subscribe", "v": [SBIN, NIFTY, TCS]})  # quote
    ask(feed, view, {"a": "mode", "v": ["ltp", [SBIN]]})
    ((got,),) = play(replay, view)
    ticks = {t.instrument_token: t for t in decode_frame(data)}
    assert [(t.instrument_token, t.kind) for t in decode_frame(got)] == [
        (NIFTY, PacketKind.INDEX_QUOTE),
        (TCS, PacketKind.QUOTE),
        (SBIN, PacketKind.LTP),
    ]
    assert [t.values for t in decode_frame(got)] == [
        ticks[NIFTY].values[:7],
        ticks[TCS].values[:11],
        ticks[SBIN].values[:2],
    ]


def test_frames_of_one_moment_from_two_recorded_connections_are_one_frame() -> None:
    market = Market(seed=3)
    a = frame(market, Mode.FULL, INFY, TCS)
    b = frame(market, Mode.QUOTE, SBIN, NIFTY)
    later = frame(market, Mode.FULL, INFY, TCS)
    recorded = [
        RecordedFrame(T0, a, ("alpha", 1)),
        RecordedFrame(T0 + INSTANT_NS // 2, b, ("alpha", 2)),
        RecordedFrame(T0 + INSTANT_NS // 2 + 1, later, ("alpha", 1)),  # same origin: not merged
        RecordedFrame(T0 + 10 * INSTANT_NS, b, ("alpha", 2)),
    ]
    replay = replay_of(recorded)
    assert [(i.time_ns - T0, len(i.frames)) for i in replay.instants()] == [
        (0, 2),
        (INSTANT_NS // 2 + 1, 1),
        (10 * INSTANT_NS, 1),
    ]
    both_feed, both = connection(replay)
    ask(both_feed, both, {"a": "mode", "v": ["full", [INFY, TCS, SBIN, NIFTY]]})
    one_feed, one = connection(replay)
    ask(one_feed, one, {"a": "mode", "v": ["full", [INFY, TCS]]})
    everything, only_a = play(replay, both, one)
    assert everything == [frame_of_packets([*split(a), *split(b)]), later, b]
    assert only_a == [a, later]  # the recorded frames themselves


def split(data: bytes) -> list[bytes]:
    out, offset = [], 2
    for _ in range(int.from_bytes(data[:2], "big")):
        length = int.from_bytes(data[offset : offset + 2], "big")
        out.append(data[offset + 2 : offset + 2 + length])
        offset += 2 + length
    return out


def test_an_instant_past_256_kib_is_cut_into_frames() -> None:
    market = Market(seed=4)
    tokens = [(i << 8) | 1 for i in range(1, 1501)]  # 1500 full packets: 279 KiB
    data = frame(market, Mode.FULL, *tokens)
    replay = replay_of([RecordedFrame(T0, data)])
    feed, view = connection(replay)
    ask(feed, view, {"a": "mode", "v": ["quote", tokens[:-1]]})  # cut: not served as recorded
    ask(feed, view, {"a": "mode", "v": ["full", tokens[:-1]]})
    ((first, second),) = play(replay, view)
    assert len(first) <= MAX_FRAME_BYTES
    assert [*split(first), *split(second)] == split(data)[:-1]


def test_snapshots_send_only_what_the_connection_does_not_hold() -> None:
    market = Market(seed=6)
    one = frame(market, Mode.FULL, INFY, TCS)
    two = frame(market, Mode.QUOTE, INFY)
    replay = replay_of([RecordedFrame(T0, one), RecordedFrame(T0 + 50 * MS, two)])
    feed, view = connection(replay)
    # Before the replay starts there is no current packet: nothing at once.
    assert ask(feed, view, {"a": "subscribe", "v": [INFY, TCS]}) == ([], [])
    instants = replay.instants()
    first = next(instants)
    replay.advance(first)
    assert [d for d, _ in view.frames(first)] == [frame_of_packets([p[:44] for p in split(one)])]
    # The same mode again: it holds the packets already.
    assert ask(feed, view, {"a": "mode", "v": ["quote", [INFY, TCS]]}) == ([], [])
    assert ask(feed, view, {"a": "subscribe", "v": [INFY]}) == ([], [])
    # Full: the fresh packet in full, at once, as Kite sends one on a mode change.
    texts, frames = ask(feed, view, {"a": "mode", "v": ["full", [INFY]]})
    assert texts == []
    assert frames == [(frame_of_packets([split(one)[0]]), 1)]
    # A new connection gets the latest packet of each token it subscribes.
    late_feed, late = connection(replay)
    assert ask(late_feed, late, {"a": "mode", "v": ["ltp", [TCS, SBIN]]}) == (
        [],
        [(frame_of_packets([split(one)[1][:8]]), 1)],
    )
    second = next(instants)
    replay.advance(second)
    # INFY was recorded as a quote packet next: full is served as the quote the recording has.
    assert [d for d, _ in view.frames(second)] == [two]
    assert late.frames(second) == []


def test_a_mode_the_recording_lacks_is_said_once_and_the_best_one_is_sent() -> None:
    market = Market(seed=7)
    data = frame_of_packets(
        [
            *packets(market, Mode.QUOTE, INFY),
            *packets(market, Mode.LTP, TCS),
            *packets(market, Mode.FULL, NIFTY),
        ]
    )
    replay = replay_of([RecordedFrame(T0, data)])
    assert replay.index.best == {INFY: Mode.QUOTE, TCS: Mode.LTP, NIFTY: Mode.FULL}
    feed, view = connection(replay)
    texts, _ = ask(feed, view, {"a": "mode", "v": ["full", [INFY, TCS, NIFTY, SBIN]]})
    assert texts == [
        error_message(
            "The recording has no full packets of 408065 (quote), 2953217 (ltp); "
            "each is sent in the best mode it has."
        )
    ]
    assert ask(feed, view, {"a": "mode", "v": ["full", [INFY, TCS]]}) == ([], [])
    texts, _ = ask(feed, view, {"a": "mode", "v": ["quote", [INFY, TCS]]})
    assert texts == [
        error_message(
            "The recording has no quote packets of 2953217 (ltp); "
            "each is sent in the best mode it has."
        )
    ]
    ((got,),) = play(replay, view)
    assert got == data  # every packet at least in the mode it was recorded in: as recorded
    many = list(range(1, 13))
    assert lacking_text(Mode.FULL, many, dict.fromkeys(many, Mode.LTP)).endswith(
        "10 (ltp) and 2 more; each is sent in the best mode it has."
    )


def test_unsubscribed_tokens_stop_and_resubscribed_ones_get_their_latest_packet() -> None:
    market = Market(seed=8)
    recorded = [RecordedFrame(T0 + i * MS * 10, frame(market, Mode.QUOTE, INFY)) for i in range(3)]
    replay = replay_of(recorded)
    feed, view = connection(replay)
    ask(feed, view, {"a": "subscribe", "v": [INFY]})
    instants = list(replay.instants())
    replay.advance(instants[0])
    assert [d for d, _ in view.frames(instants[0])] == [recorded[0].data]
    ask(feed, view, {"a": "unsubscribe", "v": [INFY]})
    replay.advance(instants[1])
    assert view.frames(instants[1]) == []
    assert ask(feed, view, {"a": "subscribe", "v": [INFY]}) == ([], [(recorded[1].data, 1)])


def test_heartbeats_empty_and_malformed_frames_are_not_served_and_malformed_ones_counted() -> None:
    market = Market(seed=9)
    good = frame(market, Mode.FULL, INFY)
    recorded = [
        RecordedFrame(T0, b"\x00"),
        RecordedFrame(T0 + 1, b"\x00\x00"),
        RecordedFrame(T0 + 2, good[:-3]),  # cut
        RecordedFrame(T0 + 3 * INSTANT_NS, good),
        # A packet of a length no layout has is dropped; the rest is served.
        RecordedFrame(T0 + 6 * INSTANT_NS, frame_of_packets([b"\x01" * 12, *split(good)])),
    ]
    index = index_frames(recorded)
    assert (index.frames, index.ticks, index.malformed) == (2, 2, 1)
    assert (index.first_ns, index.last_ns) == (T0 + 3 * INSTANT_NS, T0 + 6 * INSTANT_NS)
    replay = Replay(lambda: recorded, index)
    feed, view = connection(replay)
    ask(feed, view, {"a": "mode", "v": ["full", [INFY]]})
    assert play(replay, view) == [[good, good]]


@pytest.mark.parametrize(
    ("window", "kept"),
    [
        (Window(), [0, 1, 2, 3]),
        (Window(10 * 3600 + 16 * 60, None), [1, 2, 3]),
        (Window(None, 10 * 3600 + 17 * 60), [0, 1]),
        (Window(10 * 3600 + 16 * 60, 10 * 3600 + 17 * 60), [1]),
        (Window(10 * 3600 + 17 * 60, 10 * 3600 + 16 * 60), [0, 2, 3]),  # across midnight
    ],
)
def test_a_window_keeps_a_span_of_the_ist_day(window: Window, kept: list[int]) -> None:
    # 10:15:31, 10:16:31, 10:17:31 IST, and 10:17:31 the next day.
    times = [T0, T0 + 60 * 10**9, T0 + 120 * 10**9, T0 + (86_400 + 120) * 10**9]
    market = Market(seed=10)
    recorded = [RecordedFrame(t, frame(market, Mode.LTP, INFY)) for t in times]
    replay = Replay(lambda: recorded, index_frames(recorded, window), window=window)
    assert replay.index.frames == len(kept)
    assert [i.time_ns for i in replay.instants()] == [times[k] for k in kept]


def test_a_speed_must_be_more_than_zero() -> None:
    index = index_frames([])
    for speed in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="speed must be more than 0"):
            Replay(list, index, speed=speed)


def test_a_layout_repeated_on_a_connection_is_known_and_any_other_is_parsed() -> None:
    market = Market(seed=12)
    recorded = [
        frame(market, Mode.FULL, INFY, TCS),
        frame(market, Mode.FULL, INFY, TCS),  # the layout repeats: known from now on
        frame(market, Mode.FULL, INFY, TCS),
        frame(market, Mode.FULL, TCS, INFY),  # the same size, the tokens swapped
        frame(market, Mode.FULL, SBIN, TCS),
        frame_of_packets(packets(market, Mode.QUOTE, INFY, TCS)),
    ]
    frames = [
        RecordedFrame(T0 + i * 10 * INSTANT_NS, data, "a/0") for i, data in enumerate(recorded)
    ]
    replay = replay_of(frames)
    assert (replay.index.frames, replay.index.ticks) == (6, 12)
    feed, view = connection(replay)
    ask(feed, view, {"a": "subscribe", "v": [INFY]})
    (got,) = play(replay, view)
    assert got == [
        frame_of_packets([next(p for p in split(data) if p[:4] == INFY.to_bytes(4, "big"))[:44]])
        for data in recorded
        if INFY.to_bytes(4, "big") in [p[:4] for p in split(data)]
    ]
    assert len(got) == 5


def test_the_latest_packet_follows_every_frame_known_layouts_and_others_alike() -> None:
    market = Market(seed=13)
    a = [frame(market, Mode.FULL, INFY, TCS) for _ in range(3)]  # a known layout from the second
    b = frame(market, Mode.QUOTE, INFY)  # another frame takes INFY
    c = frame(market, Mode.FULL, INFY, TCS)  # and the layout takes it back
    recorded = [*a, b, c]
    frames = [
        RecordedFrame(T0 + i * 10 * INSTANT_NS, data, "a/0") for i, data in enumerate(recorded)
    ]
    replay = replay_of(frames)
    snapshots = []
    for instant in replay.instants():
        replay.advance(instant)
        feed, view = connection(replay)
        snapshots.append(ask(feed, view, {"a": "mode", "v": ["full", [INFY, TCS]]})[1])
    assert [[data for data, _ in s] for s in snapshots] == [
        [a[0]],
        [a[1]],
        [a[2]],
        [frame_of_packets([split(b)[0], split(a[2])[1]])],
        [c],
    ]
