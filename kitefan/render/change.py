"""An edited config against a running stream, for people: what ``kitefan distribute`` changed (or,
with ``--dry-run``, would change).

A headline, the counts, a table of what each connection does (subscribe, unsubscribe, mode
changes; a move is an unsubscribe at one connection and a subscribe at another), then the first
few symbols of each kind by name, and the keys with a new access token (by id).

Pure: a :class:`~kitefan.change.ConfigChange` in, a renderable out. Owns: ``change_view``. Must
not import asyncio, websockets or typer.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kitefan.change import ConfigChange, MovedSymbol, PlacedSymbol

__all__ = ["change_view"]


def _place(key: str, connection: int) -> str:
    return f"{key}#{connection}"


def _names(label: str, items: Sequence[PlacedSymbol | MovedSymbol], limit: int) -> Text:
    shown = []
    for item in items[:limit]:
        if isinstance(item, MovedSymbol):
            shown.append(f"{item.symbol} {_place(*item.source)}→{_place(*item.target)}")
        else:
            shown.append(f"{item.symbol} ({item.mode}, {_place(item.key, item.connection)})")
    more = len(items) - limit
    tail = f", and {more:,} more" if more > 0 else ""
    return Text(f"{label} ({len(items):,}): {', '.join(shown)}{tail}")


def change_view(change: ConfigChange, *, headline: str, limit: int = 8) -> RenderableType:
    """The change, for people.

    Args:
        change: what changed, or would.
        headline: the first line (whether it was applied, to which stream).
        limit: how many symbols of each kind to name.
    """
    parts: list[RenderableType] = [Text(headline, style="bold"), Text(change.summary())]
    if change.connections:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("key", no_wrap=True)
        table.add_column("conn", justify="right")
        table.add_column("subscribe", justify="right")
        table.add_column("unsubscribe", justify="right")
        table.add_column("mode changes", justify="right")
        for slot in change.connections:
            table.add_row(
                slot.key,
                str(slot.connection),
                f"{slot.subscribe:,}",
                f"{slot.unsubscribe:,}",
                f"{slot.mode_changes:,}",
            )
        table.add_section()
        table.add_row(
            Text("total", style="bold"),
            str(len(change.connections)),
            f"{change.subscribe_count:,}",
            f"{change.unsubscribe_count:,}",
            f"{change.mode_change_count:,}",
        )
        parts.append(table)
    for label, items in (
        ("added", change.added),
        ("removed", change.removed),
        ("moved", change.moved),
        ("mode changed", change.mode_changed),
    ):
        if items:
            parts.append(_names(label, items, limit))
    if change.tokens:
        parts.append(Text(f"new access token for: {', '.join(change.tokens)}"))
    return Group(*parts)
