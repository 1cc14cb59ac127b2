"""A plan as people and scripts see it: a Rich table, a JSON document, and TOML pins.

Pure: a :class:`~kitefan.planner.Plan` in, a renderable or a string out. No secret is in a plan, so
none can appear here.

With redundancy (``redundancy = 2``) every symbol is in two connections of two keys: the rows show
both places, the totals count each symbol once (and its copies' bandwidth), and the caption says so.

The bandwidth estimate counts one packet per symbol per second (the most Kite sends for a liquid
instrument), each packet the size of its mode (ltp 8, quote 44, full 184 bytes; an index's quote
28 and full 32) plus its 2-byte length.

Owns: ``plan_table``, ``plan_document``, ``plan_json``, ``plan_pins``, ``bytes_per_second``. Must
not import asyncio, websockets or typer, or do any I/O.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import tomli_w
from rich import box
from rich.table import Table
from rich.text import Text

from kitefan.models import INDICES_SEGMENT, Mode, segment_of
from kitefan.planner import Plan
from kitefan.settings import Strategy, SymbolSpec

__all__ = [
    "INDEX_PACKET_BYTES",
    "PACKET_BYTES",
    "bytes_per_second",
    "plan_document",
    "plan_json",
    "plan_pins",
    "plan_table",
]

#: Bytes of one packet of a tradable instrument, by mode.
PACKET_BYTES = {Mode.LTP: 8, Mode.QUOTE: 44, Mode.FULL: 184}
#: Bytes of one packet of an index (segment 9), by mode.
INDEX_PACKET_BYTES = {Mode.LTP: 8, Mode.QUOTE: 28, Mode.FULL: 32}
_LENGTH_PREFIX = 2


def bytes_per_second(symbols: Iterable[SymbolSpec]) -> int:
    """The bytes a set of symbols sends at one packet per symbol per second."""
    total = 0
    for spec in symbols:
        sizes = INDEX_PACKET_BYTES if segment_of(spec.token) == INDICES_SEGMENT else PACKET_BYTES
        total += sizes[spec.mode] + _LENGTH_PREFIX
    return total


def _rate(value: int) -> str:
    if value < 1000:
        return f"{value} B/s"
    if value < 1_000_000:
        return f"{value / 1000:.1f} kB/s"
    return f"{value / 1_000_000:.2f} MB/s"


def _modes(symbols: Iterable[SymbolSpec]) -> str:
    counts = Counter(spec.mode for spec in symbols)
    return ", ".join(f"{counts[mode]} {mode.value}" for mode in reversed(Mode) if counts[mode])


def _fill(count: int, capacity: int) -> str:
    share = 100 * count / capacity if capacity else 0.0
    return f"{count:,}/{capacity:,} {share:.0f}%"


def plan_table(plan: Plan) -> Table:
    """One row per connection: symbols, mode mix, fill against capacity, expected bandwidth.

    A key with nothing to stream gets one row of dashes; the last row holds the totals, and the
    caption the spare capacity.
    """
    limit = plan.max_symbols_per_connection
    caption = f"spare capacity {plan.spare:,} symbols; bandwidth at ~1 tick/s per symbol"
    if plan.redundancy > 1:
        caption = (
            f"redundancy {plan.redundancy}: every symbol on {plan.redundancy} keys (capacity "
            f"÷ {plan.redundancy}); " + caption
        )
    table = Table(
        title=f"Plan ({plan.strategy.value})",
        caption=caption,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("key")
    table.add_column("conn", justify="right")
    table.add_column("symbols", justify="right")
    table.add_column("modes", no_wrap=True)
    table.add_column("fill", justify="right", no_wrap=True)
    table.add_column("bandwidth", justify="right")
    for key in plan.keys:
        if not key.connections:
            table.add_row(key.key_id, "-", "0", "-", "-", "-")
        for connection in key.connections:
            table.add_row(
                key.key_id,
                str(connection.index),
                f"{len(connection.symbols):,}",
                _modes(connection.symbols),
                _fill(len(connection.symbols), limit),
                _rate(bytes_per_second(connection.symbols)),
            )
    everything = list(plan.symbols())
    table.add_section()
    table.add_row(
        Text("total", style="bold"),
        str(plan.connection_count),
        f"{len(everything):,}",
        _modes(everything),
        _fill(len(everything), plan.capacity),
        _rate(bytes_per_second(plan.copies())),
    )
    if plan.unplaced:
        table.add_row(
            Text("unplaced", style="bold red"),
            "-",
            f"{len(plan.unplaced):,}",
            _modes(plan.unplaced),
            "-",
            "-",
        )
    return table


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as the JSON document scripts read.

    ``{"strategy", "keys": [{"id", "connections": [{"index", "symbols": [{"instrument_token",
    "symbol", "mode"}]}]}], "totals": {"symbols", "capacity", "connections"}, "redundancy"}``;
    every key appears, in config order, even with no connections. With redundancy a symbol is
    listed under each key that streams it; ``totals.symbols`` counts it once.
    """
    return {
        "strategy": plan.strategy.value,
        "redundancy": plan.redundancy,
        "keys": [
            {
                "id": key.key_id,
                "connections": [
                    {
                        "index": connection.index,
                        "symbols": [
                            {
                                "instrument_token": spec.token,
                                "symbol": spec.name,
                                "mode": spec.mode.value,
                            }
                            for spec in connection.symbols
                        ],
                    }
                    for connection in key.connections
                ],
            }
            for key in plan.keys
        ],
        "totals": {
            "symbols": plan.symbol_count,
            "capacity": plan.capacity,
            "connections": plan.connection_count,
        },
    }


def plan_json(plan: Plan) -> str:
    """:func:`plan_document` as indented JSON."""
    return json.dumps(plan_document(plan), indent=2, ensure_ascii=False)


def _pin(spec: SymbolSpec) -> str | int:
    return spec.token if spec.name == str(spec.token) else spec.name


def plan_pins(plan: Plan, *, mode: Mode) -> str:
    """The plan as TOML that freezes it: each key's symbols as pins, under ``manual``.

    Paste each ``[[keys]]`` table's ``symbols`` into the key of the same id (or use the whole
    document as a config once credentials are added). Each key's pins are listed in the order its
    connections take turns, so replaying them gives the same connections; symbols whose mode is
    not ``mode`` (the config's default) are listed under ``[symbols]`` with their mode.

    With redundancy a symbol is pinned at its first place only (a symbol has one pin) and the
    document keeps ``redundancy``: replayed, its second copy goes least-loaded, so only the pinned
    copies are sure to land where they are now.

    Args:
        plan: the plan to freeze.
        mode: the default mode of the config the pins will go back into.
    """
    keys = []
    for key in plan.keys:
        first = [spec for spec in key.dealt() if (plan.where(spec.token) or ("",))[0] == key.key_id]
        keys.append({"id": key.key_id, "symbols": [_pin(spec) for spec in first]})
    others: dict[str, list[str | int]] = {}
    for spec in plan.symbols():
        if spec.mode is not mode:
            others.setdefault(spec.mode.value, []).append(_pin(spec))
    doc: dict[str, Any] = {"strategy": Strategy.MANUAL.value, "mode": mode.value}
    if plan.redundancy > 1:
        doc["redundancy"] = plan.redundancy
    doc["keys"] = keys
    if others:
        doc["symbols"] = {m.value: others[m.value] for m in Mode if m.value in others}
    return tomli_w.dumps(doc)
