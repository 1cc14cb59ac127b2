"""The config's values: what a loaded config is, as typed, immutable objects.

Pure: no I/O, and nothing here reads a file, the environment or the network. The loader
(:mod:`kitefan.loader`) builds these from a TOML file, a TOML string or a mapping; the planner, the
manager and the CLI take them as they are. Tests and library users may build them directly.

Secrets (api keys and access tokens) live only in :class:`Credential`, whose repr hides them, and
the Redis password of ``[publish]`` only in :class:`RedisURL`, shown masked; no message of this
module contains one except masked (``abcd…34``).

Owns: :class:`AppConfig`, :class:`KeyConfig`, :class:`Credential`, :class:`SymbolSpec`,
:class:`Tuning` and :data:`TUNING_HELP`, :class:`Strategy`, :class:`PublishConfig`,
:class:`RecordConfig` and :class:`RedisURL`, masking secrets (:func:`mask`), and the checks of a
value on its own (:func:`ticker_url_problems`, :func:`api_root_problems`,
:func:`parse_redis_url`). Must not import any other kitefan module but :mod:`kitefan.models`, nor
asyncio, websockets, socket, urllib's network modules, rich or typer; it loads no module that
does I/O, even indirectly (``tests/test_layers.py`` checks it in a fresh interpreter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from kitefan.models import Mode

__all__ = [
    "DEFAULT_PUBLISH_MAXLEN",
    "DEFAULT_PUBLISH_STREAM",
    "TUNING_HELP",
    "AppConfig",
    "Credential",
    "KeyConfig",
    "PublishConfig",
    "RecordConfig",
    "RedisURL",
    "Strategy",
    "SymbolSpec",
    "Tuning",
    "api_root_problems",
    "mask",
    "parse_redis_url",
    "quoted",
    "ticker_url_problems",
]


class Strategy(StrEnum):
    """How unpinned symbols are placed on keys and connections."""

    ROUND_ROBIN = "round-robin"
    LEAST_LOADED = "least-loaded"
    MANUAL = "manual"


def mask(secret: str) -> str:
    """A secret as it may be shown: its first four and last two characters (``abcd…34``)."""
    if len(secret) <= 6:
        return "…"
    return f"{secret[:4]}…{secret[-2:]}"


def ticker_url_problems(url: str) -> list[str]:
    """What makes ``url`` unusable as the ticker's URL, each with what to write instead.

    kitefan adds ``?api_key=…&access_token=…`` to the URL itself, so the URL has no query, no
    fragment and no user or password; its scheme is ``ws`` or ``wss``, it has a host, and its port,
    if any, is 1 to 65535. No problem shows the URL's query, fragment or user part (they may hold
    secrets).

    Returns:
        The problems, without a place (``port 70000 is out of range; a port is 1 to 65535``);
        empty when the URL is usable.
    """
    # Imported here, not at the top: importing the values must not load urllib (see above).
    from urllib.parse import urlsplit, urlunsplit

    before_query = url.partition("#")[0].partition("?")[0]
    shown = quoted(_USERINFO.sub("//", before_query))
    if not url.startswith(("ws://", "wss://")):
        return [f"must start with ws:// or wss://, not {shown}"]
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:
        return [f"{shown} is not a URL ({exc}); write ws://HOST:PORT or wss://HOST"]
    problems = []
    if not hostname:
        problems.append("has no host; write ws://HOST:PORT or wss://HOST")
    host_port = parts.netloc.rpartition("@")[2]
    try:
        port = parts.port
    except ValueError:
        text = host_port.rpartition("]")[2].partition(":")[2]
        problems.append(
            f"port {text} is out of range; a port is 1 to 65535"
            if text.isdigit()
            else f"port {quoted(text)} is not a number; a port is 1 to 65535"
        )
    else:
        if port == 0:
            problems.append("port 0 is out of range; a port is 1 to 65535")
    usable = quoted(urlunsplit((parts.scheme, host_port, parts.path, "", "")))
    if "@" in parts.netloc:
        problems.append(
            "must not carry a user or password (kitefan signs in with each key's api_key and "
            f"access_token): write {usable}"
        )
    if "?" in url.partition("#")[0]:
        problems.append(
            f"must not have a query (kitefan adds api_key and access_token itself): write {usable}"
        )
    if "#" in url:
        problems.append(f"must not have a fragment: write {usable}")
    return problems


_USERINFO = re.compile(r"//[^/?#]*@")


def api_root_problems(url: str) -> list[str]:
    """What makes ``url`` unusable as the Kite HTTP API root (empty when it is usable)."""
    if url.startswith(("http://", "https://")):
        return []
    return [f"must start with http:// or https://, not {quoted(url)}"]


@dataclass(frozen=True, slots=True)
class Credential:
    """An api key and its access token. Neither appears in repr, str, logs or errors."""

    api_key: str = field(repr=False)
    access_token: str = field(repr=False)

    def __str__(self) -> str:
        return f"Credential(api_key={mask(self.api_key)}, access_token={mask(self.access_token)})"


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """One ``[[keys]]`` table.

    Attributes:
        id: the key's name in plans, stats and messages (never the api key).
        credential: its api key and access token.
        pinned: the tokens pinned to this key (its ``symbols`` list), in config order.
    """

    id: str
    credential: Credential
    pinned: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One symbol to stream: its token, the name it was given by, its mode, and its pin.

    ``name`` is ``EXCHANGE:TRADINGSYMBOL`` when the instruments dump knows the token, else the
    token's decimal string. ``key`` is the id of the key it is pinned to, or ``None``.
    """

    token: int
    name: str
    mode: Mode
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Tuning:
    """Every knob the stream uses, with its documented default (see :data:`TUNING_HELP`)."""

    connect_timeout_s: float = 10.0
    liveness_timeout_s: float = 5.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.2
    auth_retry_s: float = 300.0
    subscribe_batch: int = 500
    queue_max_ticks: int = 200_000
    queue_max_bytes: int = 32 * 1024 * 1024
    failover: bool = True
    fetch_timeout_s: float = 30.0
    close_timeout_s: float = 2.0
    slot_retry_s: float = 60.0
    overflow: str = "drop-oldest"
    share_lease_s: float = 10.0


#: What each ``[tuning]`` knob does (the README documents the same).
TUNING_HELP: Mapping[str, str] = {
    "connect_timeout_s": "seconds to wait for a WebSocket handshake before retrying",
    "liveness_timeout_s": "seconds without any frame (heartbeats count) before a connection "
    "is declared dead and reconnected",
    "backoff_initial_s": "first delay before reconnecting after a network failure",
    "backoff_max_s": "longest delay between reconnect attempts (never below backoff_initial_s)",
    "backoff_factor": "how much the delay grows after each failed attempt (at least 1)",
    "backoff_jitter": "random spread added to each delay, as a fraction of it (0 to 1)",
    "auth_retry_s": "seconds between slow retries of a key whose token was refused (HTTP 403)",
    "subscribe_batch": "instrument tokens per subscribe or mode message (1 to 3000)",
    "queue_max_ticks": "bound of the unified tick stream; ticks beyond it are dropped and counted",
    "queue_max_bytes": "bound of the unified tick stream in bytes of frames (32 MiB); frames "
    "beyond it are dropped, undecoded, and their ticks counted",
    "failover": "move the symbols of a key that cannot connect to spare capacity on other keys",
    "fetch_timeout_s": "network timeout of `kitefan instruments fetch`",
    "close_timeout_s": "seconds to wait for the server's answer to a close frame",
    "slot_retry_s": "seconds between attempts to win back a connection refused with HTTP 429",
    "overflow": 'which ticks a full tick stream drops: "drop-oldest" (keep the freshest) or '
    '"drop-newest" (keep what is queued)',
    "share_lease_s": "with --share, the lease on each key in Redis: a process that dies loses "
    "its keys to the others after at most this long (at least 2.6 x close_timeout_s)",
}


@dataclass(frozen=True, slots=True)
class AppConfig:
    """A loaded, validated config.

    Attributes:
        source: the path of the file, as it was given.
        url: the ticker's WebSocket URL, without credentials (see :func:`ticker_url_problems`).
        strategy: how unpinned symbols are placed.
        mode: the mode of symbols listed without one.
        max_connections_per_key: connections each key may open (1–3).
        max_symbols_per_connection: instruments per connection (1–3000).
        keys: the keys, in config order.
        symbols: every symbol once, in config order of first appearance.
        tuning: the stream's knobs.
        instruments: the instruments dump (absolute), if configured.
        api_root: the Kite HTTP API root (``kitefan instruments fetch`` uses it).
        warnings: things worth saying that do not stop the config (duplicates, readable tokens).
        publish: where ``kitefan stream`` publishes its frames (``[publish]``), if anywhere.
        record: where ``kitefan stream`` records its frames (``[record]``), if anywhere.
        redundancy: on how many different keys each symbol streams (1, or 2: every symbol on two
            keys, merged into one tick stream; capacity halves).
    """

    source: str
    url: str
    strategy: Strategy
    mode: Mode
    max_connections_per_key: int
    max_symbols_per_connection: int
    keys: tuple[KeyConfig, ...]
    symbols: tuple[SymbolSpec, ...]
    tuning: Tuning = Tuning()
    instruments: Path | None = None
    api_root: str = "https://api.kite.trade"
    warnings: tuple[str, ...] = ()
    publish: PublishConfig | None = None
    record: RecordConfig | None = None
    redundancy: int = 1

    @property
    def capacity(self) -> int:
        """How many symbols fit on all keys at the configured limits (each ``redundancy`` times)."""
        total = len(self.keys) * self.max_connections_per_key * self.max_symbols_per_connection
        return total // self.redundancy if len(self.keys) >= self.redundancy else 0


# [publish]: the Redis stream ``kitefan stream --publish`` writes -----------------------------

#: The stream frames are published to unless ``[publish] stream`` says otherwise.
DEFAULT_PUBLISH_STREAM = "kitefan:frames"
#: About how many entries the stream keeps (``XADD MAXLEN ~``) unless ``[publish] maxlen`` says.
DEFAULT_PUBLISH_MAXLEN = 1_000_000


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A Redis server to publish to or read from: ``redis://[[user]:password@]HOST[:PORT][/DB]``.

    The password is a secret: ``str()`` and ``repr()`` show it masked (:attr:`shown`); only
    :attr:`password` holds it, for the connection.
    """

    scheme: str
    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    @property
    def shown(self) -> str:
        """The URL with its password masked: what messages, dumps and logs show."""
        auth = ""
        if self.password is not None:
            auth = f"{self.username or ''}:{mask(self.password)}@"
        elif self.username:
            auth = f"{self.username}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}/{self.db}"

    def __str__(self) -> str:
        return self.shown


@dataclass(frozen=True, slots=True)
class PublishConfig:
    """Where and how ``kitefan stream`` publishes: one ``XADD`` entry per frame.

    Attributes:
        url: the Redis server.
        stream: the stream's key.
        maxlen: about how many entries the stream keeps (``MAXLEN ~``, approximate trimming).
        format: ``"frame"`` (the frame's bytes) or ``"json"`` (the ticks as JSON records).
    """

    url: RedisURL
    stream: str = DEFAULT_PUBLISH_STREAM
    maxlen: int = DEFAULT_PUBLISH_MAXLEN
    format: str = "frame"


# [record]: the recording ``kitefan stream`` writes (``--record`` overrides it) ----------------


@dataclass(frozen=True, slots=True)
class RecordConfig:
    """Where ``kitefan stream`` records every frame and event (as ``--record PATH`` does).

    Attributes:
        path: a file (created, or appended to) or a directory (one file per trading day, IST);
            absolute, resolved against the config file's directory.
    """

    path: Path


def parse_redis_url(text: str) -> RedisURL:
    """Read ``redis://[[user]:password@]HOST[:PORT][/DB]`` (or ``rediss://`` for TLS).

    Raises:
        ValueError: what is wrong, in a message that never holds the password.
    """
    from urllib.parse import unquote, urlsplit  # not at the top: see the module's docstring

    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("redis", "rediss"):
        raise ValueError(
            "must be redis://[[user]:password@]HOST[:PORT][/DB] (or rediss:// for TLS)"
        )
    netloc, _, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
        if not colon:
            # redis://PASSWORD@HOST is how some tools write it; take it as the password.
            username, password = None, unquote(user)
    try:
        parts = urlsplit(f"redis://{hostport}")
        host = parts.hostname or ""
        port = parts.port or 6379
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    if not host:
        raise ValueError("names no host: give redis://HOST[:PORT][/DB]")
    db_text = path.split("?", 1)[0].strip("/")
    if db_text and (not db_text.isascii() or not db_text.isdigit()):
        raise ValueError(f"the database must be a number (/0, /1, ...), not /{db_text}")
    return RedisURL(scheme.lower(), host, port, int(db_text or 0), username, password)


def quoted(value: object) -> str:
    """``value`` as a message shows it: a string quoted, a bool in TOML, a table by its kind."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return "an array" if isinstance(value, list) else "a table"
    return str(value)
