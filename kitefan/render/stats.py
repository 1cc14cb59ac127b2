"""``kitefan stats`` for people: a running stream's stats document as Rich tables.

The input is the stats document the stream serves over its control channel
(:meth:`kitefan.stats.FeedStats.as_dict`, the same JSON ``kitefan stats --format json`` prints),
so what people see and what scripts read cannot disagree.

Tables with one row per key (its totals) followed by a row per connection:

* connections: state, symbols by mode, uptime, age of the last frame;
* traffic: ticks, ticks/s, frames, bytes, dropped ticks (in the connections table from 120
  columns on);
* health: reconnects and the last gap, decode errors, server errors, the exchange
  delay of full-mode ticks (p50/p99, whole seconds: exchange timestamps have 1 s resolution),
  and how many subscribed symbols have not ticked since they were subscribed.

The counters' columns (ticks, frames, bytes, drops; reconnects, decode and server errors) come
from the counter table (:data:`kitefan.stats.COUNTERS`: header, table, count or bytes), in its
order; the other figures are placed beside them (``_BESIDE``). A counter given a column there
appears here with nothing else to edit.

A ``--share`` stream adds its group: every live process, the keys it streams and its traffic
(from the snapshots each publishes to Redis), and the keys nobody holds.

Pure: documents in, renderables out (it reads only the counter table of :mod:`kitefan.stats`).
Owns: ``stats_view``, ``never_ticked_table``, ``redundancy_text``, ``format_bytes``,
``format_duration``. Must not import asyncio, websockets or typer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kitefan.models import IST
from kitefan.render.dashboard import format_age, plural
from kitefan.stats import COUNTERS, Counter, View

__all__ = [
    "DELAY_NOTE",
    "format_bytes",
    "format_duration",
    "never_ticked_table",
    "redundancy_text",
    "share_view",
    "stats_view",
]

#: What the exchange delay is, and how coarse.
DELAY_NOTE = (
    "delay: receipt time minus the exchange timestamp of full-mode ticks, p50/p99, "
    "1 s resolution (exchange timestamps are whole seconds; clock differences count)"
)

_STATE_STYLE = {
    "connected": "green",
    "connecting": "yellow",
    "reconnecting": "yellow",
    "auth_failed": "bold red",
    "slot_limited": "magenta",
    "idle": "dim",
    "closed": "dim",
}
_MODES = ("full", "quote", "ltp")


def format_bytes(value: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 kB``, ``2.25 MB``, ``1.10 GB``."""
    if value < 1000:
        return f"{value} B"
    if value < 1_000_000:
        return f"{value / 1000:.1f} kB"
    if value < 1_000_000_000:
        return f"{value / 1_000_000:.2f} MB"
    return f"{value / 1_000_000_000:.2f} GB"


def format_duration(seconds: float | None) -> str:
    """A duration for people: ``42s``, ``5m07s``, ``3h05m``, ``2d04h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _state(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, ""))


def _gap(gap: Mapping[str, Any] | None, updated_at: float) -> str:
    if not gap:
        return "-"
    ago = format_age(updated_at - float(gap["end"]))
    return f"{float(gap['seconds']):.1f}s, {ago} ago"


def _delay(p50: int | None, p99: int | None) -> str:
    if p50 is None or p99 is None:
        return "-"
    return f"{p50}/{p99}s"


def _by_mode(connections: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    totals = dict.fromkeys(_MODES, 0)
    for conn in connections:
        for mode in _MODES:
            totals[mode] += int(conn.get("symbols_by_mode", {}).get(mode, 0))
    return totals


# A column: its header, and the cell of a key's row and of a connection's row.
_Cell = Callable[[Mapping[str, Any], float], "str | Text"]


@dataclass(frozen=True, slots=True)
class _Column:
    header: str
    key: _Cell
    conn: _Cell
    left: bool = False


def _key_modes(key: Mapping[str, Any], mode: str) -> str:
    return f"{_by_mode(key['connections'])[mode]:,}"


_COLUMNS = {
    "state": _Column(
        "state", lambda k, _: _state(k["state"]), lambda c, _: _state(c["state"]), True
    ),
    "symbols": _Column(
        "symbols", lambda k, _: f"{k['symbols']:,}", lambda c, _: f"{c['symbols']:,}"
    ),
    "full": _Column(
        "full",
        lambda k, _: _key_modes(k, "full"),
        lambda c, _: f"{c['symbols_by_mode'].get('full', 0):,}",
    ),
    "quote": _Column(
        "quote",
        lambda k, _: _key_modes(k, "quote"),
        lambda c, _: f"{c['symbols_by_mode'].get('quote', 0):,}",
    ),
    "ltp": _Column(
        "ltp",
        lambda k, _: _key_modes(k, "ltp"),
        lambda c, _: f"{c['symbols_by_mode'].get('ltp', 0):,}",
    ),
    "uptime": _Column("uptime", lambda k, _: "", lambda c, _: format_duration(c["uptime_s"])),
    "last frame": _Column(
        "last frame",
        lambda k, _: format_age(k["last_frame_age_s"]),
        lambda c, _: format_age(c["last_frame_age_s"]),
    ),
    "ticks/s": _Column(
        "ticks/s", lambda k, _: f"{k['ticks_per_s']:,.0f}", lambda c, _: f"{c['ticks_per_s']:,.0f}"
    ),
    "last gap": _Column(
        "last gap", lambda k, at: _gap(k["last_gap"], at), lambda c, at: _gap(c["last_gap"], at)
    ),
    "delay": _Column(
        "delay",
        lambda k, _: "",
        lambda c, _: _delay(c["exchange_delay_p50_s"], c["exchange_delay_p99_s"]),
    ),
    "never ticked": _Column(
        "never ticked", lambda k, _: f"{k['never_ticked']:,}", lambda c, _: f"{c['never_ticked']:,}"
    ),
}


def _count(value: int) -> str:
    return f"{value:,}"


def _counter_column(counter: Counter, header: str) -> _Column:
    """A counter's column, from the table (:class:`kitefan.stats.Counts`): the key's sum in its
    row, each connection's own in theirs."""
    name = counter.name
    show: Callable[[int], str] = format_bytes if counter.unit == "bytes" else _count
    return _Column(header, lambda k, _: show(k[name]), lambda c, _: show(c[name]))


_COLUMNS.update({c.column: _counter_column(c, c.column) for c in COUNTERS if c.column is not None})

_STATE = ("state", "symbols", "full", "quote", "ltp", "uptime", "last frame")

# The columns that are not counters, in the view of the counters: each after a counter's column,
# or (None) at the end.
_BESIDE: dict[View, tuple[tuple[str, str | None], ...]] = {
    "traffic": (("ticks/s", "ticks"),),
    "health": (("last gap", "reconnects"), ("delay", None), ("never ticked", None)),
}


def _view(view: View) -> tuple[str, ...]:
    """A table's columns: its counters, in the table's order, with the others beside them."""
    columns = [c.column for c in COUNTERS if c.view == view and c.column is not None]
    for column, after in _BESIDE[view]:
        columns.insert(columns.index(after) + 1 if after in columns else len(columns), column)
    return tuple(columns)


_TRAFFIC = _view("traffic")
_HEALTH = _view("health")

# Headers of more than one word go on two lines, but for these.
_ONE_LINE = frozenset({"last gap"})


def _table(title: str, columns: Sequence[str], document: Mapping[str, Any]) -> Table:
    updated_at = float(document["updated_at"])
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("key", no_wrap=True)
    table.add_column("conn", justify="right")
    specs = [_COLUMNS[name] for name in columns]
    for spec in specs:
        table.add_column(
            spec.header if spec.header in _ONE_LINE else spec.header.replace(" ", "\n"),
            justify="left" if spec.left else "right",
            no_wrap=spec.left,
        )
    for key in document["keys"]:
        table.add_row(
            Text(key["id"], style="bold"), "all", *[spec.key(key, updated_at) for spec in specs]
        )
        for conn in key["connections"]:
            table.add_row("", str(conn["index"]), *[spec.conn(conn, updated_at) for spec in specs])
    return table


def redundancy_text(redundancy: Mapping[str, Any]) -> str:
    """What the merge of redundant keys did, from its document (``RedundancyStats.as_dict``):
    ``redundancy 2: 5,400 ticks once, 5,390 duplicates dropped, 10 one-sided (missed by k1 10)``.
    """
    missed = ", ".join(f"{key} {count:,}" for key, count in redundancy["missed"].items() if count)
    duplicates = sum(redundancy["duplicates"].values())
    return (
        f"redundancy {redundancy['redundancy']}: {redundancy['delivered']:,} ticks once, "
        f"{duplicates:,} duplicates dropped, {redundancy['one_sided']:,} one-sided"
        + (f" (missed by {missed})" if missed else "")
    )


def _publish_line(publish: Mapping[str, Any]) -> Text:
    """What ``--publish`` does: Redis, its stream, and what did not reach it."""
    state = str(publish["state"])
    line = Text.assemble(
        "publishing to ",
        f"{publish['url']} {publish['stream']}: ",
        (state, "green" if state == "connected" else "bold red"),
        f", {publish['published_ticks']:,} ticks in {publish['published_entries']:,} entries, "
        f"{publish['dropped_ticks']:,} ticks and {publish['dropped_events']:,} events dropped, "
        f"{publish['reconnects']} reconnects",
    )
    if state != "connected" and publish.get("last_error"):
        line.append(f" ({publish['last_error']})")
    return line


def share_view(share: Mapping[str, Any]) -> RenderableType:
    """The group of a ``--share`` stream: who streams which key."""
    redis = str(share["redis"])
    members = list(share["members"])
    header = Text.assemble(
        f"sharing keys as {share['node']} in group {share['group']} (lease {share['lease_s']:g} s, "
        "Redis ",
        (redis, "green" if redis == "connected" else "bold red"),
        f"): {len(members)} process{'' if len(members) == 1 else 'es'}",
    )
    if redis != "connected" and share.get("last_error"):
        header.append(f" ({share['last_error']})")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in (
        ("process", "left"),
        ("keys", "left"),
        ("connections", "right"),
        ("ticks/s", "right"),
        ("ticks", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for node in share.get("nodes", []):
        own = node["share"]
        totals = node["totals"]
        name = str(own["node"]) + (" (this)" if own["node"] == share["node"] else "")
        table.add_row(
            name,
            ", ".join(own["streaming"]) or "-",
            f"{totals['connections_up']}/{totals['connections']}",
            f"{totals['ticks_per_s']:,.0f}",
            f"{totals['ticks']:,}",
        )
    parts: list[RenderableType] = [header, table]
    unheld = [key for key, holder in share["holders"].items() if holder is None]
    if unheld:
        parts.append(Text(f"held by no process: {', '.join(unheld)}", style="bold red"))
    return Group(*parts)


def _record_line(record: Mapping[str, Any]) -> Text:
    """What ``--record`` does: the path, what it holds, and what did not reach it."""
    dropped = int(record["dropped_ticks"])
    line = Text.assemble(
        f"recording to {record['path']}: {record['ticks']:,} ticks in {record['frames']:,} "
        f"frames, {record['bytes_written'] / 1000:,.1f} kB in {record['chunks']:,} chunks, ",
        (f"{dropped:,} ticks dropped", "bold red" if dropped else ""),
    )
    if record.get("dropped_events"):
        line.append(f", {record['dropped_events']:,} events dropped")
    if record.get("write_errors"):
        line.append(f", {record['write_errors']:,} failed writes", style="bold red")
        if record.get("last_error"):
            line.append(f" ({record['last_error']})")
    return line


def stats_view(
    document: Mapping[str, Any],
    *,
    source: str,
    never_ticked: Sequence[Mapping[str, Any]] | None = None,
    width: int = 80,
) -> RenderableType:
    """A running stream's stats, for people.

    Args:
        document: the stats document (``FeedStats.as_dict()``).
        source: who this is, for the header (the config file and the stream's pid).
        never_ticked: the symbols that have not ticked, to list them (None: only count them).
        width: the width to fit (from 120 columns, state and traffic share one table).
    """
    totals = document["totals"]
    # IST, the market's zone, as the dashboard and the JSON records give every time.
    clock = datetime.fromtimestamp(float(document["updated_at"]), tz=IST).strftime("%H:%M:%S IST")
    header = Text.assemble(
        ("kitefan stream", "bold"),
        f" of {source}, up {format_duration(document.get('uptime_s'))}, at {clock}",
    )
    summary = Text(
        f"{plural(int(totals['symbols']), 'symbol')} on {plural(len(document['keys']), 'key')}, "
        f"{totals['connections_up']}/{totals['connections']} connections up, "
        f"{totals['ticks_per_s']:,.0f} ticks/s, {totals['ticks']:,} ticks, "
        f"{totals['reconnects']} reconnects, {totals['drops']:,} dropped"
    )
    parts: list[RenderableType] = [header, summary]
    if (publish := document.get("publish")) is not None:
        parts.append(_publish_line(publish))
    if (share := document.get("share")) is not None:
        parts.append(share_view(share))
    if (record := document.get("record")) is not None:
        parts.append(_record_line(record))
    if (redundancy := document.get("redundancy")) is not None:
        parts.append(Text(redundancy_text(redundancy)))
    if width >= 120:
        parts.append(_table("connections", (*_STATE, *_TRAFFIC), document))
    else:
        parts.append(_table("connections", _STATE, document))
        parts.append(_table("traffic", _TRAFFIC, document))
    parts.append(_table("health", _HEALTH, document))
    for key in document["keys"]:
        if key.get("message") and key["state"] in ("auth_failed", "slot_limited"):
            parts.append(Text(f"{key['id']}: {key['message']}", style=_STATE_STYLE[key["state"]]))
    notes = [DELAY_NOTE]
    silent = sum(int(key["never_ticked"]) for key in document["keys"])
    if never_ticked is not None:
        parts.append(never_ticked_table(never_ticked))
    elif silent:
        notes.append(
            f"never ticked: {silent:,} subscribed symbols have not ticked since they were "
            "subscribed; list them with --never-ticked"
        )
    parts.extend(Text(note, style="dim") for note in notes)
    return Group(*parts)


def never_ticked_table(symbols: Sequence[Mapping[str, Any]]) -> RenderableType:
    """The subscribed symbols that have not ticked since they were subscribed, one per row."""
    if not symbols:
        return Text("never ticked: every subscribed symbol has ticked")
    table = Table(
        title=f"never ticked ({len(symbols):,})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("symbol", no_wrap=True)
    table.add_column("token", justify="right")
    table.add_column("mode")
    table.add_column("key", no_wrap=True)
    table.add_column("conn", justify="right")
    for row in symbols:
        table.add_row(
            str(row["symbol"]),
            str(row["instrument_token"]),
            str(row["mode"]),
            str(row["key"]),
            str(row["connection"]),
        )
    return table
