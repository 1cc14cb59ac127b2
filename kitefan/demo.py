"""The demo: the bundled config streamed from the simulator in-process, with faults to ride out.

Every minute, in turn: one key's token expires (HTTP 403, its symbols fail over to the other
keys) and a fresh token is supplied fifteen seconds later (they move back); another key's
connections are dropped without a close frame (they reconnect and resubscribe, and the gap is
reported); an order update is pushed (it arrives on every connection of its key and is shown
once).

Owns: ``demo_simulator``, ``run_demo_faults``. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from kitefan.manager import FeedManager
from kitefan.settings import AppConfig, Credential
from kitefan.simulator import Simulator

__all__ = ["demo_simulator", "run_demo_faults"]

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def demo_simulator(config: AppConfig, *, seed: int = 0) -> AsyncIterator[Simulator]:
    """The simulator on a free loopback port, accepting the config's keys."""
    async with Simulator.from_config(config, port=0, seed=seed) as sim:
        yield sim


async def run_demo_faults(sim: Simulator, feed: FeedManager, *, period_s: float = 60.0) -> None:
    """Inject the demo's faults, one after another, until cancelled."""
    keys = feed.config.keys
    if len(keys) < 2:
        return
    round_ = 0
    while True:
        round_ += 1
        await asyncio.sleep(period_s * 0.15)
        expiring = keys[1 % len(keys)]
        await sim.expire_token(expiring.credential.api_key, drop=True)
        await asyncio.sleep(period_s * 0.25)
        fresh = Credential(
            expiring.credential.api_key, f"{expiring.credential.access_token}-renewed-{round_}"
        )
        sim.set_token(fresh.api_key, fresh.access_token)
        renewed = replace(
            feed.config,
            keys=tuple(replace(k, credential=fresh) if k.id == expiring.id else k for k in keys),
        )
        feed.apply_config(renewed)
        keys = renewed.keys
        await asyncio.sleep(period_s * 0.25)
        dropped = keys[2 % len(keys)]
        await sim.drop_connections(dropped.credential.api_key)
        await asyncio.sleep(period_s * 0.15)
        await sim.push_order(keys[0].credential.api_key)
        await asyncio.sleep(period_s * 0.2)
