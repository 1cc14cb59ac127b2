"""The counter table (``kitefan.stats.Counts``): every counter in it reaches the connection, key
and totals documents, the Prometheus exposition and the stats tables, with nothing else to edit."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import processes
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table
from rich.text import Text

import kitefan
from kitefan.events import ConnState, KeyState
from kitefan.metrics import FeedCollector
from kitefan.render.stats import format_bytes, stats_view
from kitefan.stats import COUNTERS, ConnectionStats, Counter, FeedStats, KeyStats

AT = 1_700_000_000.0
# Each connection's count of the table's j-th counter is BASE[connection] + j; the keys count
# their own per-key counters (orders) as ORDERS says.
BASE = {("alpha", 0): 1_000, ("alpha", 1): 20_000, ("bravo", 0): 300_000}
ORDERS = {"alpha": 7, "bravo": 11}


def counted(key: str, index: int) -> dict[str, int]:
    return {c.name: BASE[(key, index)] + j for j, c in enumerate(COUNTERS)}


def connection(key: str, index: int) -> ConnectionStats:
    return ConnectionStats(
        index=index,
        state=ConnState.CONNECTED,
        symbols=3,
        symbols_by_mode={"ltp": 1, "quote": 1, "full": 1},
        ticks_per_s=1.0,
        last_gap=None,
        last_frame_age_s=0.5,
        uptime_s=9.0,
        never_ticked=0,
        exchange_delay_p50_s=0,
        exchange_delay_p99_s=1,
        **counted(key, index),
    )


def feed() -> FeedStats:
    return FeedStats(
        keys=(
            KeyStats(
                "alpha",
                KeyState.CONNECTED,
                (connection("alpha", 0), connection("alpha", 1)),
                ORDERS["alpha"],
            ),
            KeyStats("bravo", KeyState.CONNECTED, (connection("bravo", 0),), ORDERS["bravo"]),
        ),
        updated_at=AT,
        uptime_s=10.0,
    )


def key_value(counter: Counter, key: str) -> int:
    if counter.per_key:
        return ORDERS[key]
    return sum(counted(k, i)[counter.name] for k, i in BASE if k == key)


def shown(counter: Counter, value: int) -> str:
    return format_bytes(value) if counter.unit == "bytes" else f"{value:,}"


def columns_of(view: Group) -> dict[tuple[str, str], list[str]]:
    """(table title, header) -> the column's cells, from the key's row down its connections'."""
    found: dict[tuple[str, str], list[str]] = {}
    for part in view.renderables:
        if isinstance(part, Table):
            for column in part.columns:
                cells = [c.plain if isinstance(c, Text) else str(c) for c in column.cells]
                found[(str(part.title), str(column.header).replace("\n", " "))] = cells
    return found


def test_the_table_names_each_counter_once_with_its_metric_and_help() -> None:
    names = [c.name for c in COUNTERS]
    assert names == [
        "ticks",
        "frames",
        "bytes",
        "heartbeats",
        "skipped_packets",
        "reconnects",
        "decode_errors",
        "server_errors",
        "internal_errors",
        "drops",
        "orders",
    ]
    assert len({c.metric for c in COUNTERS}) == len(COUNTERS)
    assert all(c.help.endswith(".") and c.metric.startswith("kitefan_") for c in COUNTERS)
    assert [c.name for c in COUNTERS if c.per_key] == ["orders"]


def test_every_counter_is_in_the_connection_key_and_totals_documents() -> None:
    stats = feed()
    document = stats.as_dict()
    totals = stats.totals
    for counter in COUNTERS:
        name = counter.name
        for key in document["keys"]:
            assert key[name] == key_value(counter, key["id"]), (name, key["id"])
            assert getattr(stats.key(key["id"]), name) == key[name]
            for conn in key["connections"]:
                assert conn[name] == counted(key["id"], conn["index"])[name], name
        total = key_value(counter, "alpha") + key_value(counter, "bravo")
        assert document["totals"][name] == total, name
        assert getattr(totals, name) == total
    # The counters come in the table's order, after the rate and before the other figures.
    names = [c.name for c in COUNTERS]
    conn = document["keys"][0]["connections"][0]
    assert list(conn)[4 : 5 + len(names)] == ["ticks_per_s", *names]
    assert list(document["keys"][0])[4 : 5 + len(names)] == ["ticks_per_s", *names]
    assert list(document["totals"]) == [
        "symbols",
        "ticks_per_s",
        *names,
        "connections_up",
        "connections",
    ]


def test_every_counter_is_a_prometheus_family_with_its_help() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FeedCollector(feed))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    for counter in COUNTERS:
        family = families[counter.metric]
        assert (family.type, family.documentation) == ("counter", counter.help)
        values = {
            tuple(sorted(s.labels.items())): s.value
            for s in family.samples
            if s.name == counter.metric + "_total"
        }
        expected: dict[tuple[tuple[str, str], ...], float]
        if counter.per_key:
            expected = {(("key", k),): float(v) for k, v in ORDERS.items()}
        else:
            expected = {
                (("connection", str(i)), ("key", k)): float(counted(k, i)[counter.name])
                for k, i in BASE
            }
        assert values == expected, counter.name


def test_every_counter_with_a_column_is_in_its_stats_table_with_exact_values() -> None:
    view = stats_view(feed().as_dict(), source="s", width=80)
    assert isinstance(view, Group)
    found = columns_of(view)
    for counter in COUNTERS:
        if counter.column is None:
            assert counter.view is None, counter.name
            continue
        assert counter.view is not None
        cells = found[(counter.view, counter.column)]
        rows = [("alpha", None), ("alpha", 0), ("alpha", 1), ("bravo", None), ("bravo", 0)]
        assert cells == [
            shown(counter, key_value(counter, k) if i is None else counted(k, i)[counter.name])
            for k, i in rows
        ], counter.name
    # The counters' columns in the table's order, the other figures beside them.
    assert [h for (title, h) in found if title == "traffic"] == [
        "key", "conn", "ticks", "ticks/s", "frames", "bytes", "drops"
    ]  # fmt: skip
    assert [h for (title, h) in found if title == "health"] == [
        "key", "conn", "reconnects", "last gap", "decode errors", "server errors", "delay",
        "never ticked",
    ]  # fmt: skip


# The one line a new counter takes, and what the script in a copy of the package then checks.
NEW_COUNTER = (
    '    spares: int = _counter("kitefan_spares", "Spare parts seen.", column="spares", '
    'view="health")\n'
)
SCRIPT = """
import json
import kitefan
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table
from kitefan.events import ConnState, KeyState
from kitefan.metrics import FeedCollector
from kitefan.render.stats import stats_view
from kitefan.stats import ConnectionCounters, ConnectionStats, FeedStats, KeyStats

def conn(index, spares):
    return ConnectionStats(index=index, state=ConnState.CONNECTED, symbols=1,
        symbols_by_mode={}, ticks_per_s=0.0, last_gap=None, last_frame_age_s=None,
        uptime_s=None, never_ticked=0, exchange_delay_p50_s=None, exchange_delay_p99_s=None,
        spares=spares)

counters = ConnectionCounters()
counters.spares += 2
stats = FeedStats(keys=(KeyStats("alpha", KeyState.CONNECTED, (conn(0, 3), conn(1, 1_500)), 0),),
    updated_at=0.0, uptime_s=1.0)
document = stats.as_dict()
registry = CollectorRegistry(auto_describe=False)
registry.register(FeedCollector(lambda: stats))
family = next(f for f in text_string_to_metric_families(generate_latest(registry).decode())
    if f.name == "kitefan_spares")
health = next(p for p in stats_view(document, source="s").renderables
    if isinstance(p, Table) and p.title == "health")
column = next(c for c in health.columns if c.header == "spares")
print(json.dumps({
    "package": kitefan.__file__,
    "hot path": counters.counts()["spares"],
    "connections": [c["spares"] for c in document["keys"][0]["connections"]],
    "key": document["keys"][0]["spares"],
    "totals": [document["totals"]["spares"], stats.totals.spares],
    "metric": [family.type, family.documentation,
        sorted((s.labels["connection"], s.value) for s in family.samples)],
    "column": [[c.header for c in health.columns].index("spares"), list(column.cells)],
}))
"""


def test_a_counter_added_to_the_table_shows_up_everywhere(tmp_path: Path) -> None:
    package = Path(kitefan.__file__).parent
    copy = tmp_path / "kitefan"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    source = (copy / "stats.py").read_text()
    # At the end of the table: after orders, before the method that follows it.
    anchor = "\n    def counts(self) -> dict[str, int]:"
    assert source.count(anchor) == 1
    (copy / "stats.py").write_text(source.replace(anchor, NEW_COUNTER + anchor))
    result = processes.run_sync(sys.executable, "-c", SCRIPT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "package": str(copy / "__init__.py"),
        "hot path": 2,
        "connections": [3, 1500],
        "key": 1503,
        "totals": [1503, 1503],
        "metric": ["counter", "Spare parts seen.", [["0", 3.0], ["1", 1500.0]]],
        # In the health table, after the counters before it and before delay and never ticked.
        "column": [6, ["1,503", "3", "1,500"]],
    }


@pytest.mark.parametrize("attribute", ["ticks", "orders", "index"])
def test_a_connection_snapshot_cannot_be_changed(attribute: str) -> None:
    conn = connection("alpha", 0)
    with pytest.raises(FrozenInstanceError):
        setattr(conn, attribute, 5)
    with pytest.raises(FrozenInstanceError):
        delattr(conn, attribute)
    assert conn == connection("alpha", 0)


def test_key_and_totals_snapshots_cannot_be_changed() -> None:
    stats = feed()
    with pytest.raises(FrozenInstanceError):
        stats.keys[0].drops = 0
    with pytest.raises(FrozenInstanceError):
        stats.keys[0].key_id = "x"
    totals = stats.totals
    with pytest.raises(FrozenInstanceError):
        totals.frames = 0
    assert totals.frames == stats.totals.frames == 321_003
