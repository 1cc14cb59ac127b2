"""The live dashboard of ``kitefan candles`` as a user sees it: in a tmux pane of 80x24 and
200x50, the screen read back (the panes and their helpers are test_dashboard_tty's)."""

from __future__ import annotations

import itertools
import re
import shutil
from datetime import datetime

import pytest
from test_dashboard_tty import env, pane, text

from kitefan.models import IST

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)"),
]

__all__ = ["env"]  # the fixture, shared

ROW = re.compile(r"^(\S+)?\s+(\d\d:\d\d:\d\d)([* ])\s+([\d,]+\.\d{2,4})\s")


def bar_rows(lines: list[str]) -> list[re.Match[str]]:
    return [m for line in lines if (m := ROW.match(line))]


def closed_shown(lines: list[str]) -> bool:
    rows = bar_rows(lines)
    return any(m.group(3) == " " for m in rows) and any(m.group(3) == "*" for m in rows)


async def test_at_80x24_forming_and_closed_bars_fit_with_the_hidden_counted(
    env: dict[str, str],
) -> None:
    with pane(["candles", "--demo", "--interval", "2s"], env, 80, 24) as view:
        lines = await view.until(closed_shown)
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert lines[0].startswith("kitefan candles demo  2s bars, grace 1s, 64 symbols,")
        assert lines[-1] == "* forming; bars in IST    Ctrl-C to stop"
        header = next(line for line in lines if line.startswith("symbol "))
        assert header.split() == ["symbol", "bar", "open", "high", "low", "close"]  # no volume
        rows = bar_rows(lines)
        named = [m.group(1) for m in rows if m.group(1)]
        assert named == sorted(named)  # by symbol, as stream's dashboard sorts by default
        more = next(line for line in lines if line.startswith("bars by symbol: +"))
        assert re.match(rf"bars by symbol: \+{64 - len(named)} more", more), more
        # a symbol's forming bar first, then its last closed one, two seconds earlier
        for first, second in itertools.pairwise(rows):
            if first.group(3) == "*" and second.group(1) is None:
                gap = datetime.strptime(first.group(2), "%H:%M:%S") - datetime.strptime(
                    second.group(2), "%H:%M:%S"
                )
                assert gap.total_seconds() % 2 == 0 and gap.total_seconds() >= 2
        assert "…" not in text(lines)


async def test_at_200x50_every_column_and_the_watched_first(env: dict[str, str]) -> None:
    args = ["candles", "--demo", "--interval", "1s", "--watch", "MCX:GOLD27FEBFUT"]
    with pane(args, env, 200, 50) as view:
        lines = await view.until(lambda s: sum(1 for m in bar_rows(s) if m.group(3) == " ") >= 10)
        assert len(lines) <= 50 and "…" not in text(lines)
        header = next(line for line in lines if line.startswith("symbol "))
        assert header.split() == [
            "symbol", "bar", "open", "high", "low", "close", "volume", "ticks",
        ]  # fmt: skip
        rows = bar_rows(lines)
        assert rows[0].group(1) == "MCX:GOLD27FEBFUT"
        assert "bars by symbol, watched first: +" in text(lines)
        now = datetime.now(IST)
        forming = [m for m in rows if m.group(3) == "*"]
        assert forming
        for m in forming:  # the bar forming now started within the last few seconds
            start = datetime.strptime(m.group(2), "%H:%M:%S").time()
            seconds = (now.hour * 3600 + now.minute * 60 + now.second) - (
                start.hour * 3600 + start.minute * 60 + start.second
            )
            assert 0 <= seconds % 86400 < 30
