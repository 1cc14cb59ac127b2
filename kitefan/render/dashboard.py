"""The live dashboard of ``kitefan stream``: ticks, market depth, the distribution, per-key stats,
and the latest events, laid out for the terminal it is drawn on.

Pure: the board (the latest tick of every symbol streamed) is plain state updated from tick
batches, and :func:`dashboard` turns it and a stats snapshot into one Rich renderable that fits
``width`` x ``height``. The CLI refreshes it a few times a second from its own task, so rendering
never holds up the sockets.

The board keeps up with every tick at C speed: frames are not decoded; the tokens and the one
field the sort needs are gathered in one compiled pass over the frame
(``kitefan._records.board_take``; without the extension, from each run of same-length packets
with :func:`kitefan.codec.run_columns`: a frame of equities and indices is hundreds of runs),
and only the rows shown are decoded, when drawn. Choosing
the rows costs ``O(n log k)`` per refresh (``heapq.nlargest``).

Whatever came from a server (error and broadcast texts, order fields, symbol names) is shown
through :func:`~kitefan.render.text.printable`, as plain text (never Rich markup), so no control
sequence reaches the terminal.

Owns: ``TickBoard``, ``BoardView``, ``SortBy``, ``dashboard``, ``Screen``. Must not import asyncio,
websockets or typer.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import repeat
from operator import sub, truediv
from types import ModuleType

from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from rich.text import Span, Text

from kitefan.codec import packet_at, packet_runs, run_columns
from kitefan.events import (
    ErrorEvent,
    Event,
    KeyState,
    OrderEvent,
    Status,
    StatusEvent,
    TickBatch,
)
from kitefan.models import IST, Tick
from kitefan.packets import PACKETS, PacketKind
from kitefan.render.text import printable
from kitefan.stats import FeedStats

_compiled: ModuleType | None
try:
    from kitefan import _records as _compiled
except ImportError:  # no compiler where it was installed: the runs in Python, the same board
    _compiled = None

__all__ = [
    "BoardView",
    "LatestTick",
    "Screen",
    "SortBy",
    "TickBoard",
    "dashboard",
    "format_age",
    "plural",
]

_STATE_STYLE = {
    KeyState.CONNECTED: "green",
    KeyState.CONNECTING: "yellow",
    KeyState.RECONNECTING: "yellow",
    KeyState.AUTH_FAILED: "bold red",
    KeyState.SLOT_LIMITED: "magenta",
    KeyState.IDLE: "dim",
    KeyState.CLOSED: "dim",
}


#: How often a ranked sort chooses its rows again (seconds), when the caller gives the time.
RERANK_S = 1.0


class SortBy(StrEnum):
    """Which symbols the ticks table shows first (after the watched ones)."""

    MOVERS = "movers"  # the largest change from the previous close, either way
    ACTIVE = "active"  # the most ticks received
    VOLUME = "volume"  # the largest volume traded today
    SYMBOL = "symbol"  # by name, A to Z


#: The fields the board reads from each packet, by sort and packet length: the token, then the
#: last price and the close (for the change), or the volume. Other lengths: the token alone.
#: Their indexes come from the packet-field table.
_FIELDS: dict[SortBy, dict[int, tuple[int, ...]]] = {
    SortBy.MOVERS: {
        length: packet.indexes_of("instrument_token", "last_price", "close")
        for length, packet in PACKETS.items()
        if packet.has("close")
    },
    SortBy.VOLUME: {
        length: packet.indexes_of("instrument_token", "volume_traded")
        for length, packet in PACKETS.items()
        if packet.has("volume_traded")
    },
    SortBy.ACTIVE: {},
    SortBy.SYMBOL: {},
}
_TOKEN = PACKETS[PacketKind.LTP].indexes_of("instrument_token")
#: The sorts as ``kitefan._records.board_take`` takes them.
_SORT_CODES = {SortBy.SYMBOL: 0, SortBy.MOVERS: 1, SortBy.VOLUME: 2, SortBy.ACTIVE: 3}
_KNOWN_LENGTHS = frozenset(PACKETS)


@dataclass(frozen=True, slots=True)
class LatestTick:
    """The last tick of one symbol, and where and when it arrived."""

    tick: Tick
    key: str
    connection: int
    received_wall: float


class TickBoard:
    """The latest tick of every symbol streamed, and which of them to show.

    For each symbol it keeps the batch that carried its latest tick and where in the frame that
    packet starts, plus the one figure its sort ranks by; :meth:`update` gathers those from the
    frame's bytes at C speed (``kitefan.codec.packet_runs``, ``run_columns``) without decoding
    it, and :meth:`latest` decodes one packet when its row is drawn.

    Args:
        tokens: the symbols streamed now (see :meth:`follow`).
        name_of: a token's display name (for ``--sort symbol``).
        sort: which symbols come first (fixed for the board's life: it decides what is kept).
        watch: tokens always shown first, in this order (``--watch``).
        depth: the token whose market depth is shown (default: the first row in full mode).
    """

    def __init__(
        self,
        tokens: Iterable[int] = (),
        name_of: Callable[[int], str] = str,
        *,
        sort: SortBy = SortBy.SYMBOL,
        watch: Sequence[int] = (),
        depth: int | None = None,
    ) -> None:
        self._sort = sort
        self.watch = list(dict.fromkeys(watch))
        self.depth = depth
        self._fields = _FIELDS[sort]
        self._wanted: set[int] = set()
        self._by_name: list[int] = []
        self._batch: dict[int, TickBatch] = {}
        self._swept = 0  # len(self._batch) at the last sweep (-1: sweep at the next look)
        # What the sort ranks by: |change| as a fraction, or the volume; or the ticks counted.
        self._rank: dict[int, float] = {}
        self._counts: Counter[int] = Counter()
        self._chosen: tuple[int, float, list[int]] | None = None  # limit, when, tokens
        self.follow(tokens, name_of)

    def follow(self, tokens: Iterable[int], name_of: Callable[[int], str]) -> None:
        """Show these symbols from now on: new ones appear as they tick, dropped ones go.

        Call it when the plan changes (``kitefan distribute``, SIGHUP, a failover).
        """
        wanted = set(tokens)
        self._chosen = None
        self._forget(self._wanted - wanted)
        self._wanted = wanted
        self._swept = -1
        self._by_name = sorted(wanted, key=lambda token: (name_of(token), token))

    @property
    def sort(self) -> SortBy:
        return self._sort

    def __len__(self) -> int:
        """How many symbols are streamed (ticked or not)."""
        return len(self._wanted)

    @property
    def ticked(self) -> int:
        """How many of them have ticked."""
        self._sweep()
        return len(self._batch)

    def update(self, batch: TickBatch) -> None:
        """Take the ticks of one frame: ``O(len(batch))``, in one compiled pass over the frame
        where the extension is built (``kitefan._records.board_take``), else at C speed for
        each run of packets of one length (a frame of one mode is one run).

        Per tick, one dictionary entry (the token's batch; where in the frame its packet is,
        is found when its row is drawn) and, for a ranked sort, its figure. Ticks of symbols
        no longer followed are kept out of what is shown and counted, not checked here: a check
        per tick of a set of 27,000 cost as much as the rest of the update."""
        if _compiled is not None:
            rank = self._counts if self._sort is SortBy.ACTIVE else self._rank
            if _compiled.board_take(batch.frame, batch, self._batch, rank, _SORT_CODES[self._sort]):
                return
        self._update_runs(batch)

    def _update_runs(self, batch: TickBatch) -> None:
        """:meth:`update` without the compiled pass (the same result)."""
        frame = batch.frame
        fields_of = self._fields
        tokens: list[int] = []
        ranked: list[int] = []  # the tokens of `figures`
        figures: list[float] = []
        unranked: list[int] = []  # tokens whose packets carry no figure (LTP mode)
        for run in packet_runs(frame):
            length = run[1]
            if length not in _KNOWN_LENGTHS:
                continue  # skipped, as decoding skips it
            fields = fields_of.get(length, _TOKEN)
            columns = run_columns(frame, run, fields)
            run_tokens = columns[0]
            tokens += run_tokens
            if len(columns) == 3:
                last, close = columns[1], columns[2]
                ranked += run_tokens
                if 0 in close:  # the official client's change is 0 when close is 0
                    figures += [
                        abs(p - c) / c if c else 0.0 for p, c in zip(last, close, strict=True)
                    ]
                else:
                    figures += map(truediv, map(abs, map(sub, last, close)), close)
            elif len(columns) == 2:
                ranked += run_tokens
                figures += columns[1]
            elif fields_of:
                unranked += run_tokens
        self._batch.update(zip(tokens, repeat(batch)))
        if self._sort is SortBy.ACTIVE:
            self._counts.update(tokens)
        elif figures or unranked:
            rank = self._rank
            rank.update(zip(ranked, figures, strict=True))
            if unranked and not rank.keys().isdisjoint(unranked):
                for token in unranked:
                    rank.pop(token, None)

    def _forget(self, tokens: Iterable[int]) -> None:
        for token in tokens:
            self._batch.pop(token, None)
            self._rank.pop(token, None)
            self._counts.pop(token, None)

    def _sweep(self) -> None:
        """Forget the ticks of symbols no longer followed (a frame of the old plan still in
        flight, or a server sending what was not asked for). Such a tick adds a key, so the
        sweep is needed only when the board grew since the last one (once every symbol has
        ticked, never) or the symbols followed changed."""
        if len(self._batch) != self._swept:
            self._forget(self._batch.keys() - self._wanted)
            self._swept = len(self._batch)

    def latest(self, token: int) -> LatestTick | None:
        """The last tick of ``token`` (decoded now), or ``None`` before its first."""
        picked = self._picked(token)
        return None if picked is None else _decoded(*picked)

    def _picked(self, token: int) -> tuple[int, TickBatch] | None:
        """``token`` and the batch of its last tick, if it is followed and has ticked."""
        batch = self._batch.get(token)
        if batch is None or token not in self._wanted:
            return None
        return token, batch

    def chosen(self, limit: int, now: float | None = None) -> list[int]:
        """Up to ``limit`` tokens to show: the watched ones, then the sort's first that ticked.

        With ``now`` (seconds), a ranked sort (movers, active, volume) chooses again at most once
        a second (:data:`RERANK_S`) and keeps its choice in between: ``O(n log k)`` once a
        second instead of at every refresh; the rows' values still come from every tick.
        """
        if now is not None and self._sort is not SortBy.SYMBOL:
            cached = self._chosen
            if cached is not None and cached[0] >= limit and 0 <= now - cached[1] < RERANK_S:
                return cached[2][:limit]
            out = self._choose(limit)
            self._chosen = (limit, now, out)
            return out
        return self._choose(limit)

    def _choose(self, limit: int) -> list[int]:
        self._sweep()
        out = [token for token in self.watch if token in self._wanted][:limit]
        if len(out) >= limit:
            return out
        skip = set(out)
        rank: dict[int, float] | Counter[int] = (
            self._counts if self._sort is SortBy.ACTIVE else self._rank
        )
        if rank:
            for token in heapq.nlargest(limit, rank, key=rank.__getitem__):
                if token not in skip:
                    out.append(token)
                    skip.add(token)
                    if len(out) >= limit:
                        return out
        # By name; also what fills the rest when fewer symbols carry the sort's figure.
        ticked = self._batch
        for token in self._by_name:
            if len(out) >= limit:
                break
            if token in ticked and token not in skip:
                out.append(token)
        return out

    def rows(self, limit: int, now: float | None = None) -> list[LatestTick]:
        """The latest ticks of :meth:`chosen` (watched symbols yet to tick are left out)."""
        return [row for row in map(self.latest, self.chosen(limit, now)) if row is not None]

    def view(self, limit: int, now: float | None = None) -> BoardView:
        """The board as :func:`dashboard` reads it, now: at most ``limit`` rows (a screen's
        height is enough). ``O(limit)`` but for a ranked sort's choosing; the rows' ticks are
        decoded when the view is first read, in whatever thread reads it (each is the packet of
        a frame, and frames do not change), so that taking a view costs the loop no decoding.
        """
        picks = tuple(filter(None, map(self._picked, self.chosen(limit, now))))
        return BoardView(
            symbols=len(self),
            ticked=self.ticked,
            sort=self._sort,
            watch=tuple(self.watch),
            depth=self.depth,
            picks=picks,
            depth_pick=None if self.depth is None else self._picked(self.depth),
        )


@dataclass(slots=True)
class BoardView:
    """What :func:`dashboard` reads of a :class:`TickBoard`, taken at one moment
    (:meth:`TickBoard.view`), so that the dashboard can be laid out and drawn in another thread
    while the board takes more ticks. Its rows are decoded when first read (by one thread)."""

    symbols: int
    ticked: int
    sort: SortBy
    watch: tuple[int, ...]
    depth: int | None
    #: The tokens :meth:`TickBoard.chosen` gave for the most that can be shown, each with the
    #: batch of its last tick; fewer are a prefix.
    picks: tuple[tuple[int, TickBatch], ...]
    depth_pick: tuple[int, TickBatch] | None
    _shown: tuple[LatestTick, ...] | None = field(default=None, init=False, repr=False)
    _depth_tick: LatestTick | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return self.symbols

    @property
    def shown(self) -> tuple[LatestTick, ...]:
        """The rows :meth:`TickBoard.rows` gives for the picks, decoded (once)."""
        if self._shown is None:
            self._shown = tuple(filter(None, (_decoded(*pick) for pick in self.picks)))
            if self.depth_pick is not None:
                self._depth_tick = _decoded(*self.depth_pick)
        return self._shown

    @property
    def depth_tick(self) -> LatestTick | None:
        """The latest tick of :attr:`depth`, decoded."""
        _ = self.shown
        return self._depth_tick

    def rows(self, limit: int, now: float | None = None) -> list[LatestTick]:
        return list(self.shown[:limit])

    def latest(self, token: int) -> LatestTick | None:
        if token == self.depth:
            return self.depth_tick
        return next((row for row in self.shown if row.tick.values[0] == token), None)


def _decoded(token: int, batch: TickBatch) -> LatestTick | None:
    """The last tick of ``token`` in ``batch``, decoded; ``None`` if the frame has none (not
    reached: a batch is picked for the token because it carried it)."""
    frame = batch.frame
    offset = _offset_of(frame, token) if _compiled is None else _compiled.offset_of(frame, token)
    if offset is None:
        return None
    return LatestTick(packet_at(frame, offset), batch.key, batch.connection, batch.received_wall)


def _offset_of(frame: bytes, token: int) -> int | None:
    """Where in ``frame`` the last packet of ``token`` starts (C speed: one token list per run
    of packets of one length); ``None`` if it is not there."""
    found = None
    for run in packet_runs(frame):
        start, length, _ = run
        if length not in _KNOWN_LENGTHS:
            continue
        tokens = run_columns(frame, run, _TOKEN)[0]
        if token in tokens:
            last = len(tokens) - 1 - tokens[::-1].index(token)
            found = start + last * (length + 2)
    return found


def plural(count: int, noun: str) -> str:
    """``1 symbol``, ``2 symbols``, ``27,000 symbols``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


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


Cell = str | Text


@dataclass(slots=True)
class _Block:
    """Lines laid out already, and the width they take (every line at most that wide)."""

    lines: list[Text]
    width: int


#: The separator of two columns.
_GAP = "   "

#: Lines a :func:`_grid` takes beyond its rows: its title, its header, the rule under it.
_TABLE_CHROME = 3


def _cell_len(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else len(cell)


def _widths(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> list[int]:
    widths = [len(header) for header in headers]
    for row in rows:
        for i, cell in enumerate(row):
            size = _cell_len(cell)
            if size > widths[i]:
                widths[i] = size
    return widths


def _grid(
    title: str,
    columns: Sequence[tuple[str, bool]],
    rows: Sequence[Sequence[Cell]],
    *,
    styles: Sequence[str] = (),
    widths: Sequence[int] | None = None,
) -> _Block:
    """A table as lines: a bold title, a header, a rule, the rows; every cell whole.

    Laid out here rather than by ``rich.table.Table``, which measures and renders every cell as
    a renderable of its own: ten times the cost, four times a second.

    Args:
        columns: each column's header and whether it is right-aligned.
        rows: the cells, as strings or styled Text.
        styles: a style for each column's cells (``""`` for none).
        widths: each column's width (default: its widest cell or header).
    """
    sizes = list(widths) if widths is not None else _widths([h for h, _ in columns], rows)
    total = sum(sizes) + len(_GAP) * (len(sizes) - 1)
    out = [Text(title, style="bold")]
    header = Text(style="bold")
    for i, ((name, right), size) in enumerate(zip(columns, sizes, strict=True)):
        if i:
            header.append(_GAP)
        header.append(name.rjust(size) if right else name.ljust(size))
    out.append(header)
    out.append(Text("─" * total, style="dim"))
    rights = [right for _, right in columns]
    cell_styles = [styles[i] if i < len(styles) else "" for i in range(len(sizes))]
    for row in rows:
        # One string and its spans per row, one Text of them: a Text.append per cell was most
        # of the dashboard's layout (four times a second, on a GIL the event loop waits for).
        # No cell holds a control code (what came from a server passed through printable), so
        # Text strips nothing and the spans stay where they were put.
        pieces: list[str] = []
        spans: list[Span] = []
        at = 0
        for i, (cell, width) in enumerate(zip(row, sizes, strict=True)):
            if i:
                pieces.append(_GAP)
                at += len(_GAP)
            if isinstance(cell, Text):
                plain, size = cell.plain, cell.cell_len
            else:
                plain, size = cell, len(cell)
            pad = " " * (width - size)
            if rights[i]:
                pieces.append(pad)
                at += len(pad)
            pieces.append(plain)
            if isinstance(cell, Text):
                if cell.style:
                    spans.append(Span(at, at + len(plain), cell.style))
                spans.extend(span.move(at) for span in cell.spans)
            elif cell_styles[i] and plain:
                spans.append(Span(at, at + len(plain), cell_styles[i]))
            at += len(plain)
            if not rights[i]:
                pieces.append(pad)
                at += len(pad)
        out.append(Text("".join(pieces), spans=spans))
    return _Block(out, max(total, len(title)))


#: The tick columns (header, right-aligned), and which to drop first when the width is short.
_TICK_COLUMNS = (
    ("symbol", False),
    ("ltp", True),
    ("chg", True),
    ("volume", True),
    ("bid", True),
    ("ask", True),
    ("age", True),
    ("key", False),
)
_DROP_ORDER = (7, 5, 4, 3, 6, 2)  # key, ask, bid, volume, age, chg


def _tick_cells(row: LatestTick, name_of: Callable[[int], str], now: float) -> list[Cell]:
    tick = row.tick
    depth = tick.depth
    divisor = tick.divisor
    volume = tick.volume_traded
    return [
        printable(name_of(tick.values[0])),
        _price(tick.last_price, divisor),
        _change(tick.change),
        "-" if volume is None else f"{volume:,}",
        _price(depth.buy[0].price, divisor) if depth is not None else "-",
        _price(depth.sell[0].price, divisor) if depth is not None else "-",
        format_age(now - row.received_wall),
        f"{row.key}#{row.connection}",
    ]


def _ticks_block(
    rows: list[LatestTick], name_of: Callable[[int], str], now: float, title: str, width: int
) -> _Block:
    """The rows with every value whole: columns that do not fit in ``width`` are left out (key
    first, then ask, bid, volume, age, change), never cut."""
    cells = [_tick_cells(row, name_of, now) for row in rows]
    widths = _widths([header for header, _ in _TICK_COLUMNS], cells)
    keep = list(range(len(_TICK_COLUMNS)))
    for index in _DROP_ORDER:
        if sum(widths[i] for i in keep) + len(_GAP) * (len(keep) - 1) <= width:
            break
        keep.remove(index)
    return _grid(
        title,
        [_TICK_COLUMNS[i] for i in keep],
        [[line[i] for i in keep] for line in cells],
        widths=[widths[i] for i in keep],
    )


def _depth_block(row: LatestTick, name_of: Callable[[int], str]) -> _Block:
    tick = row.tick
    depth = tick.depth
    rows: list[list[Cell]] = []
    if depth is not None:
        for bid, ask in zip(depth.buy, depth.sell, strict=True):
            rows.append(
                [
                    str(bid.orders),
                    f"{bid.quantity:,}",
                    _price(bid.price, tick.divisor),
                    _price(ask.price, tick.divisor),
                    f"{ask.quantity:,}",
                    str(ask.orders),
                ]
            )
    columns = [(name, True) for name in ("orders", "qty", "bid", "ask", "qty", "orders")]
    styles = ["green"] * 3 + ["red"] * 3
    return _grid(f"depth {printable(name_of(tick.values[0]))}", columns, rows, styles=styles)


def _distribution_lines(stats: FeedStats) -> int:
    return sum(max(1, len(key.connections)) for key in stats.keys)


def _distribution_block(stats: FeedStats, limit: int) -> _Block:
    """Every connection, or the first ``limit - 1`` and how many more."""
    rows: list[list[Cell]] = []
    for key in stats.keys:
        if not key.connections:
            rows.append([key.key_id, "-", "0", "-", Text(key.state.value, _STATE_STYLE[key.state])])
        for conn in key.connections:
            modes = conn.symbols_by_mode
            state = Text(conn.state.value, "green" if conn.state.value == "connected" else "yellow")
            rows.append(
                [
                    key.key_id,
                    str(conn.index),
                    f"{conn.symbols:,}",
                    f"{modes.get('ltp', 0)}/{modes.get('quote', 0)}/{modes.get('full', 0)}",
                    state,
                ]
            )
    columns = [
        ("key", False),
        ("conn", True),
        ("symbols", True),
        ("ltp/quote/full", True),
        ("state", False),
    ]
    if len(rows) <= limit:
        return _grid("distribution", columns, rows)
    shown = max(limit - 1, 0)
    block = _grid(
        "distribution", columns, rows[:shown], widths=_widths([c for c, _ in columns], rows)
    )
    block.lines.append(Text(f"+{len(rows) - shown} more connections", style="dim"))
    return block


def _keys_block(stats: FeedStats) -> _Block:
    rows: list[list[Cell]] = []
    for key in stats.keys:
        rows.append(
            [
                key.key_id,
                Text(key.state.value, _STATE_STYLE[key.state]),
                f"{key.connections_up}/{len(key.connections)}",
                f"{sum(conn.symbols for conn in key.connections):,}",
                f"{key.ticks_per_s:,.0f}",
                str(key.reconnects),
                f"{key.drops:,}",
                format_age(key.last_frame_age_s),
            ]
        )
    totals = stats.totals
    rows.append(
        [
            Text("all", style="bold"),
            "",
            f"{totals.connections_up}/{totals.connections}",
            f"{totals.symbols:,}",
            f"{totals.ticks_per_s:,.0f}",
            str(totals.reconnects),
            f"{totals.drops:,}",
            "",
        ]
    )
    columns = [
        ("key", False),
        ("state", False),
        ("up", True),
        ("symbols", True),
        ("ticks/s", True),
        ("reconn", True),
        ("drops", True),
        ("last frame", True),
    ]
    return _grid("keys", columns, rows)


def _clock(epoch: float) -> str:
    """A wall-clock time in IST, the market's zone (and the JSON records')."""
    return datetime.fromtimestamp(epoch, tz=IST).strftime("%H:%M:%S")


def event_text(event: StatusEvent | OrderEvent | ErrorEvent) -> Text:
    """One event as one line, its time in IST (the events panel's title says so)."""
    clock = _clock(event.at)
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
    style = "red" if event.state in (Status.AUTH_FAILED, Status.REPLAN_FAILED) else "yellow"
    if event.state == Status.CONNECTED:
        style = "green"
    text = f"{clock} {where} {event.state}"
    if event.message and event.message != event.state:
        text += f": {event.message}"
    if event.gap is not None:
        text += f" (gap {event.gap.seconds:.1f}s, {plural(len(event.gap.tokens), 'symbol')})"
    return Text(printable(text), style=style)


def _events(events: Sequence[Event], limit: int) -> list[Text]:
    """The title line (with how to stop), then the latest ``limit`` events, one line each."""
    notable = [e for e in events if not isinstance(e, TickBatch)]
    lines = [Text.assemble(("events (IST)", "bold"), ("    Ctrl-C to stop", "dim"))]
    lines += [event_text(event) for event in (notable[-limit:] if limit > 0 else [])]
    if not notable:
        lines.append(Text("-", style="dim"))
    return lines


def _wrapped(first: str, parts: Sequence[str], width: int) -> list[Text]:
    """``first`` (bold) and the comma-separated ``parts``, wrapped between parts."""
    lines = [Text(first, style="bold")]
    for i, part in enumerate(parts):
        piece = part + ("," if i < len(parts) - 1 else "")
        line = lines[-1]
        glue = "  " if i == 0 else " "
        if line.cell_len + len(glue) + len(piece) <= width or not line.plain:
            line.append(glue + piece)
        else:
            lines.append(Text(piece))
    return lines


def _beside(left: _Block, right: _Block, gap: int = 2) -> _Block:
    """Two blocks side by side, the right one starting ``gap`` columns after the left's width."""
    lines = []
    for i in range(max(len(left.lines), len(right.lines))):
        line = left.lines[i].copy() if i < len(left.lines) else Text()
        if i < len(right.lines):
            line.append(" " * (left.width + gap - line.cell_len))
            line.append_text(right.lines[i])
        lines.append(line)
    return _Block(lines, left.width + gap + right.width)


def _stacked(*blocks: _Block) -> _Block:
    return _Block([line for b in blocks for line in b.lines], max(b.width for b in blocks))


def _spacer() -> _Block:
    return _Block([Text("")], 0)


def dashboard(
    board: TickBoard | BoardView,
    stats: FeedStats,
    name_of: Callable[[int], str],
    events: Sequence[Event],
    *,
    now: float,
    title: str,
    width: int,
    height: int,
) -> Screen:
    """The whole dashboard as one renderable that fits ``width`` x ``height``.

    Always shown: the header, the ticks table with as many rows as fit and how many it leaves
    out (``+N more``), the key states, and the latest events. Values are never cut: a narrow
    terminal drops tick columns (key, ask, bid, volume) instead. The distribution (cut to the
    connections that fit, saying how many more) and the market depth are shown where there is
    room: beside the ticks when both fit side by side, else below them while ten tick rows
    remain.

    Args:
        board: the latest tick of every symbol, and which to show; or a view of it
            (:meth:`TickBoard.view`), to lay the dashboard out in another thread.
        stats: a snapshot of the feed.
        name_of: a token's display name.
        events: recent status, order and error events, oldest first.
        now: the current Unix time (for ages).
        title: the header's first words.
        width: the terminal width.
        height: the terminal height.
    """
    totals = stats.totals
    # With redundancy the connections carry each symbol twice: the board knows the symbols.
    symbols = (
        f"{plural(len(board), 'symbol')} on {plural(len(stats.keys), 'key')}, "
        f"each on {stats.redundancy.redundancy}"
        if stats.redundancy is not None
        else f"{plural(totals.symbols, 'symbol')} on {plural(len(stats.keys), 'key')}"
    )
    header = _wrapped(
        title,
        [
            symbols,
            f"{totals.connections_up}/{totals.connections} connections up",
            f"{totals.ticks_per_s:,.0f} ticks/s",
            f"{totals.ticks:,} ticks",
            f"{totals.drops:,} dropped",
            f"up {stats.uptime_s:,.0f}s",
        ],
        width,
    )
    keys = _keys_block(stats)
    n_events = sum(1 for e in events if not isinstance(e, TickBatch))
    event_limit = min(max(n_events, 1), 8 if height >= 40 else 5 if height >= 30 else 3)
    bottom = _events(events, event_limit)
    room = max(height - len(header) - len(bottom), 0)
    dist_rows = _distribution_lines(stats)
    depth_lines = _TABLE_CHROME + 5

    def ticks_title(shown: int) -> str:
        label = f"ticks by {board.sort.value}" + (", watched first" if board.watch else "")
        hidden = len(board) - shown
        if hidden <= 0:
            return f"{label}: all {plural(len(board), 'symbol')}"
        never = len(board) - board.ticked
        waiting = f", {never:,} yet to tick" if never else ""
        return f"{label}: +{hidden:,} more{waiting} (--sort, --watch choose)"

    # Side by side: ticks on the left; keys, depth and distribution on the right.
    rows = board.rows(max(room - _TABLE_CHROME, 1), now)
    ticks = _ticks_block(rows, name_of, now, ticks_title(len(rows)), width)
    if ticks.width + 2 + keys.width <= width:
        side = keys
        depth_row = _depth_row(board, rows)
        if depth_row is not None and len(side.lines) + 1 + depth_lines <= room:
            side = _stacked(side, _spacer(), _depth_block(depth_row, name_of))
        if len(side.lines) + 1 + _TABLE_CHROME + 1 <= room:
            limit = room - len(side.lines) - 1 - _TABLE_CHROME
            side = _stacked(side, _spacer(), _distribution_block(stats, limit))
        body = _beside(ticks, side)
    else:
        # Stacked: the ticks, then the keys (with the distribution beside them when it fits).
        room -= len(keys.lines)
        tick_room = max(room - _TABLE_CHROME, 1)
        below = keys
        wide_dist = _distribution_block(stats, dist_rows)
        if keys.width + 2 + wide_dist.width <= width:
            extra = max(_TABLE_CHROME + dist_rows - len(keys.lines), 0)
            limit = dist_rows if tick_room - extra >= 10 else len(keys.lines) - _TABLE_CHROME
            below = _beside(keys, _distribution_block(stats, limit))
            tick_room -= len(below.lines) - len(keys.lines)
        elif tick_room - (_TABLE_CHROME + dist_rows) >= 10:
            below = _stacked(keys, wide_dist)
            tick_room -= len(wide_dist.lines)
        rows = rows[:tick_room]  # what a smaller limit would choose
        depth_row = _depth_row(board, rows)
        if depth_row is not None and tick_room - depth_lines >= 10:
            rows = rows[: tick_room - depth_lines]
            below = _stacked(below, _depth_block(depth_row, name_of))
        ticks = _ticks_block(rows, name_of, now, ticks_title(len(rows)), width)
        body = _stacked(ticks, below)
    lines = [*header, *body.lines, *bottom][:height]
    for line in lines:
        line.truncate(width, overflow="ellipsis")
    return Screen(lines)


class Screen:
    """Lines laid out already, each cut to the width: drawn as they are.

    What :func:`dashboard` gives. One Text of every line, even with ``no_wrap``, is split into
    its lines again, each justified, cropped and joined once more when drawn: half of the cost
    of a refresh, four times a second. The lines render to the same segments without it.
    """

    __slots__ = ("lines",)

    def __init__(self, lines: list[Text]) -> None:
        self.lines = lines

    @property
    def plain(self) -> str:
        """The text of the lines, without styles, one ``\\n`` after each but the last."""
        return "\n".join(line.plain for line in self.lines)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        newline = Segment.line()
        for line in self.lines:
            if line.spans:
                yield from line.render(console)  # the line's own style under its spans
            else:
                # (Text.render leaves a line's own style out when it has no spans.)
                yield Segment(line.plain, console.get_style(line.style) if line.style else None)
            yield newline


def _depth_row(board: TickBoard | BoardView, rows: Sequence[LatestTick]) -> LatestTick | None:
    """The depth to show: the chosen symbol's, else the first full-mode row's."""
    if board.depth is not None:
        row = board.latest(board.depth)
        return row if row is not None and row.tick.kind == 184 else None
    return next((row for row in rows if row.tick.kind == 184), None)
