"""What the dashboard of ``kitefan tail`` shows of a remote feed: per key and connection, from
the entries seen."""

from __future__ import annotations

from kitefan.events import ConnState, KeyState, OrderEvent, Status, StatusEvent, TickBatch
from kitefan.models import OrderUpdate, Tick
from kitefan.tail import RemoteStats


def batch(key: str, connection: int, tokens: list[int]) -> TickBatch:
    return TickBatch.of_ticks(key, connection, [Tick.ltp(t, 100) for t in tokens])


def test_keys_connections_ticks_and_states_come_from_the_entries() -> None:
    stats = RemoteStats()
    stats.observe(batch("alpha", 0, [256, 512]))
    stats.observe(batch("alpha", 0, [256]))
    stats.observe(batch("alpha", 2, [768]))
    stats.observe(StatusEvent("bravo", 1, Status.RECONNECTING, "no frame for 5 s", 1.0))
    stats.observe(StatusEvent("*", None, Status.CONFIG_APPLIED, "config applied", 2.0))
    stats.observe(OrderEvent("alpha", 0, OrderUpdate({"order_id": "1"}), 3.0))
    snapshot = stats.snapshot()
    assert [k.key_id for k in snapshot.keys] == ["alpha", "bravo"]
    alpha, bravo = snapshot.keys
    assert [(c.index, c.state, c.frames, c.ticks, c.symbols) for c in alpha.connections] == [
        (0, ConnState.CONNECTED, 2, 3, 2),
        (2, ConnState.CONNECTED, 1, 1, 1),
    ]
    assert (alpha.state, alpha.orders) == (KeyState.CONNECTED, 1)
    assert [(c.index, c.state, c.ticks) for c in bravo.connections] == [
        (1, ConnState.RECONNECTING, 0)
    ]
    assert bravo.state is KeyState.RECONNECTING
    assert snapshot.totals.ticks == 4
    assert alpha.connections[0].bytes == len(batch("alpha", 0, [256, 512]).frame) + len(
        batch("alpha", 0, [256]).frame
    )
