"""The distributor: which symbol goes to which key and which of its connections.

Pure and deterministic: no I/O; the same input gives the same plan, symbol for symbol. Within a
connection, symbols keep the order they were given in.

How :func:`plan` places symbols:

1. With ``previous``, every symbol still wanted keeps its (key, connection) slot if that slot still
   exists, has room, and the symbol is not pinned to another key (incremental planning: an edited
   config or a failover moves only what must move).
2. Pinned symbols are placed on their key. A key that is down (``connections == 0``) has no
   slots: symbols pinned to it are placed like unpinned ones (failover), least-loaded under
   ``manual``. If a pin finds its key full of unpinned symbols kept from ``previous``, the last
   of those is moved out to make room: pins are always honoured.
3. Everything else is placed by the strategy: ``round-robin`` deals symbols to keys in order,
   then to each key's connections in turn (the key's turn passes over keys and connections that
   are full); ``least-loaded`` gives each symbol to the key with the most room, then to that key's
   connection with the most room (ties go to the earlier key, the lower connection); ``manual``
   accepts no unpinned symbol.

Pinned symbols are dealt to their key's connections in turn under every strategy but
least-loaded, so a plan frozen as pins (``kitefan distribute --dry-run --output``) and replayed
under ``manual`` gives the same connections.

With ``redundancy`` r above 1 (the config's ``redundancy = 2``), every symbol is placed r times,
each copy on a different key (the copies are what the merge, :mod:`kitefan.merge`, folds back into
one tick stream). A pin is one of the copies: steps 1 and 2 run as above for every copy, then step
3 gives each symbol its missing copies in the order given, copy by copy, never on a key that
already holds one of its copies. Under ``manual`` the missing copies go least-loaded (pins
cannot say where a second copy goes); under ``round-robin``, if dealing in turn would leave a
symbol short of a copy (uneven keys: some blocked or down), step 3 is redone least-loaded, which
places every copy whenever they fit. Capacity divides by r: a plan holds as many symbols as fit
r times on distinct keys.

Owns: ``Plan`` and its parts (with the pin-dealing order, ``KeyPlan.dealt``), ``plan()``,
``plan_config()``, ``diff()``. Must not import asyncio, websockets, rich, typer, or do any I/O;
of kitefan, only the values (``settings``), ``models`` and ``errors``.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from kitefan.errors import PlanError
from kitefan.models import Mode
from kitefan.settings import AppConfig, Strategy, SymbolSpec

__all__ = [
    "ConnectionPlan",
    "KeyCapacity",
    "KeyPlan",
    "Move",
    "Plan",
    "PlanDiff",
    "Slot",
    "SlotChange",
    "capacities",
    "diff",
    "plan",
    "plan_config",
]

#: A connection slot: (key id, connection index).
Slot = tuple[str, int]


@dataclass(frozen=True, slots=True)
class KeyCapacity:
    """A key as the planner sees it: its id and how many connections it may use now (0-3).

    0 means the key is down (``auth_failed``): its pinned symbols are placed like unpinned ones
    (failover) and nothing goes to it. ``blocked`` lists connection indices the key may not use
    now (the server refused them with HTTP 429); the others keep their indices.
    """

    key_id: str
    connections: int
    blocked: frozenset[int] = frozenset()

    @property
    def usable(self) -> int:
        """How many of its connections the key may use now."""
        return sum(1 for index in range(self.connections) if index not in self.blocked)


@dataclass(frozen=True, slots=True)
class ConnectionPlan:
    """The symbols of one connection of one key (``index`` 0, 1 or 2)."""

    index: int
    symbols: tuple[SymbolSpec, ...]


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """One key's connections, in index order; a key with nothing to stream has none.

    Only connections with symbols appear; ``index`` is the connection's slot, so indices need not
    be contiguous after incremental planning.
    """

    key_id: str
    connections: tuple[ConnectionPlan, ...]

    @property
    def symbol_count(self) -> int:
        """How many symbols this key streams."""
        return sum(len(connection.symbols) for connection in self.connections)

    def dealt(self) -> tuple[SymbolSpec, ...]:
        """The key's symbols in the order :func:`plan` deals pins to its connections.

        The first symbol of each connection, then the second of each, and so on: pinned to this
        key in this order (``kitefan distribute --dry-run --output``), they are dealt back to the
        same connections.
        """
        rows = [connection.symbols for connection in self.connections]
        longest = max(map(len, rows), default=0)
        return tuple(row[i] for i in range(longest) for row in rows if i < len(row))


@dataclass(frozen=True, slots=True)
class Plan:
    """Where every symbol goes.

    Attributes:
        strategy: the strategy it was made with.
        keys: every key, in the order given, with its connections.
        max_symbols_per_connection: the per-connection limit it was made with.
        key_capacities: the capacities it was made with (the connections each key could use).
        unplaced: symbols that did not fit (only with ``plan(..., allow_unplaced=True)``); with
            redundancy, also symbols that got fewer than ``redundancy`` copies.
        redundancy: how many keys each symbol was meant to stream on (1, or 2 for redundancy).
    """

    strategy: Strategy
    keys: tuple[KeyPlan, ...]
    max_symbols_per_connection: int
    key_capacities: tuple[KeyCapacity, ...] = ()
    unplaced: tuple[SymbolSpec, ...] = ()
    redundancy: int = 1
    _places: dict[int, tuple[Slot, ...]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        places: dict[int, tuple[Slot, ...]] = {}
        for key in self.keys:
            for connection in key.connections:
                for spec in connection.symbols:
                    places[spec.token] = (
                        *places.get(spec.token, ()),
                        (key.key_id, connection.index),
                    )
        object.__setattr__(self, "_places", places)

    def where(self, token: int) -> Slot | None:
        """The (key id, connection index) streaming ``token`` (its first place), or ``None``."""
        found = self._places.get(token)
        return found[0] if found else None

    def places(self, token: int) -> tuple[Slot, ...]:
        """Every (key id, connection index) streaming ``token``, in plan (key) order."""
        return self._places.get(token, ())

    def routes(self) -> dict[int, tuple[str, ...]]:
        """The keys of every symbol on more than one key (what :mod:`kitefan.merge` folds)."""
        return {
            token: tuple(key_id for key_id, _ in places)
            for token, places in self._places.items()
            if len(places) > 1
        }

    def slots(self) -> Iterator[tuple[str, ConnectionPlan]]:
        """Every connection with symbols, as (key id, connection), in plan order."""
        for key in self.keys:
            for connection in key.connections:
                yield key.key_id, connection

    def key(self, key_id: str) -> KeyPlan | None:
        """The plan of one key, or ``None`` if the plan has no such key."""
        return next((key for key in self.keys if key.key_id == key_id), None)

    def symbols(self) -> Iterator[SymbolSpec]:
        """Every placed symbol once, key by key and connection by connection (its first place)."""
        seen: set[int] = set()
        for _, connection in self.slots():
            for spec in connection.symbols:
                if spec.token not in seen:
                    seen.add(spec.token)
                    yield spec

    def copies(self) -> Iterator[SymbolSpec]:
        """Every placed copy: with redundancy 2, each symbol twice (what the keys subscribe)."""
        for _, connection in self.slots():
            yield from connection.symbols

    @property
    def symbol_count(self) -> int:
        """How many symbols are placed (a symbol on two keys counts once)."""
        return len(self._places)

    @property
    def connection_count(self) -> int:
        """How many connections have symbols (the connections a stream opens)."""
        return sum(len(key.connections) for key in self.keys)

    @property
    def capacity(self) -> int:
        """How many symbols fit on the capacities the plan was made with."""
        return _fits(
            [key.usable * self.max_symbols_per_connection for key in self.key_capacities],
            self.redundancy,
        )

    @property
    def spare(self) -> int:
        """How many more symbols would fit."""
        return self.capacity - self.symbol_count


class Move(NamedTuple):
    """A symbol that changes connection: unsubscribed at ``source``, subscribed at ``target``."""

    token: int
    source: Slot
    target: Slot


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
    """The smallest change from one plan to another, per connection.

    A symbol that moves is an unsubscribe at its old connection and a subscribe at its new one;
    :attr:`moves` pairs them up. Connections with nothing to do are left out.
    """

    changes: tuple[SlotChange, ...]

    @property
    def is_empty(self) -> bool:
        """True when the plans stream the same symbols, in the same modes, on the same slots."""
        return not self.changes

    @property
    def moves(self) -> tuple[Move, ...]:
        """Symbols that change connection, in the order of their new connections."""
        source = self._unsubscribed()
        return tuple(
            Move(spec.token, source[spec.token], (change.key_id, change.index))
            for change in self.changes
            for spec in change.subscribe
            if spec.token in source
        )

    @property
    def added(self) -> tuple[SymbolSpec, ...]:
        """Symbols subscribed that the old plan did not stream at all."""
        source = self._unsubscribed()
        return tuple(
            spec for change in self.changes for spec in change.subscribe if spec.token not in source
        )

    @property
    def removed(self) -> tuple[int, ...]:
        """Tokens unsubscribed that the new plan does not stream at all."""
        subscribed = {spec.token for change in self.changes for spec in change.subscribe}
        return tuple(
            token
            for change in self.changes
            for token in change.unsubscribe
            if token not in subscribed
        )

    @property
    def subscribe_count(self) -> int:
        """Subscriptions to send, moves included."""
        return sum(len(change.subscribe) for change in self.changes)

    @property
    def unsubscribe_count(self) -> int:
        """Unsubscriptions to send, moves included."""
        return sum(len(change.unsubscribe) for change in self.changes)

    @property
    def mode_change_count(self) -> int:
        """Symbols that stay on their connection in another mode."""
        return sum(len(change.mode_changes) for change in self.changes)

    def _unsubscribed(self) -> dict[int, Slot]:
        return {
            token: (change.key_id, change.index)
            for change in self.changes
            for token in change.unsubscribe
        }


# Planning ---------------------------------------------------------------------------------------


class _Slots:
    """The connection slots of the keys while a plan is being made.

    A blocked connection counts as full, so nothing is placed on it and nothing stays on it.
    """

    def __init__(self, keys: Sequence[KeyCapacity], limit: int) -> None:
        self.limit = limit
        self.order = [key.key_id for key in keys]
        self.size = {key.key_id: max(0, key.connections) for key in keys}
        self.usable = {key.key_id: key.usable for key in keys}
        self.load = {
            key.key_id: [limit if i in key.blocked else 0 for i in range(max(0, key.connections))]
            for key in keys
        }
        self.members: dict[Slot, list[int]] = {}  # slot -> positions of its symbols
        self.turn = {key.key_id: 0 for key in keys}  # each key's next connection in turn
        self.next_key = 0  # round-robin's next key

    def has(self, slot: Slot) -> bool:
        key_id, index = slot
        return 0 <= index < self.size.get(key_id, 0)

    def room(self, key_id: str) -> int:
        return self.limit * len(self.load[key_id]) - sum(self.load[key_id])

    def put(self, position: int, slot: Slot) -> None:
        self.load[slot[0]][slot[1]] += 1
        self.members.setdefault(slot, []).append(position)

    def take(self, position: int, slot: Slot) -> None:
        self.load[slot[0]][slot[1]] -= 1
        self.members[slot].remove(position)

    def in_turn(self, key_id: str) -> int | None:
        """The key's next connection with room, in turn; ``None`` if the key is full."""
        size, load = self.size[key_id], self.load[key_id]
        for step in range(size):
            index = (self.turn[key_id] + step) % size
            if load[index] < self.limit:
                self.turn[key_id] = (index + 1) % size
                return index
        return None

    def emptiest(self, key_id: str) -> int | None:
        """The key's connection with the most room (the lowest on ties); ``None`` if full."""
        load = self.load[key_id]
        if not load or min(load) >= self.limit:
            return None
        return load.index(min(load))

    def deal(self, exclude: Collection[str] = ()) -> Slot | None:
        """Round-robin: the next key in turn with room (not in ``exclude``), and its next
        connection in turn."""
        count = len(self.order)
        for step in range(count):
            key_id = self.order[(self.next_key + step) % count]
            if key_id in exclude:
                continue
            index = self.in_turn(key_id)
            if index is not None:
                self.next_key = (self.next_key + step + 1) % count
                return key_id, index
        return None

    def least_loaded(self, exclude: Collection[str] = ()) -> Slot | None:
        """The key with the most room (the earliest on ties, not in ``exclude``), and its
        emptiest connection."""
        best, best_room = None, 0
        for key_id in self.order:
            if key_id in exclude:
                continue
            room = self.room(key_id)
            if room > best_room:
                best, best_room = key_id, room
        if best is None:
            return None
        index = self.emptiest(best)
        return None if index is None else (best, index)


def plan(
    symbols: Sequence[SymbolSpec],
    keys: Sequence[KeyCapacity],
    *,
    strategy: Strategy,
    max_symbols_per_connection: int,
    previous: Plan | None = None,
    allow_unplaced: bool = False,
    redundancy: int = 1,
) -> Plan:
    """Place every symbol on a key and one of its connections (on ``redundancy`` keys).

    Args:
        symbols: what to stream, each token once; ``SymbolSpec.key`` pins a symbol to a key.
        keys: the keys in config order, with the connections each may use now (0 = down).
        strategy: how unpinned symbols are placed.
        max_symbols_per_connection: the per-connection limit (Kite's is 3000).
        previous: a plan to stay close to: symbols keep their slots where they still can.
        allow_unplaced: put what does not fit in ``Plan.unplaced`` instead of raising (for a
            failover that has less room than the symbols need).
        redundancy: on how many different keys each symbol streams (1 or more).

    Returns:
        The plan; the same arguments always give the same plan.

    Raises:
        PlanError: a token given twice, a pin to a key not in ``keys``, unpinned symbols under
            ``manual`` (without redundancy), more symbols pinned to a key than it holds, fewer
            live keys than ``redundancy``, or more symbols than all keys hold (with the numbers
            asked and fitting, and what to do).
        ValueError: ``max_symbols_per_connection`` or ``redundancy`` below 1, or a key id given
            twice.
    """
    if max_symbols_per_connection < 1:
        raise ValueError("max_symbols_per_connection must be at least 1")
    if redundancy < 1:
        raise ValueError("redundancy must be at least 1")
    slots = _Slots(keys, max_symbols_per_connection)
    if len(slots.size) != len(keys):
        raise ValueError("each key id may appear once in keys")
    _check(symbols, slots, strategy, allow_unplaced, redundancy)

    where: dict[int, list[Slot]] = {p: [] for p in range(len(symbols))}  # position -> slots
    pinned = [
        spec.key if spec.key is not None and slots.usable.get(spec.key, 0) > 0 else None
        for spec in symbols
    ]
    # 1. Keep previous slots (every copy that still can, each on its own key).
    if previous is not None:
        for position, spec in enumerate(symbols):
            for slot in previous.places(spec.token):
                held = where[position]
                if (
                    len(held) < redundancy
                    and slots.has(slot)
                    and all(slot[0] != other[0] for other in held)
                    and (pinned[position] is None or redundancy > 1 or pinned[position] == slot[0])
                    and slots.load[slot[0]][slot[1]] < slots.limit
                ):
                    held.append(slot)
                    slots.put(position, slot)
        if redundancy > 1:
            _keep_pins(slots, symbols, pinned, where, redundancy)
    # 2. Pins.
    unplaced: list[int] = []
    for position, key_id in enumerate(pinned):
        if key_id is None or any(slot[0] == key_id for slot in where[position]):
            continue
        if strategy is Strategy.LEAST_LOADED:
            index = slots.emptiest(key_id)
        else:
            index = slots.in_turn(key_id)
        if index is None:
            index = _make_room(slots, key_id, pinned, where)
        if index is None:
            unplaced.append(position)
            continue
        where[position].append((key_id, index))
        slots.put(position, (key_id, index))
    # 3. Everything else, taken-off symbols and missing copies included, in the order given.
    before = (copy.deepcopy(slots), copy.deepcopy(where)) if redundancy > 1 else None
    missing = _fill(
        slots, where, set(unplaced), redundancy, strategy is Strategy.ROUND_ROBIN, pinned
    )
    if missing and before is not None and strategy is Strategy.ROUND_ROBIN:
        # Dealing in turn can strand a copy on uneven keys; the most room first cannot.
        slots, where = before
        missing = _fill(slots, where, set(unplaced), redundancy, False, pinned)
    unplaced += missing
    if unplaced and not allow_unplaced:
        # Capacity was checked; only uneven keys (some full, some down) get here.
        raise PlanError(
            f"{_count(len(unplaced), 'symbol')} cannot get {redundancy} copies on different keys "
            f"({_describe(slots)})",
            asked=len(symbols),
            fits=len(symbols) - len(unplaced),
            hint=_advice(slots, len(unplaced)),
        )
    return Plan(
        strategy=strategy,
        keys=tuple(
            KeyPlan(
                key_id,
                tuple(
                    ConnectionPlan(index, tuple(symbols[p] for p in sorted(members)))
                    for index in range(slots.size[key_id])
                    if (members := slots.members.get((key_id, index)))
                ),
            )
            for key_id in slots.order
        ),
        max_symbols_per_connection=max_symbols_per_connection,
        key_capacities=tuple(keys),
        unplaced=tuple(symbols[p] for p in sorted(set(unplaced))),
        redundancy=redundancy,
    )


def _fill(
    slots: _Slots,
    where: dict[int, list[Slot]],
    failed: set[int],
    redundancy: int,
    in_turn: bool,
    pinned: Sequence[str | None],
) -> list[int]:
    """Step 3: give every position its missing copies, in order: first those that hold a copy
    already (a pin or a kept slot: their other copies must avoid that key), then the rest.
    Returns those left short."""
    short = []
    started = [p for p, held in where.items() if held]
    for position in [*started, *(p for p, held in where.items() if not held)]:
        held = where[position]
        if position in failed:
            continue
        while len(held) < redundancy:
            taken = {place[0] for place in held}
            found = slots.deal(taken) if in_turn else slots.least_loaded(taken)
            if found is None:
                found = _reroute(slots, where, pinned, position)
            if found is None:
                short.append(position)
                break
            held.append(found)
            slots.put(position, found)
    return short


def _reroute(
    slots: _Slots, where: dict[int, list[Slot]], pinned: Sequence[str | None], position: int
) -> Slot | None:
    """Room for one more copy of ``position`` where every key it lacks is full: a chain of
    moves (an augmenting path, found breadth first over the keys) in which each moved copy goes
    to a key its symbol does not hold, and the last to a key with room. A copy on its symbol's
    pin does not move. Returns the slot freed for ``position`` (the moves made), or ``None`` if
    no chain exists: then no placement gives it the copy."""
    held = {slot[0] for slot in where[position]}
    parent: dict[str, tuple[str, int, Slot] | None] = {}  # key -> (from key, mover, its slot)
    queue: list[str] = []
    for key_id in slots.order:
        if key_id not in held and slots.usable.get(key_id, 0) > 0:
            parent[key_id] = None
            queue.append(key_id)
    end = None
    for key_id in queue:  # grows while it is read: breadth first
        if slots.room(key_id) > 0:
            end = key_id
            break
        for index in range(slots.size[key_id]):
            for mover in slots.members.get((key_id, index), []):
                if pinned[mover] == key_id:
                    continue
                for other in slots.order:
                    if other in parent or slots.usable.get(other, 0) <= 0:
                        continue
                    if any(slot[0] == other for slot in where[mover]):
                        continue
                    parent[other] = (key_id, mover, (key_id, index))
                    queue.append(other)
    if end is None:
        return None
    # Walk back from the key with room: each mover takes the slot its follower frees.
    index_free = slots.emptiest(end)
    if index_free is None:  # pragma: no cover - room() said there is room
        return None
    target: Slot = (end, index_free)
    step = parent[end]
    while step is not None:
        source_key, mover, slot = step
        slots.take(mover, slot)
        where[mover][where[mover].index(slot)] = target
        slots.put(mover, target)
        target = slot
        step = parent[source_key]
    return target


def _keep_pins(
    slots: _Slots,
    symbols: Sequence[SymbolSpec],
    pinned: Sequence[str | None],
    where: dict[int, list[Slot]],
    redundancy: int,
) -> None:
    """With redundancy: a pinned symbol that kept all its copies elsewhere gives one up for its
    pin (step 2 then places it on its key)."""
    for position, key_id in enumerate(pinned):
        held = where[position]
        if key_id is None or len(held) < redundancy or any(s[0] == key_id for s in held):
            continue
        slot = held.pop()
        slots.take(position, slot)


def _make_room(
    slots: _Slots, key_id: str, pinned: Sequence[str | None], where: dict[int, list[Slot]]
) -> int | None:
    """Take the last unpinned symbol kept on a full key off it (step 3 places it again).

    Returns the connection it freed, or ``None`` if the key holds only pinned symbols.
    """
    candidates = [
        (position, index)
        for index in range(slots.size[key_id])
        for position in slots.members.get((key_id, index), ())
        if pinned[position] != key_id
    ]
    if not candidates:
        return None
    position, index = max(candidates)
    slots.take(position, (key_id, index))
    where[position].remove((key_id, index))
    return index


def _check(
    symbols: Sequence[SymbolSpec],
    slots: _Slots,
    strategy: Strategy,
    allow_unplaced: bool,
    redundancy: int,
) -> None:
    seen: set[int] = set()
    for spec in symbols:
        if spec.token in seen:
            raise PlanError(f"{spec.name} ({spec.token}) is given twice; list each symbol once")
        seen.add(spec.token)
        if spec.key is not None and spec.key not in slots.size:
            raise PlanError(f'{spec.name} is pinned to key "{spec.key}", which is not configured')
    if strategy is Strategy.MANUAL and redundancy == 1:
        loose = [spec.name for spec in symbols if spec.key is None]
        if loose:
            shown = ", ".join(loose[:3]) + (f" and {len(loose) - 3} more" if len(loose) > 3 else "")
            raise PlanError(
                f'strategy "manual" places only pinned symbols; not pinned: {shown}',
                hint='pin them in a [[keys]] table\'s symbols, or use strategy "round-robin"',
            )
    if allow_unplaced:
        return
    limit = slots.limit
    pins = Counter(spec.key for spec in symbols if spec.key is not None)
    for key_id in slots.order:
        size = slots.usable[key_id]
        count = pins[key_id] if size else 0
        if count > size * limit:
            raise PlanError(
                f'{count} symbols are pinned to key "{key_id}", which holds {size * limit} '
                f"({_count(size, 'connection')} × {limit})",
                asked=count,
                fits=size * limit,
                hint=f"pin {count - size * limit} of them to another key",
            )
    live = sum(1 for size in slots.usable.values() if size)
    if redundancy > 1 and live < redundancy and symbols:
        raise PlanError(
            f"redundancy = {redundancy} needs {redundancy} keys that can connect, "
            f"{'only ' if live else ''}{live} can",
            asked=len(symbols),
            fits=0,
            hint=f"add {_count(redundancy - live, 'key')} or set redundancy = 1",
        )
    capacity = _fits([slots.usable[key_id] * limit for key_id in slots.order], redundancy)
    if len(symbols) > capacity:
        copies = f" × {redundancy} copies (redundancy = {redundancy})" if redundancy > 1 else ""
        raise PlanError(
            f"over capacity: {len(symbols)} symbols{copies} asked, {capacity} fit "
            f"({_describe(slots)}{f' ÷ {redundancy}' if redundancy > 1 else ''})",
            asked=len(symbols),
            fits=capacity,
            hint=_advice(slots, len(symbols) - capacity),
        )


def _fits(capacities: Sequence[int], redundancy: int) -> int:
    """The most symbols that fit ``redundancy`` times on keys of these capacities, each copy on
    another key: the largest n with n × redundancy <= sum(min(capacity, n)). Without redundancy,
    the sum of the capacities."""
    if redundancy <= 1:
        return sum(capacities)
    low, high = 0, sum(capacities) // redundancy
    while low < high:
        middle = (low + high + 1) // 2
        if sum(min(c, middle) for c in capacities) >= middle * redundancy:
            low = middle
        else:
            high = middle - 1
    return low


def _describe(slots: _Slots) -> str:
    live = [key_id for key_id in slots.order if slots.usable[key_id]]
    sizes = {slots.usable[key_id] for key_id in live}
    keys = _count(len(live), "key")
    if len(sizes) == 1:
        (size,) = sizes
        return f"{keys} × {_count(size, 'connection')} × {slots.limit}"
    connections = sum(slots.usable[key_id] for key_id in live)
    return f"{_count(connections, 'connection')} × {slots.limit} on {keys}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _advice(slots: _Slots, excess: int) -> str:
    steps = [f"drop {_count(excess, 'symbol')}", "add a key"]
    if any(0 < size < 3 for size in slots.usable.values()):
        steps.append("raise max_connections_per_key (up to 3)")
    if slots.limit < 3000:
        steps.append("raise max_symbols_per_connection (up to 3000)")
    return ", ".join(steps[:-1]) + f" or {steps[-1]}"


def capacities(config: AppConfig) -> tuple[KeyCapacity, ...]:
    """Every key of ``config`` at its configured number of connections."""
    return tuple(KeyCapacity(key.id, config.max_connections_per_key) for key in config.keys)


def plan_config(config: AppConfig) -> Plan:
    """The from-scratch plan of a config: its symbols on all its keys at full capacity.

    This is the "home" plan a stream starts from; failover re-plans against it with
    ``plan(..., previous=home)`` and reduced capacities.

    Raises:
        PlanError: as :func:`plan`.
    """
    return plan(
        config.symbols,
        capacities(config),
        strategy=config.strategy,
        max_symbols_per_connection=config.max_symbols_per_connection,
        redundancy=config.redundancy,
    )


# Diffing ----------------------------------------------------------------------------------------


def diff(old: Plan, new: Plan) -> PlanDiff:
    """The smallest change from ``old`` to ``new``, connection by connection.

    For each (key, connection): ``subscribe`` lists the symbols new there (in the new plan's
    order), ``unsubscribe`` the tokens no longer there (in the old plan's order), and
    ``mode_changes`` the tokens that stay there in another mode, with their new mode. Connections
    come in the new plan's key order (then keys only the old plan has), by index.
    """
    old_slots = _by_slot(old)
    new_slots = _by_slot(new)
    order: list[str] = []
    for key in (*new.keys, *old.keys):
        if key.key_id not in order:
            order.append(key.key_id)
    changes: list[SlotChange] = []
    for key_id in order:
        indices = sorted(
            {i for k, i in old_slots if k == key_id} | {i for k, i in new_slots if k == key_id}
        )
        for index in indices:
            before = old_slots.get((key_id, index), {})
            after = new_slots.get((key_id, index), {})
            change = SlotChange(
                key_id,
                index,
                subscribe=tuple(spec for token, spec in after.items() if token not in before),
                unsubscribe=tuple(token for token in before if token not in after),
                mode_changes=tuple(
                    (token, spec.mode)
                    for token, spec in after.items()
                    if token in before and before[token].mode is not spec.mode
                ),
            )
            if change.subscribe or change.unsubscribe or change.mode_changes:
                changes.append(change)
    return PlanDiff(tuple(changes))


def _by_slot(plan: Plan) -> Mapping[Slot, dict[int, SymbolSpec]]:
    return {
        (key_id, connection.index): {spec.token: spec for spec in connection.symbols}
        for key_id, connection in plan.slots()
    }
