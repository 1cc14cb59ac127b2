"""A faithful local Kite ticker: ``kitefan simulate`` and the library behind it.

::

    async with Simulator([Account(api_key, access_token)], rate=1.0) as sim:
        ...  # connect to sim.url; break things with sim.drop_connections(), sim.set_silent(), ...

Modules: :mod:`~kitefan.simulator.market` (the seeded walk, kept as wire packets; pure),
:mod:`~kitefan.simulator.feed` (one connection's subscriptions; sans-I/O),
:mod:`~kitefan.simulator.orders` (order updates in the postback shape; pure),
:mod:`~kitefan.simulator.faults` (fault plans, their schedule and the standing faults; pure),
:mod:`~kitefan.simulator.admission` (the handshake's rules; pure),
:mod:`~kitefan.simulator.outbox` (a connection's queue, heartbeats, bound and counts; pure),
:mod:`~kitefan.simulator.pacing` (when market steps and recorded instants are due; pure),
:mod:`~kitefan.simulator.recorded` (a recording as the packet source; pure) and
:mod:`~kitefan.simulator.server` (the websockets server; the only one doing I/O, imported
when one of its names is first used).

Owns: the simulator's public names. Must not import the manager, connection, cli, rich or typer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitefan.simulator.faults import FaultPlan, FaultSpecError, parse_fault_plan, parse_seconds
from kitefan.simulator.feed import Feed, Reply, RequestCounts
from kitefan.simulator.market import Change, Instrument, InstrumentSeed, Market, packet_kind
from kitefan.simulator.orders import order_postback

if TYPE_CHECKING:
    from kitefan.simulator.server import (
        MALFORMED_FRAME,
        Account,
        ConnectionView,
        Counters,
        Simulator,
    )

# The server's names are imported on first use, so that importing a pure module of this package
# (``kitefan.simulator.market``, which runs this file first) loads no asyncio or websockets.
_SERVER_NAMES = frozenset({"MALFORMED_FRAME", "Account", "ConnectionView", "Counters", "Simulator"})


def __getattr__(name: str) -> Any:
    if name in _SERVER_NAMES:
        from kitefan.simulator import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MALFORMED_FRAME",
    "Account",
    "Change",
    "ConnectionView",
    "Counters",
    "FaultPlan",
    "FaultSpecError",
    "Feed",
    "Instrument",
    "InstrumentSeed",
    "Market",
    "Reply",
    "RequestCounts",
    "Simulator",
    "order_postback",
    "packet_kind",
    "parse_fault_plan",
    "parse_seconds",
]
