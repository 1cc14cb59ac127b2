"""What applying an edited config to a running stream changes, as people and scripts see it.

A :class:`~kitefan.planner.PlanDiff` says what each connection must do in tokens; a
:class:`ConfigChange` says it with names, modes and places: the symbols added and removed, the
ones that move to another connection, the mode changes, the per-connection counts of subscribes,
unsubscribes and mode changes, and the keys whose access token changed (their ids only). It is
what ``kitefan distribute`` shows, what crosses the control channel (``as_dict`` /
``from_dict``, typed as :class:`ChangeDocument`), and what a running stream reports when it
applies a config.

No secret is in a change: keys are named by their config id, never by api key or token.

Pure: plans and configs in, values out. Owns: ``ConfigChange`` and its parts, and their JSON
documents (``ChangeDocument``, ``PlacedDocument``, ``MovedDocument``, ``CountsDocument``,
``SlotDocument``). Must not import asyncio, websockets, rich or typer, or do any I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from kitefan.planner import PlanDiff
from kitefan.settings import AppConfig, SymbolSpec

__all__ = [
    "ChangeDocument",
    "ConfigChange",
    "CountsDocument",
    "MovedDocument",
    "MovedSymbol",
    "PlacedDocument",
    "PlacedSymbol",
    "SlotCounts",
    "SlotDocument",
]


class PlacedDocument(TypedDict):
    """:meth:`PlacedSymbol.as_dict`."""

    instrument_token: int
    symbol: str
    mode: str
    key: str
    connection: int


class SlotDocument(TypedDict):
    """A connection, by key id and index."""

    key: str
    connection: int


#: :meth:`MovedSymbol.as_dict` (``from`` is a keyword, hence this form).
MovedDocument = TypedDict(
    "MovedDocument",
    {
        "instrument_token": int,
        "symbol": str,
        "mode": str,
        "from": SlotDocument,
        "to": SlotDocument,
    },
)


class CountsDocument(TypedDict):
    """:meth:`SlotCounts.as_dict`."""

    key: str
    connection: int
    subscribe: int
    unsubscribe: int
    mode_changes: int


class ChangeDocument(TypedDict):
    """:meth:`ConfigChange.as_dict`: what ``distribute --format json`` prints and the control
    channel's ``preview`` and ``apply`` answer (the three counts are derived)."""

    config: str
    applied: bool
    subscribe: int
    unsubscribe: int
    mode_changes: int
    added: list[PlacedDocument]
    removed: list[PlacedDocument]
    moved: list[MovedDocument]
    mode_changed: list[PlacedDocument]
    connections: list[CountsDocument]
    tokens: list[str]
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class PlacedSymbol:
    """A symbol, its mode, and the connection (key id, index) it is on or leaves."""

    token: int
    symbol: str
    mode: str
    key: str
    connection: int

    def as_dict(self) -> PlacedDocument:
        return {
            "instrument_token": self.token,
            "symbol": self.symbol,
            "mode": self.mode,
            "key": self.key,
            "connection": self.connection,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlacedSymbol:
        return cls(
            int(data["instrument_token"]),
            str(data["symbol"]),
            str(data["mode"]),
            str(data["key"]),
            int(data["connection"]),
        )


@dataclass(frozen=True, slots=True)
class MovedSymbol:
    """A symbol that changes connection: unsubscribed at ``source``, subscribed at ``target``."""

    token: int
    symbol: str
    mode: str
    source: tuple[str, int]
    target: tuple[str, int]

    def as_dict(self) -> MovedDocument:
        return {
            "instrument_token": self.token,
            "symbol": self.symbol,
            "mode": self.mode,
            "from": {"key": self.source[0], "connection": self.source[1]},
            "to": {"key": self.target[0], "connection": self.target[1]},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MovedSymbol:
        source, target = data["from"], data["to"]
        return cls(
            int(data["instrument_token"]),
            str(data["symbol"]),
            str(data["mode"]),
            (str(source["key"]), int(source["connection"])),
            (str(target["key"]), int(target["connection"])),
        )


@dataclass(frozen=True, slots=True)
class SlotCounts:
    """What one connection does: symbols to subscribe, to unsubscribe, to change mode."""

    key: str
    connection: int
    subscribe: int
    unsubscribe: int
    mode_changes: int

    def as_dict(self) -> CountsDocument:
        return {
            "key": self.key,
            "connection": self.connection,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "mode_changes": self.mode_changes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlotCounts:
        return cls(
            str(data["key"]),
            int(data["connection"]),
            int(data["subscribe"]),
            int(data["unsubscribe"]),
            int(data["mode_changes"]),
        )


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """An edited config against a running stream: what changes, by name and place.

    Attributes:
        config: the config file that was re-read.
        applied: whether the change was made (False for a preview).
        added: symbols the stream did not carry, where they go.
        removed: symbols it stops carrying, where they were.
        moved: symbols that change connection.
        mode_changed: symbols that stay on their connection in another mode (the new one).
        connections: per connection, the symbols to subscribe, unsubscribe and change mode
            (moves included), for connections with something to do.
        tokens: ids of the keys whose access token changed (a key back from ``auth_failed``).
        warnings: what the config load warned about, and edits that take effect only on the
            next start.
    """

    config: str
    applied: bool
    added: tuple[PlacedSymbol, ...] = ()
    removed: tuple[PlacedSymbol, ...] = ()
    moved: tuple[MovedSymbol, ...] = ()
    mode_changed: tuple[PlacedSymbol, ...] = ()
    connections: tuple[SlotCounts, ...] = ()
    tokens: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_diff(
        cls,
        change: PlanDiff,
        before: AppConfig,
        after: AppConfig,
        *,
        config: str,
        applied: bool,
        warnings: Sequence[str] = (),
    ) -> ConfigChange:
        """Name and place a plan diff.

        Args:
            change: the diff from the running plan to the edited config's.
            before: the config the stream ran with (names of removed symbols).
            after: the edited config (names of added and changed symbols, tokens).
            config: the config file re-read.
            applied: whether the change was made.
            warnings: extra warnings to carry (the loader's are taken from ``after``).
        """
        old = {spec.token: spec for spec in before.symbols}
        new = {spec.token: spec for spec in after.symbols}

        def spec_of(token: int, *sources: Mapping[int, SymbolSpec]) -> SymbolSpec | None:
            for source in sources:
                spec = source.get(token)
                if spec is not None:
                    return spec
            return None

        def placed(token: int, slot: tuple[str, int], mode: str | None = None) -> PlacedSymbol:
            spec = spec_of(token, new, old)
            name = spec.name if spec is not None else str(token)
            shown = mode or (spec.mode.value if spec is not None else "")
            return PlacedSymbol(token, name, shown, slot[0], slot[1])

        moved_from = {move.token: move.source for move in change.moves}
        added = []
        mode_changed = []
        for slot_change in change.changes:
            slot = (slot_change.key_id, slot_change.index)
            for spec in slot_change.subscribe:
                if spec.token not in moved_from:
                    added.append(PlacedSymbol(spec.token, spec.name, spec.mode.value, *slot))
            for token, mode in slot_change.mode_changes:
                mode_changed.append(placed(token, slot, mode.value))
        removed_tokens = set(change.removed)
        removed = [
            _removed(token, (slot_change.key_id, slot_change.index), old)
            for slot_change in change.changes
            for token in slot_change.unsubscribe
            if token in removed_tokens
        ]
        moved = []
        for move in change.moves:
            known = spec_of(move.token, new, old)
            moved.append(
                MovedSymbol(
                    move.token,
                    known.name if known is not None else str(move.token),
                    known.mode.value if known is not None else "",
                    move.source,
                    move.target,
                )
            )
        tokens = tuple(
            key.id
            for key, earlier in zip(after.keys, before.keys, strict=False)
            if key.id == earlier.id and key.credential != earlier.credential
        )
        notes = list(after.warnings) + list(warnings)
        return cls(
            config=config,
            applied=applied,
            added=tuple(added),
            removed=tuple(removed),
            moved=tuple(moved),
            mode_changed=tuple(mode_changed),
            connections=tuple(
                SlotCounts(
                    c.key_id, c.index, len(c.subscribe), len(c.unsubscribe), len(c.mode_changes)
                )
                for c in change.changes
            ),
            tokens=tokens,
            warnings=tuple(notes),
        )

    # Counts

    @property
    def subscribe_count(self) -> int:
        """Subscriptions to send, moves included."""
        return sum(c.subscribe for c in self.connections)

    @property
    def unsubscribe_count(self) -> int:
        """Unsubscriptions to send, moves included."""
        return sum(c.unsubscribe for c in self.connections)

    @property
    def mode_change_count(self) -> int:
        """Symbols that stay on their connection in another mode."""
        return sum(c.mode_changes for c in self.connections)

    @property
    def is_empty(self) -> bool:
        """Nothing to subscribe, unsubscribe or change, and no new token."""
        return not self.connections and not self.tokens

    def summary(self) -> str:
        """One line: the counts, and the keys with a new token."""
        if self.is_empty:
            return "nothing to change"
        text = (
            f"{len(self.added):,} added, {len(self.removed):,} removed, "
            f"{len(self.moved):,} moved, {len(self.mode_changed):,} mode changes "
            f"({self.subscribe_count:,} subscribes, {self.unsubscribe_count:,} unsubscribes)"
        )
        if self.tokens:
            text += f"; new access token for {', '.join(self.tokens)}"
        return text

    # The JSON form

    def as_dict(self) -> ChangeDocument:
        """The JSON form: ``distribute --format json`` prints it; the control channel carries it."""
        return {
            "config": self.config,
            "applied": self.applied,
            "subscribe": self.subscribe_count,
            "unsubscribe": self.unsubscribe_count,
            "mode_changes": self.mode_change_count,
            "added": [s.as_dict() for s in self.added],
            "removed": [s.as_dict() for s in self.removed],
            "moved": [s.as_dict() for s in self.moved],
            "mode_changed": [s.as_dict() for s in self.mode_changed],
            "connections": [c.as_dict() for c in self.connections],
            "tokens": list(self.tokens),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfigChange:
        """Read :meth:`as_dict`'s form back (the counts are derived, not read).

        Raises:
            KeyError, TypeError, ValueError: the document does not have this form.
        """
        return cls(
            config=str(data["config"]),
            applied=bool(data["applied"]),
            added=tuple(PlacedSymbol.from_dict(s) for s in data["added"]),
            removed=tuple(PlacedSymbol.from_dict(s) for s in data["removed"]),
            moved=tuple(MovedSymbol.from_dict(s) for s in data["moved"]),
            mode_changed=tuple(PlacedSymbol.from_dict(s) for s in data["mode_changed"]),
            connections=tuple(SlotCounts.from_dict(c) for c in data["connections"]),
            tokens=tuple(str(t) for t in data["tokens"]),
            warnings=tuple(str(w) for w in data["warnings"]),
        )


def _removed(token: int, slot: tuple[str, int], old: Mapping[int, SymbolSpec]) -> PlacedSymbol:
    spec = old.get(token)
    if spec is None:
        return PlacedSymbol(token, str(token), "", slot[0], slot[1])
    return PlacedSymbol(token, spec.name, spec.mode.value, slot[0], slot[1])
