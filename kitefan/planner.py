"""The distributor: which symbol goes to which key and which of its connections.

SKELETON: the types below are the contract the manager and the CLI build on; ``plan`` and ``diff``
are being written under issue 3.

Pure and deterministic: no I/O; the same input gives the same plan, symbol for symbol.

Owns: ``Plan`` and its parts, ``plan()``, ``diff()``. Must not import asyncio, websockets, rich,
typer, or do any I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kitefan.config import Strategy, SymbolSpec
from kitefan.models import Mode

__all__ = [
    "ConnectionPlan",
    "KeyCapacity",
    "KeyPlan",
    "Plan",
    "PlanDiff",
    "SlotChange",
    "diff",
    "plan",
]


@dataclass(frozen=True, slots=True)
class KeyCapacity:
    """A key as the planner sees it: its id and how many connections it may use now (0-3).

    0 means the key is down (``auth_failed``): its pinned symbols are placed like unpinned ones
    (failover) and nothing goes to it.
    """

    key_id: str
    connections: int


@dataclass(frozen=True, slots=True)
class ConnectionPlan:
    """The symbols of one connection of one key (``index`` 0, 1 or 2)."""

    index: int
    symbols: tuple[SymbolSpec, ...]


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """One key's connections, in index order; a key with nothing to stream has none."""

    key_id: str
    connections: tuple[ConnectionPlan, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Where every symbol goes."""

    strategy: Strategy
    keys: tuple[KeyPlan, ...]
    max_symbols_per_connection: int


@dataclass(frozen=True, slots=True)
class SlotChange:
    """What one connection must do to go from the old plan to the new one."""

    key_id: str
    index: int
    subscribe: tuple[SymbolSpec, ...]
    unsubscribe: tuple[int, ...]
    mode_changes: tuple[tuple[int, Mode], ...]


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """The smallest change from one plan to another, per connection."""

    changes: tuple[SlotChange, ...]


def plan(
    symbols: Sequence[SymbolSpec],
    keys: Sequence[KeyCapacity],
    *,
    strategy: Strategy,
    max_symbols_per_connection: int,
    previous: Plan | None = None,
) -> Plan:
    """Place every symbol (SKELETON)."""
    raise NotImplementedError


def diff(old: Plan, new: Plan) -> PlanDiff:
    """The smallest change from ``old`` to ``new`` (SKELETON)."""
    raise NotImplementedError
