"""A recording as the simulator's packet source: instants, each connection's frames, snapshots.

``kitefan replay`` serves recorded frames instead of the seeded market. The server
(:class:`~kitefan.simulator.server.Simulator` with ``replay=``) paces; this module decides what
each connection gets, and keeps no clock:

* **The frames.** A recording is a time-ordered sequence of :class:`RecordedFrame` (receive time
  in nanoseconds, the frame's bytes, where it came from: the recording's key and connection).
  Heartbeats, empty frames and malformed frames are not served (malformed ones are counted);
  packets of a length no layout has are dropped. :class:`Window` keeps the frames of a span of the
  IST day (``--from 09:15 --to 10:00``).
* **Instants.** Frames of different recorded connections received within
  :data:`INSTANT_NS` of each other are one instant, as the real server sends each connection its
  packets of one moment in one frame: a connection subscribed to tokens that were recorded on two
  connections gets one frame per instant, not two. Two frames of the same recorded connection
  are never merged.
* **Modes.** A packet is served in the mode the connection asked for where the recording has it:
  a full packet (184 bytes) is served as quote by its first 44 bytes and as LTP by its first 8;
  an index's full packet (32) as quote by its first 28 and as LTP by its first 8; a quote packet
  (44) as LTP by its first 8. A mode the recording lacks for a token (full on a token recorded in
  quote) is said once to that connection as an error text (:func:`lacking_text`), and the token is
  served in the best mode the recording has. A connection subscribed to every token of a frame,
  each at least in the mode it was recorded in, gets the recorded bytes unchanged, so a client
  with the recording's subscriptions receives the recorded frames exactly.
* **Snapshots.** On subscribe and on a mode change, a connection gets the latest packet of each
  token at once, as Kite sends the current packet, unless it already holds that packet in that
  mode: a ``mode`` request that changes nothing, or a subscribe before the replay starts, sends
  nothing. So a client recording the replay records what was recorded, no more. The latest frame
  of each token is kept for this (one frame per token at most, usually the last few of each
  recorded connection).
* **Cost.** Each frame is parsed once for every connection (its runs and tokens, at C speed), and
  each connection decides once per frame *shape* (the same tokens in the same layouts, as every
  frame of a recorded connection at a steady subscription has) whether to skip it, send it as
  recorded, or pick its packets, until its subscriptions change.

Owns: :class:`RecordedFrame`, :class:`Window`, :class:`TapeIndex` (:func:`index_frames`),
:class:`Instant`, :class:`Replay`, :class:`Viewer`, :func:`served_length`, :func:`lacking_text`.
Pure: must not import asyncio, websockets, rich or typer, and does no I/O (the frames it is given
may be read from a file by whoever iterates them).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import NamedTuple

from kitefan.codec import error_message, packet_runs, run_columns, scan_frame
from kitefan.errors import CodecError
from kitefan.models import MODE_RANK, Mode, PacketKind
from kitefan.simulator.market import MAX_FRAME_BYTES, MAX_FRAME_PACKETS, assemble_frames

__all__ = [
    "INSTANT_NS",
    "Instant",
    "RecordedFrame",
    "Replay",
    "TapeIndex",
    "Viewer",
    "Window",
    "index_frames",
    "lacking_text",
    "served_length",
]

#: Frames of different recorded connections this close (2 ms) are one instant.
INSTANT_NS = 2_000_000

_IST_OFFSET_S = 5 * 3600 + 30 * 60
_DAY_S = 86_400

#: recorded packet length -> the length it is served at in each mode.
_SERVED: Mapping[int, Mapping[Mode, int]] = {
    PacketKind.FULL: {Mode.FULL: 184, Mode.QUOTE: 44, Mode.LTP: 8},
    PacketKind.QUOTE: {Mode.FULL: 44, Mode.QUOTE: 44, Mode.LTP: 8},
    PacketKind.INDEX_FULL: {Mode.FULL: 32, Mode.QUOTE: 28, Mode.LTP: 8},
    PacketKind.INDEX_QUOTE: {Mode.FULL: 28, Mode.QUOTE: 28, Mode.LTP: 8},
    PacketKind.LTP: {Mode.FULL: 8, Mode.QUOTE: 8, Mode.LTP: 8},
}
#: recorded packet length -> the mode it was recorded in.
_LEVEL: Mapping[int, Mode] = {
    PacketKind.FULL: Mode.FULL,
    PacketKind.QUOTE: Mode.QUOTE,
    PacketKind.INDEX_FULL: Mode.FULL,
    PacketKind.INDEX_QUOTE: Mode.QUOTE,
    PacketKind.LTP: Mode.LTP,
}
_PREFIX: Mapping[int, bytes] = {n: n.to_bytes(2, "big") for n in (8, 28, 32, 44, 184)}
_LISTED = 10  # tokens named in a lacking-mode text before "and N more"
# What a connection does with a frame: nothing, send it as recorded, pick its packets.
_SKIP, _WHOLE, _PICK = 0, 1, 2
_DECISIONS = 4096  # frame shapes a connection remembers its decision for
_LAYOUTS = 64  # frame layouts kept per recorded connection


def served_length(recorded: int, mode: Mode) -> int:
    """How many leading bytes of a recorded packet of ``recorded`` bytes are served in ``mode``.

    Raises:
        KeyError: no packet layout is ``recorded`` bytes long.
    """
    return _SERVED[recorded][mode]


def lacking_text(mode: Mode, tokens: Sequence[int], best: Mapping[int, Mode]) -> str:
    """The error text of a request for a mode the recording lacks for ``tokens``.

    ``best`` is the best mode the recording has for each of them.
    """
    named = ", ".join(f"{t} ({best[t].value})" for t in tokens[:_LISTED])
    more = f" and {len(tokens) - _LISTED} more" if len(tokens) > _LISTED else ""
    return (
        f"The recording has no {mode.value} packets of {named}{more}; "
        "each is sent in the best mode it has."
    )


class RecordedFrame(NamedTuple):
    """One recorded frame.

    Attributes:
        time_ns: when it was received (Unix nanoseconds).
        data: the frame's bytes, as received.
        origin: where it was received (the recording's key and connection); frames of one origin
            are never merged into one instant.
    """

    time_ns: int
    data: bytes
    origin: Hashable = None


@dataclass(frozen=True, slots=True)
class Window:
    """A span of the IST day: frames received at ``start_s <= time of day < end_s`` (seconds
    after IST midnight) are kept; ``None`` leaves that side open. ``start_s > end_s`` spans
    midnight."""

    start_s: int | None = None
    end_s: int | None = None

    def __contains__(self, time_ns: object) -> bool:
        if not isinstance(time_ns, int):
            return False
        start, end = self.start_s, self.end_s
        if start is None and end is None:
            return True
        day = (time_ns // 1_000_000_000 + _IST_OFFSET_S) % _DAY_S
        after = start is None or day >= start
        before = end is None or day < end
        if start is not None and end is not None and start > end:
            return after or before
        return after and before


@dataclass(frozen=True, slots=True)
class TapeIndex:
    """What one pass over a recording's window found (:func:`index_frames`).

    Attributes:
        frames: frames that hold ticks.
        ticks: packets in them.
        malformed: frames not served because they are malformed.
        first_ns: receive time of the first frame with ticks (``None``: there is none).
        last_ns: receive time of the last one.
        best: token -> the best mode the recording has for it.
    """

    frames: int
    ticks: int
    malformed: int
    first_ns: int | None
    last_ns: int | None
    best: Mapping[int, Mode]


def index_frames(frames: Iterable[RecordedFrame], window: Window | None = None) -> TapeIndex:
    """One pass over ``frames``: what they hold, and the best mode recorded for each token."""
    seen: dict[int, set[int]] = {length: set() for length in _SERVED}
    count = ticks = malformed = 0
    first: int | None = None
    last: int | None = None
    parser = _Parser()
    for frame in frames:
        time_ns = frame.time_ns
        if window is not None and time_ns not in window:
            continue
        parsed = parser.parse(frame.data, frame.origin)
        if parsed is None:
            continue
        if parsed is _MALFORMED:
            malformed += 1
            continue
        count += 1
        ticks += parsed.ticks
        if first is None:
            first = time_ns
        last = time_ns
        for _, length, _, tokens in parsed.runs:
            seen[length].update(tokens)
    best: dict[int, Mode] = {}
    for mode in (Mode.LTP, Mode.QUOTE, Mode.FULL):  # later levels overwrite earlier ones
        for length, recorded in seen.items():
            if _LEVEL[length] is mode:
                best.update(dict.fromkeys(recorded, mode))
    return TapeIndex(count, ticks, malformed, first, last, best)


_Run = tuple[int, int, int, list[int]]  # offset of the first packet, length, count, tokens


class _Frame:
    """A recorded frame, parsed once for every connection: its runs and their tokens."""

    __slots__ = (
        "_shape",
        "_where",
        "data",
        "layout",
        "origin",
        "runs",
        "ticks",
        "tokens",
        "whole",
    )

    def __init__(
        self,
        data: bytes,
        runs: list[_Run],
        ticks: int,
        whole: bool,
        tokens: list[int] | None = None,
    ) -> None:
        self.data = data
        self.runs = runs
        self.ticks = ticks
        #: every packet has a known layout: the frame can go out as recorded
        self.whole = whole
        if tokens is None:
            tokens = runs[0][3] if len(runs) == 1 else [t for r in runs for t in r[3]]
        self.tokens = tokens
        self.origin: Hashable = None
        #: the layout it was recognised by, if any
        self.layout: _Layout | None = None
        self._where: dict[int, int] | None = None
        self._shape: tuple[object, ...] | None = None

    def shape(self) -> tuple[object, ...]:
        """Its packets' lengths and tokens, as bytes: equal for frames of the same tokens in the
        same layouts (a connection's decision for one holds for the other)."""
        shape = self._shape
        if shape is None:
            data = self.data
            parts: list[object] = [self.whole]
            for offset, length, count, _ in self.runs:
                step = length + 2
                end = offset + step * count
                parts.append(length)
                parts.extend(data[offset + k : end : step] for k in range(4))
            shape = self._shape = tuple(parts)
        return shape

    def where(self) -> dict[int, int]:
        """token -> offset of its packet (the last one, should a token have two)."""
        where = self._where
        if where is None:
            starts = chain.from_iterable(
                range(offset, offset + (length + 2) * count, length + 2)
                for offset, length, count, _ in self.runs
            )
            where = self._where = dict(zip(self.tokens, starts, strict=True))
        return where


_MALFORMED = _Frame(b"", [(0, 0, 0, [])], 0, False)


def _parse(data: bytes) -> _Frame | None:
    """The frame's runs of known packets; ``None`` for one without any, :data:`_MALFORMED`."""
    try:
        ticks, skipped = scan_frame(data)
    except CodecError:
        return _MALFORMED
    if not ticks:
        return None
    runs: list[_Run] = []
    for run in packet_runs(data):
        offset, length, count = run
        if length in _SERVED:
            runs.append((offset, length, count, run_columns(data, run, (0,))[0]))
    return _Frame(data, runs, ticks, not skipped)


class _Cell:
    """Where a token's latest packet is: in ``frame``, sent at instant ``position``; the tokens
    of a known layout share one cell, updated in place for each of its frames."""

    __slots__ = ("frame", "layout", "position")

    def __init__(self, position: int, frame: _Frame, layout: _Layout | None) -> None:
        self.position = position
        self.frame = frame
        self.layout = layout


class _Layout:
    """A whole frame's layout (its packets' lengths and tokens), to tell in one ``struct`` call
    whether another frame has the same one, and if so make it without parsing it."""

    __slots__ = ("cell", "expected", "like", "owned", "size", "unpack")

    def __init__(self, like: _Frame) -> None:
        self.like = like
        #: the latest frame of this layout: what Replay.latest maps its tokens to
        self.cell = _Cell(0, like, self)
        #: whether every token of the layout maps to :attr:`cell` in Replay.latest
        self.owned = False
        self.size = len(like.data)
        fields = [">H"]
        expected: list[int] = [like.ticks]
        for _, length, _, tokens in like.runs:
            fields.append(f"HI{length - 4}x" * len(tokens))
            for token in tokens:
                expected.append(length)
                expected.append(token)
        self.unpack = struct.Struct("".join(fields)).unpack
        self.expected = tuple(expected)

    def frame(self, data: bytes) -> _Frame | None:
        """``data`` as a frame of this layout, or ``None`` if it has another one."""
        if len(data) != self.size or self.unpack(data) != self.expected:
            return None
        like = self.like
        frame = _Frame(data, like.runs, like.ticks, True, like.tokens)
        frame._shape = like._shape
        frame._where = like._where
        frame.layout = self
        return frame


class _Parser:
    """Parses frames, keeping each recorded connection's layouts once they repeat (by frame
    size and first token): a connection at a steady subscription (every frame at maximum rate,
    cut at the same places) then costs one ``struct`` call a frame instead of a pass over its
    packets."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        # origin -> (frame size, first token) -> (shape of the last such frame, its layout once
        # repeated)
        self._seen: dict[
            Hashable, dict[tuple[int, bytes], tuple[tuple[object, ...], _Layout | None]]
        ] = {}

    def parse(self, data: bytes, origin: Hashable) -> _Frame | None:
        sizes = self._seen.get(origin)
        if sizes is None:
            sizes = self._seen[origin] = {}
        like = (len(data), data[4:8])
        seen = sizes.get(like)
        if seen is not None and seen[1] is not None:
            frame = seen[1].frame(data)
            if frame is not None:
                return frame
        frame = _parse(data)
        if frame is None or frame is _MALFORMED or not frame.whole:
            return frame
        shape = frame.shape()
        if len(sizes) >= _LAYOUTS:
            sizes.clear()
        if seen is not None and seen[0] == shape:
            frame.where()
            sizes[like] = (shape, _Layout(frame))
        else:
            sizes[like] = (shape, None)
        return frame


class Instant:
    """The frames of one moment of the recording, from different recorded connections.

    Attributes:
        time_ns: receive time of its first frame.
        frames: its frames, in recorded order.
    """

    __slots__ = ("frames", "time_ns")

    def __init__(self, time_ns: int, frames: list[_Frame]) -> None:
        self.time_ns = time_ns
        self.frames = frames

    @property
    def ticks(self) -> int:
        """Packets in its frames (of known layouts)."""
        return sum(frame.ticks for frame in self.frames)


class Replay:
    """The state every connection shares: the instants, how far they went, the latest packets.

    Args:
        frames: called once per pass (twice or more with ``loop``), gives the recording's frames
            in time order.
        index: what :func:`index_frames` found in the same frames and window.
        speed: how many times the recorded pace; ``None`` for as fast as the clients read.
        loop: start again from the first instant after the last.
        window: the span of the day to serve.

    Raises:
        ValueError: ``speed`` is not a finite number more than 0 (nor ``None``).
    """

    def __init__(
        self,
        frames: Callable[[], Iterable[RecordedFrame]],
        index: TapeIndex,
        *,
        speed: float | None = 1.0,
        loop: bool = False,
        window: Window | None = None,
    ) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be more than 0 (or None for the maximum), not {speed}")
        self._frames = frames
        self.index = index
        self.speed = speed
        self.loop = loop
        self.window = window
        #: instants emitted so far, every pass counted
        self.position = 0
        #: ticks in them
        self.ticks = 0
        #: passes begun
        self.passes = 0
        #: token -> where its latest packet is
        self.latest: dict[int, _Cell] = {}

    def instants(self) -> Iterator[Instant]:
        """One pass over the recording's window, as instants."""
        self.passes += 1
        window = self.window
        group: list[_Frame] = []
        origins: set[Hashable] = set()
        start = 0
        parse = _Parser().parse
        for time_ns, data, origin in self._frames():
            if window is not None and time_ns not in window:
                continue
            frame = parse(data, origin)
            if frame is None or frame is _MALFORMED:
                continue
            frame.origin = origin
            if group and (origin in origins or time_ns - start > INSTANT_NS):
                yield Instant(start, group)
                group = []
                origins = set()
            if not group:
                start = time_ns
            group.append(frame)
            origins.add(origin)
        if group:
            yield Instant(start, group)

    def advance(self, instant: Instant) -> None:
        """The instant is being sent: its packets become the latest of their tokens."""
        position = self.position
        latest = self.latest
        for frame in instant.frames:
            self.ticks += frame.ticks
            layout = frame.layout
            if layout is not None and layout.owned:
                cell = layout.cell
                cell.position = position
                cell.frame = frame
                continue
            cell = _Cell(position, frame, layout)
            if layout is not None:
                layout.cell = cell
                layout.owned = True
            tokens = frame.tokens
            for before in set(map(latest.get, tokens)):
                if before is not None and before.layout is not None and before.layout is not layout:
                    before.layout.owned = False  # some of its tokens are this frame's now
            latest.update(dict.fromkeys(tokens, cell))
        self.position = position + 1

    def viewer(self, subscriptions: Mapping[int, Mode]) -> Viewer:
        """One connection's view, over its (live) token -> mode subscriptions."""
        return Viewer(self, subscriptions)


class Viewer:
    """What one connection gets of the replay: its frames of each instant, its snapshots.

    Args:
        replay: the shared state.
        subscriptions: the connection's token -> mode, kept up to date by its
            :class:`~kitefan.simulator.feed.Feed` (read, never written).
    """

    __slots__ = ("_at_least", "_decided", "_held", "_replay", "_subs", "_told")

    def __init__(self, replay: Replay, subscriptions: Mapping[int, Mode]) -> None:
        self._replay = replay
        self._subs = subscriptions
        #: recorded mode -> tokens subscribed at least in it (served as recorded)
        self._at_least: dict[Mode, set[int]] = {mode: set() for mode in Mode}
        #: token -> (position its mode took effect, its mode, position and served length of
        #: the latest packet it held then)
        self._held: dict[int, tuple[int, Mode, int, int]] = {}
        #: mode -> tokens already told the recording lacks it
        self._told: dict[Mode, set[int]] = {mode: set() for mode in Mode}
        #: frame shape -> _SKIP, _WHOLE or _PICK, until the subscriptions change
        self._decided: dict[tuple[object, ...], int] = {}

    def request(
        self, snapshot: Sequence[int], removed: Sequence[int] = ()
    ) -> tuple[list[str], list[tuple[bytes, int]]]:
        """After a request changed the subscriptions: the texts and the snapshot frames to send.

        Args:
            snapshot: the tokens the request named (subscribed, or set to a mode), as the feed's
                :class:`~kitefan.simulator.feed.Reply` gives them.
            removed: the tokens it unsubscribed.

        Returns:
            Error messages (``{"type":"error",...}``: the modes the recording lacks, each token
            told once per mode), and the
            frames of the latest packets the connection does not hold yet, with their counts.
        """
        subs = self._subs
        held = self._held
        for token in removed:
            held.pop(token, None)
        self._decided.clear()
        ranks = {mode: MODE_RANK[mode] for mode in Mode}
        self._at_least = {
            mode: {t for t, m in subs.items() if ranks[m] >= ranks[mode]} for mode in Mode
        }
        replay = self._replay
        position = replay.position
        latest = replay.latest
        best = replay.index.best
        lacking: dict[Mode, list[int]] = {}
        parts: list[tuple[bytes, memoryview]] = []
        for token in dict.fromkeys(snapshot):
            mode = subs.get(token)
            if mode is None:
                continue
            recorded = best.get(token)
            if recorded is not None and ranks[recorded] < ranks[mode]:
                told = self._told[mode]
                if token not in told:
                    told.add(token)
                    lacking.setdefault(mode, []).append(token)
            packet_at = latest.get(token)
            if packet_at is None:
                held[token] = (position, mode, -1, 0)
                continue
            at, recorded_in = packet_at.position, packet_at.frame
            offset = recorded_in.where()[token]
            data = recorded_in.data
            packet = memoryview(data)[offset : offset + (data[offset - 2] << 8 | data[offset - 1])]
            before = held.get(token)
            if before is None:
                had = 0
            elif at >= before[0]:  # sent live since its mode took effect
                had = _SERVED[len(packet)][before[1]]
            else:
                had = before[3] if before[2] == at else 0
            want = _SERVED[len(packet)][mode]
            if want != had:
                parts.append((_PREFIX[want], packet[:want]))
                had = want
            held[token] = (position, mode, at, had)
        texts = [error_message(lacking_text(m, tokens, best)) for m, tokens in lacking.items()]
        return texts, assemble_frames(parts)

    def frames(self, instant: Instant) -> list[tuple[bytes, int]]:
        """This connection's frames of an instant (none, one, or a few past 256 KiB)."""
        subs = self._subs
        every = self._at_least[Mode.LTP]
        if not every:
            return []
        at_least = self._at_least
        out: list[tuple[bytes, int]] = []
        pieces: list[bytes | memoryview] = [b""]
        count = 0
        size = 2
        only: _Frame | None = None  # the one frame taken whole, while nothing else is taken
        decided = self._decided
        for frame in instant.frames:
            shape = frame.shape()
            decision = decided.get(shape)
            if decision is None:
                if every.isdisjoint(frame.tokens):
                    decision = _SKIP
                elif frame.whole and all(
                    at_least[_LEVEL[length]].issuperset(tokens)
                    for _, length, _, tokens in frame.runs
                ):
                    decision = _WHOLE
                else:
                    decision = _PICK
                if len(decided) >= _DECISIONS:
                    decided.clear()
                decided[shape] = decision
            if decision == _SKIP:
                continue
            if decision == _WHOLE:
                if count == 0 and only is None:
                    only = frame
                    continue
                if only is not None:
                    pieces.append(memoryview(only.data)[2:])
                    count, size = only.ticks, len(only.data)
                    only = None
                body = len(frame.data) - 2
                if count and (size + body > MAX_FRAME_BYTES or count + frame.ticks > 0xFFFF):
                    _flush(out, pieces, count)
                    pieces, count, size = [b""], 0, 2
                pieces.append(memoryview(frame.data)[2:])
                count += frame.ticks
                size += body
                continue
            if only is not None:
                pieces.append(memoryview(only.data)[2:])
                count, size = only.ticks, len(only.data)
                only = None
            for prefix, packet in _picked(frame, subs):
                length = 2 + len(packet)
                if count and (size + length > MAX_FRAME_BYTES or count >= MAX_FRAME_PACKETS):
                    _flush(out, pieces, count)
                    pieces, count, size = [b""], 0, 2
                pieces.append(prefix)
                pieces.append(packet)
                count += 1
                size += length
        if only is not None:
            return [(only.data, only.ticks)]
        if count:
            _flush(out, pieces, count)
        return out


def _picked(frame: _Frame, subs: Mapping[int, Mode]) -> Iterator[tuple[bytes, memoryview]]:
    """The subscribed packets of a frame, in frame order, each cut to the mode asked for."""
    data = memoryview(frame.data)
    where = frame.where()
    if len(where) == len(frame.tokens):
        common = where.keys() & subs.keys()
        for offset, token in sorted((where[t], t) for t in common):
            length = data[offset - 2] << 8 | data[offset - 1]
            n = _SERVED[length][subs[token]]
            yield _PREFIX[n], data[offset : offset + n]
        return
    for offset, length, _, tokens in frame.runs:  # a token twice in the frame: every packet
        served = _SERVED[length]
        for token in tokens:
            mode = subs.get(token)
            if mode is not None:
                n = served[mode]
                yield _PREFIX[n], data[offset : offset + n]
            offset += length + 2


def _flush(out: list[tuple[bytes, int]], pieces: list[bytes | memoryview], count: int) -> None:
    pieces[0] = count.to_bytes(2, "big")
    out.append((b"".join(pieces), count))
