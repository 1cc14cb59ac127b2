"""Fixtures for tests against the real simulator on loopback.

``simulator`` is a started :class:`~kitefan.simulator.Simulator` on 127.0.0.1 and a free port,
accepting the two accounts of ``accounts`` (labels ``alpha`` and ``bravo``), ticking at 20 packets
per instrument per second with a heartbeat every 0.2 s, so that tests see traffic quickly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kitefan.simulator import Account, Simulator

ALPHA = Account("alpha-api-key-0001", "alpha-access-token-0001", label="alpha")
BRAVO = Account("bravo-api-key-0002", "bravo-access-token-0002", label="bravo")


@pytest.fixture
def accounts() -> tuple[Account, Account]:
    """Two accounts: ``alpha`` and ``bravo``."""
    return (ALPHA, BRAVO)


@pytest.fixture
async def simulator(accounts: tuple[Account, Account]) -> AsyncIterator[Simulator]:
    """A started simulator on 127.0.0.1:0 (seed 1, 20 Hz, heartbeats every 0.2 s)."""
    async with Simulator(list(accounts), seed=1, rate=20.0, heartbeat_interval_s=0.2) as sim:
        yield sim
