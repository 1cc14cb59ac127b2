"""The live dashboard of ``kitefan stream``: ticks, market depth, the distribution, per-key stats,
and the latest events.

Pure: the board (latest tick per symbol) is plain state updated from tick batches, and
:func:`dashboard` turns it and a stats snapshot into one Rich renderable. The CLI refreshes it a
few times a second from its own task, so rendering never holds up the sockets.

Whatever came from a server (error and broadcast texts, order fields, symbol names) is shown
through :func:`~kitefan.render.text.printable`, as plain text (never Rich markup), so no control
sequence reaches the terminal.

Owns: ``TickBoard``, ``dashboard``. Must not import asyncio, websockets or typer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kitefan.events import ErrorEvent, Event, KeyState, OrderEvent, StatusEvent, TickBatch
from kitefan.models import Tick
from kitefan.render.records import status_record
from kitefan.render.text import printable
from kitefan.stats import FeedStats

__all__ = ["LatestTick", "TickBoard", "dashboard", "format_age"]

_STATE_STYLE = {
    KeyState.CONNECTED: "green",
    KeyState.CONNECTING: "yellow",
    KeyState.RECONNECTING: "yellow",
    KeyState.AUTH_FAILED: "bold red",
    KeyState.SLOT_LIMITED: "magenta",
    KeyState.IDLE: "dim",
    KeyState.CLOSED: "dim",
}


@dataclass(slots=True)
class LatestTick:
    """The last tick of one symbol, and where and when it arrived."""

    tick: Tick
    key: str
    connection: int
    received_wall: float


class TickBoard:
    """The latest tick of every symbol, shown in watchlist order.

    Args:
        order: the tokens in the order they should be listed (the config's order).
    """

    def __init__(self, order: Sequence[int]) -> None:
        self.order = list(order)
        self.latest: dict[int, LatestTick] = {}

    def update(self, batch: TickBatch) -> None:
        """Take the ticks of one frame."""
        latest = self.latest
        key = batch.key
        connection = batch.connection
        wall = batch.received_wall
        for tick in batch.ticks:
            latest[tick.values[0]] = LatestTick(tick, key, connection, wall)

    def rows(self, limit: int) -> list[LatestTick]:
        """Up to ``limit`` symbols that have ticked, in watchlist order."""
        out: list[LatestTick] = []
        latest = self.latest
        for token in self.order:
            row = latest.get(token)
            if row is not None:
                out.append(row)
                if len(out) >= limit:
                    break
        return out

    def depth_rows(self, limit: int) -> list[LatestTick]:
        """Up to ``limit`` symbols whose last tick carried market depth."""
        return [row for row in self.rows(len(self.order)) if row.tick.kind == 184][:limit]


def format_age(seconds: float | None) -> str:
    """A short age: ``0.4s``, ``12s``, ``3m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m"


def _price(value: float | None, divisor: float = 100.0) -> str:
    """A price with the decimals its segment quotes in (2, or 4 for currencies)."""
    if value is None:
        return "-"
    return f"{value:,.2f}" if divisor == 100.0 else f"{value:,.4f}"


def _change(value: float | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(f"{value:+.2f}%", style=style)


def _ticks_table(rows: list[LatestTick], name_of: Callable[[int], str], now: float) -> Table:
    table = Table(title="ticks", title_justify="left", expand=True, pad_edge=False)
    table.add_column("symbol", no_wrap=True, max_width=24)
    table.add_column("ltp", justify="right")
    table.add_column("chg", justify="right")
    table.add_column("volume", justify="right")
    table.add_column("bid", justify="right")
    table.add_column("ask", justify="right")
    table.add_column("age", justify="right")
    table.add_column("key", no_wrap=True)
    for row in rows:
        tick = row.tick
        depth = tick.depth
        divisor = tick.divisor
        bid = _price(depth.buy[0].price, divisor) if depth is not None else "-"
        ask = _price(depth.sell[0].price, divisor) if depth is not None else "-"
        volume = tick.volume_traded
        table.add_row(
            Text(printable(name_of(tick.values[0]))),
            _price(tick.last_price, divisor),
            _change(tick.change),
            "-" if volume is None else f"{volume:,}",
            bid,
            ask,
            format_age(now - row.received_wall),
            f"{row.key}#{row.connection}",
        )
    return table


def _depth_table(row: LatestTick, name_of: Callable[[int], str]) -> Table:
    tick = row.tick
    depth = tick.depth
    table = Table(
        title=Text(f"depth {printable(name_of(tick.values[0]))}"),
        title_justify="left",
        pad_edge=False,
        expand=True,
    )
    table.add_column("orders", justify="right", style="green")
    table.add_column("qty", justify="right", style="green")
    table.add_column("bid", justify="right", style="green")
    table.add_column("ask", justify="right", style="red")
    table.add_column("qty", justify="right", style="red")
    table.add_column("orders", justify="right", style="red")
    if depth is not None:
        for bid, ask in zip(depth.buy, depth.sell, strict=True):
            table.add_row(
                str(bid.orders),
                f"{bid.quantity:,}",
                _price(bid.price, tick.divisor),
                _price(ask.price, tick.divisor),
                f"{ask.quantity:,}",
                str(ask.orders),
            )
    return table


def _distribution_table(stats: FeedStats) -> Table:
    table = Table(title="distribution", title_justify="left", expand=True, pad_edge=False)
    table.add_column("key", no_wrap=True)
    table.add_column("conn", justify="right")
    table.add_column("symbols", justify="right")
    table.add_column("ltp/quote/full", justify="right")
    table.add_column("state", no_wrap=True)
    for key in stats.keys:
        if not key.connections:
            table.add_row(key.id, "-", "0", "-", Text(key.state.value, _STATE_STYLE[key.state]))
        for conn in key.connections:
            modes = conn.symbols_by_mode
            table.add_row(
                key.id,
                str(conn.index),
                str(conn.symbols),
                f"{modes.get('ltp', 0)}/{modes.get('quote', 0)}/{modes.get('full', 0)}",
                Text(conn.state.value, "green" if conn.state.value == "connected" else "yellow"),
            )
    return table


def _keys_table(stats: FeedStats) -> Table:
    table = Table(title="keys", title_justify="left", expand=True, pad_edge=False)
    table.add_column("key", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("up", justify="right")
    table.add_column("ticks/s", justify="right")
    table.add_column("ticks", justify="right")
    table.add_column("reconn", justify="right")
    table.add_column("drops", justify="right")
    table.add_column("last frame", justify="right")
    for key in stats.keys:
        table.add_row(
            key.id,
            Text(key.state.value, _STATE_STYLE[key.state]),
            f"{key.connections_up}/{len(key.connections)}",
            f"{key.ticks_per_s:,.0f}",
            f"{key.ticks:,}",
            str(key.reconnects),
            str(key.drops),
            format_age(key.last_frame_age_s),
        )
    totals = stats.totals
    table.add_row(
        Text("all", style="bold"),
        "",
        f"{totals.connections_up}/{totals.connections}",
        f"{totals.ticks_per_s:,.0f}",
        f"{totals.ticks:,}",
        str(totals.reconnects),
        str(totals.drops),
        "",
    )
    return table


def _event_line(event: Event) -> Text:
    if isinstance(event, TickBatch):
        return Text("")
    record = status_record(event)
    clock = record["at"][11:19]
    where = f"{event.key}" + (f"#{event.connection}" if event.connection is not None else "")
    if isinstance(event, ErrorEvent):
        return Text(printable(f"{clock} {where} error: {event.text}"), style="red")
    if isinstance(event, OrderEvent):
        data = event.update.data
        return Text(
            printable(
                f"{clock} {where} order {data.get('order_id')} {data.get('tradingsymbol')} "
                f"{data.get('transaction_type')} {data.get('status')}"
            ),
            style="cyan",
        )
    assert isinstance(event, StatusEvent)
    style = "red" if event.state in ("auth_failed", "replan_failed") else "yellow"
    if event.state == "connected":
        style = "green"
    text = f"{clock} {where} {event.state}: {event.message}"
    if event.gap is not None:
        text += f" (gap {event.gap.seconds:.1f}s, {len(event.gap.tokens)} symbols)"
    return Text(printable(text), style=style)


def dashboard(
    board: TickBoard,
    stats: FeedStats,
    name_of: Callable[[int], str],
    events: Sequence[Event],
    *,
    now: float,
    title: str,
    width: int,
    height: int,
) -> RenderableType:
    """The whole dashboard as one renderable.

    Args:
        board: the latest tick of every symbol.
        stats: a snapshot of the feed.
        name_of: a token's display name.
        events: recent status, order and error events, oldest first.
        now: the current Unix time (for ages).
        title: the header line.
        width: the terminal width (wide terminals get two columns).
        height: the terminal height (how many tick rows fit).
    """
    totals = stats.totals
    header = Text.assemble(
        (title, "bold"),
        f"  {totals.symbols} symbols on {len(stats.keys)} keys, "
        f"{totals.connections_up}/{totals.connections} connections up, "
        f"{totals.ticks_per_s:,.0f} ticks/s, {totals.ticks:,} ticks, "
        f"{totals.drops} dropped, up {stats.uptime_s:,.0f}s",
    )
    event_lines = Group(*[_event_line(e) for e in events[-6:]]) if events else Text("-")
    side = Group(
        _distribution_table(stats),
        _keys_table(stats),
        *[_depth_table(row, name_of) for row in board.depth_rows(1)],
    )
    # Lines around the tick rows: header, table title, head and rules, the events panel, hint.
    fixed = 17
    if width >= 150:
        rows = board.rows(max(5, height - fixed))
        body = Table.grid(expand=True, padding=(0, 1))
        body.add_column(ratio=3)
        body.add_column(ratio=2)
        body.add_row(_ticks_table(rows, name_of, now), side)
        content: RenderableType = body
    else:
        side_rows = 8 + 2 * len(stats.keys) + sum(len(k.connections) for k in stats.keys)
        rows = board.rows(max(5, height - fixed - side_rows))
        content = Group(_ticks_table(rows, name_of, now), side)
    return Group(
        header,
        content,
        Panel(event_lines, title="events", title_align="left", border_style="dim"),
        Text("Ctrl-C to stop", style="dim"),
    )
