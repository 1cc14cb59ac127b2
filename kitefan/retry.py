"""When to try a connection again: capped exponential backoff with jitter, and what a refusal means.

Pure: the random source and every number are passed in.

* A network failure (refused, reset, timed out, dropped, silent) is retried without limit, after
  ``initial * factor**attempt`` seconds capped at ``max``, each delay spread by ``±jitter`` so that
  many connections dropped together do not come back together. A connection that stayed up resets
  the sequence.
* HTTP 403 at the handshake is an auth failure: retried only slowly (``auth_retry_s``), never
  hammered; a fresh token wakes it at once.
* HTTP 429 means the key's connection slots are taken by someone else: the key uses fewer.
* Any other HTTP status is treated like a network failure (the real server answers 5xx during
  incidents, and 400 is what a load balancer says to a malformed request).

Owns: ``Backoff``, ``Refusal``, ``classify_status``. Must not import asyncio or websockets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Backoff", "Refusal", "classify_status"]


class Refusal(StrEnum):
    """What an HTTP status on the WebSocket upgrade means for the key."""

    AUTH = "auth"
    SLOTS = "slots"
    RETRY = "retry"


def classify_status(status: int) -> Refusal:
    """Classify the HTTP status that refused a WebSocket upgrade."""
    if status in (401, 403):
        return Refusal.AUTH
    if status == 429:
        return Refusal.SLOTS
    return Refusal.RETRY


@dataclass
class Backoff:
    """Delays between reconnection attempts.

    Args:
        initial_s: the first delay.
        factor: growth per attempt.
        max_s: the cap.
        jitter: each delay is multiplied by a uniform factor in ``[1 - jitter, 1 + jitter]``.
        rng: the random source (seed it in tests).
    """

    initial_s: float
    factor: float
    max_s: float
    jitter: float
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt, and count the attempt."""
        base = min(self.max_s, self.initial_s * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        spread = self.rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return min(self.max_s, max(0.0, base * spread))

    def reset(self) -> None:
        """Start again from the first delay (after a connection that stayed up)."""
        self.attempt = 0
