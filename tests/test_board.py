"""The dashboard's board takes a frame in one compiled pass (``kitefan._records.board_take``)
exactly as its Python path does: the same latest batch per token, the same figures to rank by,
the same packet found for each row, whatever the frame holds.

Frames mix every packet kind, repeat tokens (a token's last packet wins; for a ranked sort, a
packet without the figure removes the token from the ranking, whichever came first), and carry
packets of unknown length (skipped, as decoding skips them).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from kitefan.codec import packet_at
from kitefan.events import TickBatch
from kitefan.render import dashboard as board_module
from kitefan.render.dashboard import SortBy, TickBoard

pytestmark = pytest.mark.skipif(
    board_module._compiled is None, reason="the compiled extension is not built here"
)

TOKENS = [1, 2, 3, 265, 408065 << 8 | 1, 2**32 - 1]
U32 = st.one_of(st.sampled_from([0, 1, 99, 100, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    length = draw(st.sampled_from([8, 28, 32, 44, 184, 12, 0]))  # 12 and 0: unknown, skipped
    if length == 0:
        return b""
    token = draw(st.sampled_from(TOKENS))
    words = [token, *(draw(U32) for _ in range(length // 4 - 1))]
    return struct.pack(f">{len(words)}I", *words)


def frame_of(parts: list[bytes]) -> bytes:
    return struct.pack(">H", len(parts)) + b"".join(struct.pack(">H", len(p)) + p for p in parts)


def boards(sort: SortBy) -> tuple[TickBoard, TickBoard]:
    return TickBoard(TOKENS, str, sort=sort), TickBoard(TOKENS, str, sort=sort)


def state(board: TickBoard) -> tuple[dict[int, int], dict[int, float], dict[int, int]]:
    return (
        {token: id(batch) for token, batch in board._batch.items()},
        dict(board._rank),
        dict(board._counts),
    )


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(list(SortBy)), st.lists(st.lists(packets(), max_size=12), max_size=4))
def test_the_compiled_pass_is_the_python_path(sort: SortBy, frames: list[list[bytes]]) -> None:
    compiled, python = boards(sort)
    for n, parts in enumerate(frames):
        batch = TickBatch("alpha", n % 3, frame_of(parts), 0.0, 1.0)
        compiled.update(batch)
        python._update_runs(batch)
        assert state(compiled) == state(python)
        for token in TOKENS:
            assert compiled.latest(token) == python.latest(token)
    for limit in (1, 3, 10):
        assert compiled.chosen(limit) == python.chosen(limit)


@settings(max_examples=300, deadline=None)
@given(st.lists(packets(), max_size=12), st.sampled_from(TOKENS))
def test_the_compiled_packet_finder_is_the_python_one(parts: list[bytes], token: int) -> None:
    frame = frame_of(parts)
    offset = board_module._offset_of(frame, token)
    assert board_module._compiled is not None
    assert board_module._compiled.offset_of(frame, token) == offset
    if offset is not None:
        assert packet_at(frame, offset).values[0] == token


def test_exact_figures_and_the_last_packet_of_a_token() -> None:
    # INFY: a quote at +1 %, then its full packet at -2 % (the last wins); 265: an index quote
    # with close 0 (the official change is 0), then an LTP packet, which takes it out of the
    # movers, though the LTP came first in the next frame.
    quote = struct.pack(">11I", TOKENS[4], 10_100, 1, 2, 3, 4, 5, 6, 7, 8, 10_000)
    full = struct.pack(">46I", TOKENS[4], 9_800, 1, 2, 555, 4, 5, 6, 7, 8, 10_000, *range(35))
    index = struct.pack(">7I", 265, 123_456, 1, 2, 3, 0, 0)
    ltp = struct.pack(">2I", 265, 123_500)
    board = TickBoard(TOKENS, str, sort=SortBy.MOVERS)
    first = TickBatch("alpha", 0, frame_of([quote, index, full]), 0.0, 1.0)
    board.update(first)
    assert board._rank == {TOKENS[4]: 0.02, 265: 0.0}
    assert board._batch == {TOKENS[4]: first, 265: first}
    row = board.latest(TOKENS[4])
    assert row is not None and row.tick.values[:2] == (TOKENS[4], 9_800)
    second = TickBatch("bravo", 1, frame_of([ltp, index]), 0.0, 2.0)
    board.update(second)
    assert board._rank == {TOKENS[4]: 0.02}
    volume = TickBoard(TOKENS, str, sort=SortBy.VOLUME)
    volume.update(first)
    assert volume._rank == {TOKENS[4]: 555}
    active = TickBoard(TOKENS, str, sort=SortBy.ACTIVE)
    active.update(first)
    active.update(second)
    assert dict(active._counts) == {TOKENS[4]: 2, 265: 3}


def test_a_frame_the_decoder_refuses_is_left_to_the_python_path_untouched() -> None:
    board = TickBoard(TOKENS, str)
    cut = frame_of([struct.pack(">2I", 1, 5)])[:-1]
    assert board_module._compiled is not None
    assert board_module._compiled.board_take(cut, None, board._batch, None, 0) is False
    assert board._batch == {}
