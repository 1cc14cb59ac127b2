"""Waiting, boundedly, for a condition that has no change notification.

Owns: ``eventually`` (a condition checked on a timer) and ``until`` (the same for an awaited
condition, such as another process's answer on its control socket). For what has nothing to
wait on: the feed's and the servers' counters (bumped on the hot path, so never notified, on
purpose), another process's output file, a socket's answer. A condition that can be waited on is
waited on instead: the simulator's state with ``simulators.sim_until`` (tests/integration), a
stream's events by reading them. Never a bare sleep standing in for a condition.

Must not import: kitefan (these are the tests' own clocks, for any test).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(
    predicate: Callable[[], bool], within: float = 20.0, *, every: float = 0.01
) -> None:
    """Check ``predicate`` every ``every`` seconds until it holds; ``TimeoutError`` after
    ``within`` seconds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - nothing to wait on, see the docstring
            await asyncio.sleep(every)


async def until(
    predicate: Callable[[], Awaitable[bool]], within: float = 20.0, *, every: float = 0.05
) -> None:
    """Await ``predicate`` every ``every`` seconds until it holds; ``TimeoutError`` after
    ``within`` seconds (the time it takes counts)."""
    async with asyncio.timeout(within):
        while not await predicate():  # noqa: ASYNC110 - nothing to wait on, see the docstring
            await asyncio.sleep(every)
