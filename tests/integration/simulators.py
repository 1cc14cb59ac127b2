"""The simulator as the in-process integration tests run it, and waiting on its state.

Owns: ``KEYS`` and their simulator ``account`` (the credentials ``app_configs.key`` gives the
same keys, so a config of ``app_configs.key(k)`` connects), ``nse`` (instrument tokens),
``simulator`` (the keys' simulator, not started: ``async with`` starts it on 127.0.0.1 and a free
port) and ``sim_until`` (a bounded wait on the simulator's state, woken on every change of it).
The tests that run kitefan commands in their own processes use the sentinel accounts of
``streams``.

Must not import: processes, streams (nothing here starts a process).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from app_configs import key

from kitefan.simulator import Account, Simulator

KEYS = ("alpha", "bravo", "charlie")


def account(key_id: str) -> Account:
    """The simulator account of ``app_configs.key(key_id)``."""
    credential = key(key_id).credential
    return Account(credential.api_key, credential.access_token)


def nse(n: int, start: int = 1000) -> list[int]:
    """``n`` NSE instrument tokens (segment 1) from ``start``."""
    return [((start + i) << 8) | 1 for i in range(n)]


def simulator(
    seed: int,
    *,
    keys: Iterable[str] = KEYS,
    rate: float | None = 1.0,
    heartbeat_interval_s: float = 0.1,
    max_tokens_per_connection: int = 3000,
) -> Simulator:
    """The simulator of the ``keys``' accounts (``rate`` packets per symbol per second, None for
    as fast as it can), to start with ``async with``."""
    return Simulator(
        [account(k) for k in keys],
        port=0,
        seed=seed,
        rate=rate,
        heartbeat_interval_s=heartbeat_interval_s,
        max_tokens_per_connection=max_tokens_per_connection,
    )


async def sim_until(sim: Simulator, predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until the simulator's state satisfies ``predicate`` (checked on every change)."""
    async with asyncio.timeout(within):
        await sim.wait_until(predicate)
