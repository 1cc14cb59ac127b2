"""The dashboard is drawn with a short switch interval, and only while it is drawn."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest
from rich.console import Console, RenderableType
from rich.live import Live
from test_render_stream import AT, _stats, name_of, quote

from kitefan.cli.stream import _DRAW_SWITCH_S, _draw
from kitefan.events import TickBatch
from kitefan.render.dashboard import TickBoard
from kitefan.runner import switching_every


@pytest.fixture
def interval() -> Iterator[float]:
    """A switch interval of the test's own, put back afterwards."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.004)
    yield sys.getswitchinterval()
    sys.setswitchinterval(before)


def test_the_interval_is_set_within_and_put_back_after(interval: float) -> None:
    with switching_every(0.0005):
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert sys.getswitchinterval() == interval


def test_the_interval_is_put_back_when_the_work_within_fails(interval: float) -> None:
    with pytest.raises(ZeroDivisionError), switching_every(0.0005):
        _ = 1 / 0
    assert sys.getswitchinterval() == interval


class SeenLive(Live):
    """A Live that notes the switch interval its screen is drawn with."""

    seen: list[float]

    def update(self, renderable: RenderableType, *, refresh: bool = False) -> None:
        self.seen.append(sys.getswitchinterval())
        super().update(renderable, refresh=refresh)


def test_the_dashboard_is_laid_out_and_drawn_with_the_short_interval(interval: float) -> None:
    tokens = [((2000 + i) << 8) | 1 for i in range(8)]
    board = TickBoard(tokens, name_of)
    ticks = [quote(t, 2_638_745, 2_600_000, 1_000) for t in tokens]
    board.update(TickBatch.of_ticks("charlie", 2, ticks, received_wall=AT))
    screen = Console(file=io.StringIO(), width=160, height=40, color_system=None)
    live = SeenLive(console=screen, auto_refresh=False)
    live.seen = []
    view = board.view(screen.height, AT + 1.0)
    with live:
        _draw(live, view, _stats(), name_of, [], AT + 1.0, "kitefan", screen)
    assert live.seen == [pytest.approx(_DRAW_SWITCH_S)]
    assert sys.getswitchinterval() == interval
    drawn = screen.file.getvalue()  # type: ignore[attr-defined]  # a StringIO
    assert all(str(token) in drawn for token in tokens)
