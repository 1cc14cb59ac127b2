"""The feed's health and failover, sans-I/O: what each key's refusals and recoveries do to the plan.

:class:`FeedHealth` keeps, for every key, whether its token is refused (HTTP 403), which of its
connection slots another program holds (HTTP 429), which connection keeps probing a refused key,
and whether the key ever connected; and the symbols the feed wants, where they go when every key
is healthy (the *home* plan) and where they go now (the *current* plan). From that it computes
each key's capacity and plans with ``planner.plan(..., previous=home)``, so that only what must
move moves, and back home once the key recovers.

It is told what happened (:meth:`FeedHealth.refused`, :meth:`FeedHealth.opened`,
:meth:`FeedHealth.want`, :meth:`FeedHealth.reconfigure`, :meth:`FeedHealth.give_up`) and answers
with typed actions for its driver (:class:`kitefan.manager.FeedManager`) to carry out, in order:

* :class:`Announce`: hand a status event to the event streams;
* :class:`ApplyPlan`: the plan is now ``plan``; subscribe and unsubscribe ``change`` on the
  connections (the current plan already is ``plan`` when the action is returned);
* :class:`EndFeed`: end every stream with ``error`` (every key refused before any connected,
  or no connection opened within the connect deadline).

The connect deadline is decided here too: :meth:`FeedHealth.connection_wanted` says when the
driver must arm its one timer (the first time a connection is wanted, if none ever opened), and
:meth:`FeedHealth.deadline_passed`, called when it fires, answers :class:`EndFeed` with an
:class:`~kitefan.errors.UnreachableError` naming the last attempt
(:meth:`FeedHealth.attempt_ended`) unless a connection opened or the feed ended meanwhile.

It owns no socket, task or timer, and reads no clock of its own: the wall clock that stamps the
status events is injected, and the deadline's delay is handed to the driver's timer, so a test
runs a failover in microseconds and checks every event.

Owns: ``FeedHealth``, ``KeyHealth``, ``Announce``, ``ApplyPlan``, ``EndFeed``. Must not import
asyncio, websockets, the connection, the manager, rich or typer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kitefan.errors import KitefanError, NoUsableKeyError, PlanError, UnreachableError
from kitefan.events import Status, StatusEvent
from kitefan.models import OrderUpdate
from kitefan.planner import KeyCapacity, Plan, PlanDiff, diff, plan
from kitefan.retry import Refusal
from kitefan.settings import AppConfig, KeyConfig, SymbolSpec

__all__ = ["Action", "Announce", "ApplyPlan", "EndFeed", "FeedHealth", "KeyHealth"]

_SEEN_ORDERS = 4096


@dataclass(frozen=True, slots=True)
class Announce:
    """Hand this status event to the event streams."""

    event: StatusEvent


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    """The feed now streams ``plan``: apply ``change`` (from the plan before) to the sessions."""

    plan: Plan
    change: PlanDiff


@dataclass(frozen=True, slots=True)
class EndFeed:
    """End every event stream with ``error``."""

    error: KitefanError


Action = Announce | ApplyPlan | EndFeed


class KeyHealth:
    """What the feed knows of one key while it runs."""

    def __init__(self, config: KeyConfig, max_connections: int) -> None:
        self.config = config
        self.max_connections = max_connections
        self.auth_failed = False
        self.ever_connected = False
        self.blocked_slots: set[int] = set()
        #: The connection that keeps trying a refused key (with failover on), kept while empty.
        self.probe_index: int | None = None
        self.message = ""
        self.orders = 0
        self._seen: set[object] = set()
        self._seen_order: deque[object] = deque()

    def __repr__(self) -> str:
        return (
            f"KeyHealth({self.config.id}, auth_failed={self.auth_failed}, "
            f"blocked={sorted(self.blocked_slots)}, probe={self.probe_index})"
        )

    def first_delivery(self, update: OrderUpdate) -> bool:
        """Whether this order update is new for the key (every connection of a key gets each)."""
        key = update.dedup_key
        if key in self._seen:
            return False
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > _SEEN_ORDERS:
            self._seen.discard(self._seen_order.popleft())
        self.orders += 1
        return True


class FeedHealth:
    """Every key's health, the symbols wanted, and the plans they make.

    Args:
        config: the keys, symbols, strategy and limits.
        failover: whether a refused key's symbols move to the healthy keys (``tuning.failover``).
        token_advice: what a refused key's status says to do.
        clock: the wall clock (``time.time``) that stamps the status events.
        connect_deadline_s: the feed ends with :class:`~kitefan.errors.UnreachableError` when
            no connection opened this long after one was first wanted (``None``: never).

    Raises:
        PlanError: the config's symbols cannot be placed (raised by the constructor).
    """

    def __init__(
        self,
        config: AppConfig,
        *,
        failover: bool,
        token_advice: str,
        clock: Callable[[], float],
        connect_deadline_s: float | None = None,
    ) -> None:
        self.config = config
        self.failover = failover
        self._token_advice = token_advice
        self._clock = clock
        self.keys: dict[str, KeyHealth] = {
            k.id: KeyHealth(k, config.max_connections_per_key) for k in config.keys
        }
        self.symbols: dict[int, SymbolSpec] = {s.token: s for s in config.symbols}
        self.home = self._plan(list(self.symbols.values()), self.full_capacities(), None)
        self.current = self.home
        #: The error the feed ended with (:class:`EndFeed`, or :meth:`give_up`), once it has.
        self.failure: KitefanError | None = None
        #: The keys this process streams (``FeedManager.hold_keys``, for ``--share``); ``None``:
        #: every key. While set, every key plans at full capacity: the processes sharing a
        #: config all plan it alike, and failover moves nothing between keys.
        self.held: frozenset[str] | None = None
        self.connect_deadline_s = connect_deadline_s
        self._deadline_armed = False
        #: Why the last attempt failed, as its status said (for :class:`UnreachableError`).
        self.last_attempt = ""

    # Questions

    def ever_connected(self) -> bool:
        """Whether any connection of any key has opened."""
        return any(k.ever_connected for k in self.keys.values())

    def holds(self, key_id: str) -> bool:
        """Whether this process streams the key (see :attr:`held`)."""
        return self.held is None or key_id in self.held

    def keeps(self, key_id: str, index: int) -> bool:
        """Whether an empty connection stays up: it probes a refused key, or tries to win a
        slot back."""
        key = self.keys[key_id]
        return key.probe_index == index or index in key.blocked_slots

    def full_capacities(self, config: AppConfig | None = None) -> list[KeyCapacity]:
        """Every key's capacity with every key healthy."""
        config = config or self.config
        return [KeyCapacity(k.id, config.max_connections_per_key) for k in config.keys]

    def capacities(self, config: AppConfig | None = None) -> list[KeyCapacity]:
        """Every key's capacity now: none for a refused key (with failover), and none of the
        slots another program holds; every key's full capacity while keys are :attr:`held`."""
        config = config or self.config
        if self.held is not None:
            return self.full_capacities(config)
        out = []
        for key_config in config.keys:
            key = self.keys[key_config.id]
            if key.auth_failed and self.failover:
                out.append(KeyCapacity(key_config.id, 0))
            else:
                out.append(
                    KeyCapacity(
                        key_config.id,
                        config.max_connections_per_key,
                        blocked=frozenset(key.blocked_slots),
                    )
                )
        return out

    def preview(self, config: AppConfig) -> PlanDiff:
        """What :meth:`reconfigure` would change, without changing anything."""
        home = self._plan(config.symbols, self.full_capacities(config), self.home, config)
        target = self._plan(config.symbols, self.capacities(config), home, config)
        return diff(self.current, target)

    # What happened

    def want(self, symbols: dict[int, SymbolSpec]) -> list[Action]:
        """The feed now wants these symbols (subscribe, unsubscribe, set_mode).

        Raises:
            PlanError: they cannot be placed even with every key healthy (nothing changed).
        """
        home = self._plan(list(symbols.values()), self.full_capacities(), self.home)
        self.symbols = symbols
        self.home = home
        return self.replan()

    def reconfigure(self, config: AppConfig) -> list[Action]:
        """An edited config of the same keys: its symbols, and the keys' fresh credentials.

        Raises:
            PlanError: its symbols cannot be placed (nothing changed).
        """
        home = self._plan(config.symbols, self.full_capacities(config), self.home, config)
        for key_config in config.keys:
            self.keys[key_config.id].config = key_config
        self.config = config
        self.symbols = {s.token: s for s in config.symbols}
        self.home = home
        return self.replan()

    def refused(self, key_id: str, index: int, refusal: Refusal, status: int) -> list[Action]:
        """A connection of the key was refused at the handshake (403 or 429)."""
        key = self.keys[key_id]
        actions: list[Action] = []
        if refusal is Refusal.AUTH:
            if key.auth_failed:
                return actions
            key.auth_failed = True
            key.message = (
                f"refused with HTTP {status}: the access token is invalid or expired; "
                f"{self._token_advice}"
            )
            actions.append(self._announce(key_id, None, Status.AUTH_FAILED, key.message))
            if self.failover:
                key.probe_index = index
            # Every key refused before any streamed: the feed ends, with no re-plan to report.
            keys = self.keys.values()
            if all(k.auth_failed for k in keys) and not self.ever_connected():
                actions.extend(
                    self.give_up(
                        NoUsableKeyError(
                            "every key was refused with HTTP 403: their access tokens are "
                            "invalid or expired; put fresh tokens in the config"
                        )
                    )
                )
            if self.failover and self.failure is None:
                actions.extend(self.replan())
        elif refusal is Refusal.SLOTS:
            if index in key.blocked_slots:
                return actions
            key.blocked_slots.add(index)
            usable = key.max_connections - len(key.blocked_slots)
            key.message = (
                f"refused a connection with HTTP {status}: another program holds this key's "
                f"connections; using {usable} of {key.max_connections}"
            )
            actions.append(self._announce(key_id, index, Status.SLOT_LIMITED, key.message))
            actions.extend(self.replan())
        return actions

    def opened(self, key_id: str, index: int) -> list[Action]:
        """A connection of the key opened: a refused token or a held slot is back."""
        key = self.keys[key_id]
        key.ever_connected = True
        actions: list[Action] = []
        if key.auth_failed:
            key.auth_failed = False
            key.probe_index = None
            key.message = "token accepted again"
            actions.append(self._announce(key_id, None, Status.CONNECTED, key.message))
        if index in key.blocked_slots:
            key.blocked_slots.discard(index)
            key.message = f"connection {index} slot won back"
            actions.append(self._announce(key_id, index, Status.CONNECTED, key.message))
        if actions:
            actions.extend(self.replan())
        return actions

    def attempt_ended(self, description: str) -> None:
        """A connection attempt failed or a socket was lost; ``description`` says which and why
        (``alpha#0 reconnecting: ...``), for the connect deadline's error."""
        self.last_attempt = description

    def connection_wanted(self) -> float | None:
        """A connection is wanted: the seconds after which the driver calls
        :meth:`deadline_passed` (arm a timer), or ``None`` (no deadline, it is already armed,
        a connection has opened, or the feed has ended)."""
        if (
            self.connect_deadline_s is None
            or self._deadline_armed
            or self.failure is not None
            or self.ever_connected()
        ):
            return None
        self._deadline_armed = True
        return self.connect_deadline_s

    def deadline_passed(self) -> list[Action]:
        """The connect deadline's timer fired: end the feed, unless a connection has opened
        (or the feed has ended) meanwhile."""
        if (
            not self._deadline_armed
            or self.connect_deadline_s is None
            or self.failure is not None
            or self.ever_connected()
        ):
            return []
        error = UnreachableError(self.connect_deadline_s, self.config.url, self.last_attempt)
        return self.give_up(error)

    def give_up(self, error: KitefanError) -> list[Action]:
        """The feed ends with ``error`` (the first given stays); no re-plan follows a refusal."""
        if self.failure is None:
            self.failure = error
        return [EndFeed(error)]

    def replan(self) -> list[Action]:
        """Plan the wanted symbols on the capacities now, starting from home."""
        try:
            target = self._plan(list(self.symbols.values()), self.capacities(), self.home)
        except PlanError as exc:
            message = f"cannot re-plan around the failed keys: {exc}"
            if all(k.auth_failed for k in self.keys.values()):
                message = (
                    "every key is refused with HTTP 403: nothing streams until a fresh token "
                    f"is accepted; {self._token_advice}"
                )
            return [self._announce("*", None, Status.REPLAN_FAILED, message)]
        return [self.move_to(target)]

    def move_to(self, target: Plan) -> ApplyPlan:
        """Make ``target`` the current plan."""
        change = diff(self.current, target)
        self.current = target
        return ApplyPlan(target, change)

    # Internals

    def _announce(self, key: str, connection: int | None, state: Status, message: str) -> Announce:
        return Announce(StatusEvent(key, connection, state, message, self._clock()))

    def _plan(
        self,
        symbols: Sequence[SymbolSpec] | Iterable[SymbolSpec],
        capacities: Sequence[KeyCapacity],
        previous: Plan | None,
        config: AppConfig | None = None,
    ) -> Plan:
        config = config or self.config
        return plan(
            list(symbols),
            capacities,
            strategy=config.strategy,
            max_symbols_per_connection=config.max_symbols_per_connection,
            previous=previous,
            redundancy=config.redundancy,
        )
