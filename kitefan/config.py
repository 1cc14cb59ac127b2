"""The kitefan config: a TOML file read into typed, immutable objects.

``load_config`` reads the file with stdlib ``tomllib``, expands ``${VAR}`` from the environment,
resolves every symbol (tokens, ``EXCHANGE:TRADINGSYMBOL`` names, watchlist files, ``[[select]]``
filters over the instruments dump) to an instrument token with its mode and pin, and validates
everything, reporting every problem at once, each with its place (``keys[1].api_key: missing``).
Relative paths in a config resolve against the directory of the config file.

Secrets (api keys and access tokens) live only in :class:`Credential`, whose repr hides them, and
the Redis password of ``[publish]`` only in :class:`RedisURL`, shown masked; no message, warning or
dump of this module contains one except masked (``abcd…34``).

Owns: the config types, finding, loading and validating the file, checking the symbols and modes
given to a running feed (``spec_of``, ``parse_token``, ``parse_mode``), the starter config, the
masked dump, masking secrets, the ``[publish]`` table and Redis URLs. Must not import rich, typer,
asyncio or websockets.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import tomli_w

from kitefan.errors import ConfigError, InstrumentsError, SymbolError
from kitefan.instruments import InstrumentFilter, InstrumentIndex, load_instruments
from kitefan.models import MODE_RANK, Mode

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "DEFAULT_PUBLISH_MAXLEN",
    "DEFAULT_PUBLISH_STREAM",
    "TUNING_HELP",
    "AppConfig",
    "Credential",
    "KeyConfig",
    "PublishConfig",
    "RedisURL",
    "Strategy",
    "SymbolSpec",
    "Tuning",
    "demo_config_path",
    "dump_config",
    "find_config_path",
    "load_config",
    "mask",
    "needs_instruments",
    "parse_mode",
    "parse_redis_url",
    "parse_token",
    "select_symbols",
    "spec_of",
    "starter_config",
    "ticker_url_problems",
    "write_starter_config",
]

#: The config file looked for in the current directory.
DEFAULT_CONFIG_NAME = "kitefan.toml"
#: The environment variable naming a config file, used when the current directory has none.
CONFIG_ENV = "KITEFAN_CONFIG"


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
    before_query = url.partition("#")[0].partition("?")[0]
    shown = _quoted(_USERINFO.sub("//", before_query))
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
            else f"port {_quoted(text)} is not a number; a port is 1 to 65535"
        )
    else:
        if port == 0:
            problems.append("port 0 is out of range; a port is 1 to 65535")
    usable = _quoted(urlunsplit((parts.scheme, host_port, parts.path, "", "")))
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


def _api_root_problems(url: str) -> list[str]:
    if url.startswith(("http://", "https://")):
        return []
    return [f"must start with http:// or https://, not {_quoted(url)}"]


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

# (minimum, maximum, minimum is exclusive) for each numeric knob.
_TUNING_RANGES: Mapping[str, tuple[float, float, bool]] = {
    "backoff_factor": (1.0, math.inf, False),
    "backoff_jitter": (0.0, 1.0, False),
    "subscribe_batch": (1, 3000, False),
    "queue_max_ticks": (1, math.inf, False),
    "queue_max_bytes": (1, math.inf, False),
}
_POSITIVE = (0.0, math.inf, True)
# The accepted values of each text knob.
_TUNING_CHOICES: Mapping[str, tuple[str, ...]] = {"overflow": ("drop-oldest", "drop-newest")}


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

    @property
    def capacity(self) -> int:
        """How many symbols fit on all keys at the configured limits."""
        return len(self.keys) * self.max_connections_per_key * self.max_symbols_per_connection


# [publish]: the Redis stream ``kitefan stream --publish`` writes -----------------------------

#: The stream frames are published to unless ``[publish] stream`` says otherwise.
DEFAULT_PUBLISH_STREAM = "kitefan:frames"
#: About how many entries the stream keeps (``XADD MAXLEN ~``) unless ``[publish] maxlen`` says.
DEFAULT_PUBLISH_MAXLEN = 1_000_000
_PUBLISH_KEYS = ("url", "stream", "maxlen", "format")
_PUBLISH_FORMATS = ("frame", "json")


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


def parse_redis_url(text: str) -> RedisURL:
    """Read ``redis://[[user]:password@]HOST[:PORT][/DB]`` (or ``rediss://`` for TLS).

    Raises:
        ValueError: what is wrong, in a message that never holds the password.
    """
    from urllib.parse import unquote, urlsplit

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


def demo_config_path() -> Path:
    """The bundled demo config (used by ``--demo``)."""
    packaged = Path(__file__).parent / "configs" / "demo.toml"
    if packaged.exists():
        return packaged
    return Path(__file__).parent.parent / "configs" / "demo.toml"


def find_config_path(
    explicit: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path:
    """The config file to use: ``explicit``, else ``./kitefan.toml``, else ``$KITEFAN_CONFIG``.

    Args:
        explicit: a path given on the command line (returned as is, even if missing, so that
            loading it names the missing file).
        environ: the environment (default: ``os.environ``).
        cwd: the directory to look in (default: the current directory).

    Returns:
        The path of the config file.

    Raises:
        ConfigError: none was given and none was found.
    """
    if explicit is not None:
        return explicit
    here = (Path.cwd() if cwd is None else cwd) / DEFAULT_CONFIG_NAME
    if here.is_file():
        return here if cwd is not None else Path(DEFAULT_CONFIG_NAME)
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    raise ConfigError(
        "no config",
        [
            f"pass --config PATH, create {DEFAULT_CONFIG_NAME} with `kitefan init`, "
            f"or set {CONFIG_ENV}"
        ],
    )


# Loading ----------------------------------------------------------------------------------------

_TOP_KEYS = (
    "url",
    "strategy",
    "mode",
    "max_connections_per_key",
    "max_symbols_per_connection",
    "instruments",
    "api_root",
    "keys",
    "symbols",
    "select",
    "tuning",
    "publish",
)
_KEY_KEYS = ("id", "api_key", "access_token", "access_token_file", "symbols")
_SYMBOLS_KEYS = ("quote", "full", "ltp", "files")
_SELECT_FILTERS = ("exchange", "segment", "name", "instrument_type", "expiry")
_SELECT_KEYS = (*_SELECT_FILTERS, "mode")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOML_PLACE = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")
_MAX_TOKEN = 0xFFFFFFFF
_MAX_DUPLICATE_WARNINGS = 5
_MODES = frozenset(mode.value for mode in Mode)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DECIMAL = re.compile(r"[0-9]+")


def load_config(
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    today: date | None = None,
    with_symbols: bool = True,
) -> AppConfig:
    """Read and validate a config file.

    Args:
        path: the TOML file. Relative paths inside it resolve against its directory.
        environ: where ``${VAR}`` is looked up (default: ``os.environ``).
        today: the date ``expiry = "nearest"`` counts from (default: today).
        with_symbols: resolve the symbols (default). ``False`` skips them and the instruments
            dump, leaving ``symbols`` empty: for ``kitefan instruments fetch``, which must work
            before the dump that resolves the names exists.

    Returns:
        The validated config.

    Raises:
        ConfigError: every problem found, each with its place.
    """
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(source, ["not UTF-8 text"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [_toml_problem(str(exc))]) from None
    loader = _Loader(
        path,
        raw,
        environ=os.environ if environ is None else environ,
        today=date.today() if today is None else today,
    )
    return loader.load(with_symbols=with_symbols)


def _toml_problem(message: str) -> str:
    match = _TOML_PLACE.match(message)
    if match is None:
        return f"invalid TOML: {message[:1].lower()}{message[1:]}"
    what, line, column = match.groups()
    return f"line {line}, column {column}: invalid TOML: {what[:1].lower()}{what[1:]}"


_E = TypeVar("_E", bound=StrEnum)


def _quoted(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return "an array" if isinstance(value, list) else "a table"
    return str(value)


def _unknown(place: str, name: str, known: Sequence[str]) -> str:
    if place and name in _TOP_KEYS:
        # TOML puts every line after a [table] header into that table.
        return (
            f"{place}{name}: unknown key ({name} is a top-level setting: move it above the "
            "first [table] of the file)"
        )
    near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {near[0]}?)" if near else f" (known: {', '.join(known)})"
    return f"{place}{name}: unknown key{hint}"


@dataclass(slots=True)
class _Wanted:
    """One token while symbols are collected: where it appeared and what was asked of it."""

    token: int
    mode: Mode | None = None
    listed: list[str] = field(default_factory=list)
    pin: str | None = None
    pin_place: str = ""


@dataclass(frozen=True, slots=True)
class _Entry:
    """One place in the file that asks for symbols: a token or name, or a ``[[select]]``."""

    place: str
    value: object
    mode: Mode
    pin: str | None = None


class _Loader:
    """Validates one parsed file; collects problems and warnings instead of stopping."""

    def __init__(
        self, path: Path, raw: dict[str, Any], *, environ: Mapping[str, str], today: date
    ) -> None:
        self.path = path
        self.source = str(path)
        self.base = path.parent
        self.raw = raw
        self.environ = environ
        self.today = today
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.literal_tokens: list[str] = []
        self.index: InstrumentIndex | None = None

    def problem(self, message: str) -> None:
        self.problems.append(message)

    # Scalars

    def expand(self, value: str, place: str) -> str | None:
        missing: list[str] = []

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.environ:
                missing.append(name)
                return ""
            return self.environ[name]

        expanded = _VAR.sub(lookup, value)
        for name in missing:
            self.problem(f"{place}: environment variable {name} is not set")
        return None if missing else expanded

    def string(
        self, table: Mapping[str, Any], key: str, place: str, *, secret: bool = False
    ) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            shown = "" if secret else f", not {_quoted(value)}"
            self.problem(f"{place}: must be a string{shown}")
            return None
        return value

    def integer(self, key: str, low: int, high: int, default: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(f"{key}: must be an integer from {low} to {high}, not {_quoted(value)}")
            return default
        return value

    def choice(self, value: object, place: str, kind: type[_E]) -> _E | None:
        for member in kind:
            if member.value == value:
                return member
        options = ", ".join(member.value for member in kind)
        self.problem(f"{place}: must be one of {options}, not {_quoted(value)}")
        return None

    def url(self, key: str, default: str, problems_of: Callable[[str], list[str]]) -> str:
        value = self.string(self.raw, key, key)
        if value is None:
            return default
        expanded = self.expand(value, key)
        if expanded is None:
            return default
        problems = problems_of(expanded)
        for problem in problems:
            self.problem(f"{key}: {problem}")
        return default if problems else expanded

    def path_of(self, value: str, place: str) -> Path | None:
        expanded = self.expand(value, place)
        if expanded is None:
            return None
        if not expanded:
            self.problem(f"{place}: must not be empty")
            return None
        return (self.base / Path(expanded).expanduser()).absolute()

    # The whole file

    def load(self, *, with_symbols: bool) -> AppConfig:
        raw = self.raw
        for key in raw:
            if key not in _TOP_KEYS:
                self.problem(_unknown("", key, _TOP_KEYS))
        url = self.url("url", "wss://ws.kite.trade", ticker_url_problems)
        api_root = self.url("api_root", "https://api.kite.trade", _api_root_problems)
        strategy = self.choice(raw.get("strategy", "round-robin"), "strategy", Strategy)
        mode = self.choice(raw.get("mode", "quote"), "mode", Mode)
        max_connections = self.integer("max_connections_per_key", 1, 3, 3)
        max_symbols = self.integer("max_symbols_per_connection", 1, 3000, 3000)
        instruments = None
        if (value := self.string(raw, "instruments", "instruments")) is not None:
            instruments = self.path_of(value, "instruments")
        keys = self.keys(raw.get("keys"))
        tuning = self.tuning(raw.get("tuning", {}))
        publish = self.publish(raw.get("publish"))
        symbols: tuple[SymbolSpec, ...] = ()
        if with_symbols:
            symbols, keys = self.symbols(keys, mode or Mode.QUOTE, instruments)
        self.readable_tokens()
        if self.problems:
            raise ConfigError(self.source, self.problems)
        return AppConfig(
            source=self.source,
            url=url,
            strategy=strategy or Strategy.ROUND_ROBIN,
            mode=mode or Mode.QUOTE,
            max_connections_per_key=max_connections,
            max_symbols_per_connection=max_symbols,
            keys=keys,
            symbols=symbols,
            tuning=tuning,
            instruments=instruments,
            api_root=api_root.rstrip("/"),
            warnings=tuple(self.warnings),
            publish=publish,
        )

    # [publish]

    def publish(self, table: object) -> PublishConfig | None:
        if table is None:
            return None
        if not isinstance(table, dict):
            self.problem("publish: must be a table ([publish])")
            return None
        for key in table:
            if key not in _PUBLISH_KEYS:
                self.problem(_unknown("publish.", key, _PUBLISH_KEYS))
        url: RedisURL | None = None
        if "url" not in table:
            self.problem('publish.url: missing; give url = "redis://HOST[:PORT][/DB]"')
        elif (value := self.string(table, "url", "publish.url", secret=True)) is not None:
            expanded = self.expand(value, "publish.url")
            if expanded is not None:
                try:
                    url = parse_redis_url(expanded.strip())
                except ValueError as exc:
                    self.problem(f"publish.url: {exc}")
        stream = DEFAULT_PUBLISH_STREAM
        if (name := self.string(table, "stream", "publish.stream")) is not None:
            if name.strip():
                stream = name
            else:
                self.problem("publish.stream: must not be empty")
        maxlen = table.get("maxlen", DEFAULT_PUBLISH_MAXLEN)
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
            self.problem(f"publish.maxlen: must be a positive integer, not {_quoted(maxlen)}")
            maxlen = DEFAULT_PUBLISH_MAXLEN
        fmt = table.get("format", "frame")
        if fmt not in _PUBLISH_FORMATS:
            self.problem(
                f"publish.format: must be one of {', '.join(_PUBLISH_FORMATS)}, not {_quoted(fmt)}"
            )
            fmt = "frame"
        if url is None:
            return None
        return PublishConfig(url, stream, maxlen, fmt)

    # [[keys]]

    def keys(self, tables: object) -> tuple[KeyConfig, ...]:
        if tables is None:
            self.problem("keys: missing; add a [[keys]] table with id, api_key and access_token")
            return ()
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            self.problem("keys: must be an array of tables ([[keys]])")
            return ()
        keys: list[KeyConfig] = []
        first_of: dict[str, int] = {}
        for i, table in enumerate(tables):
            place = f"keys[{i}]"
            for key in table:
                if key not in _KEY_KEYS:
                    self.problem(_unknown(f"{place}.", key, _KEY_KEYS))
            key_id = self.string(table, "id", f"{place}.id")
            if key_id is None and "id" not in table:
                self.problem(f"{place}.id: missing")
            elif key_id == "":
                self.problem(f"{place}.id: must not be empty")
            elif key_id is not None and key_id in first_of:
                self.problem(
                    f'{place}.id: "{key_id}" is already the id of keys[{first_of[key_id]}]'
                )
            elif key_id is not None:
                first_of[key_id] = i
            api_key = self.secret(table, "api_key", place)
            token = self.access_token(table, place)
            if key_id and api_key is not None and token is not None:
                keys.append(KeyConfig(key_id, Credential(api_key, token)))
        if not tables:
            self.problem("keys: empty; add a [[keys]] table with id, api_key and access_token")
        return tuple(keys)

    def secret(self, table: Mapping[str, Any], key: str, place: str) -> str | None:
        if key not in table:
            self.problem(f"{place}.{key}: missing")
            return None
        value = self.string(table, key, f"{place}.{key}", secret=True)
        if value is None:
            return None
        expanded = self.expand(value, f"{place}.{key}")
        if expanded is None:
            return None
        if not expanded.strip():
            via = " (from the environment)" if _VAR.search(value) else ""
            self.problem(f"{place}.{key}: empty{via}")
            return None
        return expanded.strip()

    def access_token(self, table: Mapping[str, Any], place: str) -> str | None:
        has_token, has_file = "access_token" in table, "access_token_file" in table
        if has_token and has_file:
            self.problem(f"{place}: access_token and access_token_file are both set; keep one")
            return None
        if not has_file:
            if not has_token:
                self.problem(f"{place}.access_token: missing (or set access_token_file)")
                return None
            raw_value = table["access_token"]
            if isinstance(raw_value, str) and not _VAR.search(raw_value):
                self.literal_tokens.append(f"{place}.access_token")
            return self.secret(table, "access_token", place)
        file_place = f"{place}.access_token_file"
        value = self.string(table, "access_token_file", file_place)
        token_path = None if value is None else self.path_of(value, file_place)
        if token_path is None:
            return None
        try:
            token = token_path.read_text(encoding="utf-8").strip()
            mode = token_path.stat().st_mode
        except OSError as exc:
            self.problem(f"{file_place}: cannot read {token_path}: {exc.strerror}")
            return None
        except UnicodeDecodeError:
            self.problem(f"{file_place}: {token_path} is not UTF-8 text")
            return None
        if not token:
            self.problem(f"{file_place}: {token_path} is empty")
            return None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            self.warnings.append(
                f"{file_place}: {token_path} holds an access token and others can read it; "
                f"chmod 600 {token_path}"
            )
        return token

    def readable_tokens(self) -> None:
        if not self.literal_tokens or _same_file(self.path, demo_config_path()):
            return
        try:
            mode = self.path.stat().st_mode
        except OSError:
            return
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            places = ", ".join(self.literal_tokens)
            self.warnings.append(
                f"{places}: a literal access token in {self.source}, which others can read; "
                f"chmod 600 {self.source}, or use ${{VAR}} or access_token_file"
            )

    # [tuning]

    def tuning(self, table: object) -> Tuning:
        if not isinstance(table, dict):
            self.problem("tuning: must be a table ([tuning])")
            return Tuning()
        known = {f.name: f for f in dataclasses.fields(Tuning)}
        values: dict[str, Any] = {}
        for key, value in table.items():
            place = f"tuning.{key}"
            spec = known.get(key)
            if spec is None:
                self.problem(_unknown("tuning.", key, list(known)))
                continue
            if spec.type == "bool":
                if isinstance(value, bool):
                    values[key] = value
                else:
                    self.problem(f"{place}: must be true or false, not {_quoted(value)}")
                continue
            if spec.type == "str":
                choices = _TUNING_CHOICES[key]
                if value in choices:
                    values[key] = value
                else:
                    self.problem(
                        f"{place}: must be one of {', '.join(choices)}, not {_quoted(value)}"
                    )
                continue
            low, high, exclusive = _TUNING_RANGES.get(key, _POSITIVE)
            integral = spec.type == "int"
            ok_type = not isinstance(value, bool) and (
                isinstance(value, int) or (isinstance(value, float) and not integral)
            )
            in_range = (
                ok_type
                and math.isfinite(value)
                and (value > low if exclusive else value >= low)
                and value <= high
            )
            if not in_range:
                kind = "an integer" if integral else "a number"
                if high != math.inf:
                    bounds = f"from {_number(low)} to {_number(high)}"
                else:
                    bounds = f"{'above' if exclusive else 'of at least'} {_number(low)}"
                self.problem(f"{place}: must be {kind} {bounds}, not {_quoted(value)}")
                continue
            values[key] = int(value) if integral else float(value)
        tuning = Tuning(**values)
        if tuning.backoff_max_s < tuning.backoff_initial_s:
            self.problem(
                f"tuning.backoff_max_s: must be at least backoff_initial_s "
                f"({_number(tuning.backoff_initial_s)}), not {_number(tuning.backoff_max_s)}"
            )
        return tuning

    # Symbols

    def symbols(
        self, keys: tuple[KeyConfig, ...], default_mode: Mode, instruments: Path | None
    ) -> tuple[tuple[SymbolSpec, ...], tuple[KeyConfig, ...]]:
        entries = list(self.entries(default_mode))
        needs_dump = [
            e.place
            for e in entries
            if isinstance(e.value, InstrumentFilter)
            or (isinstance(e.value, str) and ":" in e.value and not e.value.isdigit())
        ]
        if needs_dump:
            self.index = self.dump(instruments, needs_dump)
        elif instruments is not None and instruments.is_file():
            try:
                self.index = load_instruments(instruments)
            except InstrumentsError as exc:
                self.problem(f"instruments: {exc}")
        wanted: dict[int, _Wanted] = {}
        for entry in entries:
            for token in self.tokens_of(entry):
                item = wanted.get(token)
                if item is None:
                    item = wanted[token] = _Wanted(token)
                self.want(item, entry)
        self.duplicates(wanted.values())
        specs = tuple(
            SymbolSpec(item.token, self.name_of(item.token), item.mode or default_mode, item.pin)
            for item in wanted.values()
        )
        pinned: dict[str, list[int]] = {}
        for spec in specs:
            if spec.key is not None:
                pinned.setdefault(spec.key, []).append(spec.token)
        keys = tuple(dataclasses.replace(key, pinned=tuple(pinned.get(key.id, ()))) for key in keys)
        return specs, keys

    def want(self, item: _Wanted, entry: _Entry) -> None:
        """Record one more appearance of a token: a listing with a mode, or a pin."""
        if entry.pin is None:
            item.listed.append(entry.place)
            if item.mode is None or MODE_RANK[entry.mode] > MODE_RANK[item.mode]:
                item.mode = entry.mode
        elif item.pin is None:
            item.pin, item.pin_place = entry.pin, entry.place
        elif item.pin != entry.pin:
            self.problem(
                f'{entry.place}: {self.name_of(item.token)} is pinned to both "{item.pin}" '
                f'({item.pin_place}) and "{entry.pin}"; pin it to one key'
            )
        else:
            self.warnings.append(
                f'{entry.place}: {self.name_of(item.token)} is pinned to "{entry.pin}" twice '
                f"(first at {item.pin_place})"
            )

    def tokens_of(self, entry: _Entry) -> list[int]:
        if not isinstance(entry.value, InstrumentFilter):
            token = self.token_of(entry.place, entry.value)
            return [] if token is None else [token]
        if self.index is None:
            return []  # the missing dump is one problem, reported once
        rows = self.index.select(entry.value, today=self.today)
        if not rows:
            self.problem(self.empty_select(entry.place, entry.value))
        return [row.instrument_token for row in rows]

    def name_of(self, token: int) -> str:
        row = None if self.index is None else self.index.get(token)
        return str(token) if row is None else row.symbol

    def duplicates(self, items: Iterable[_Wanted]) -> None:
        repeated = [item for item in items if len(item.listed) > 1]
        for item in repeated[:_MAX_DUPLICATE_WARNINGS]:
            places = ", ".join(item.listed[:3]) + (", …" if len(item.listed) > 3 else "")
            mode = item.mode.value if item.mode is not None else ""
            self.warnings.append(
                f"{self.name_of(item.token)} is listed {len(item.listed)} times ({places}); "
                f"streaming it in {mode}, the highest mode asked"
            )
        if len(repeated) > _MAX_DUPLICATE_WARNINGS:
            self.warnings.append(
                f"… and {len(repeated) - _MAX_DUPLICATE_WARNINGS} more symbols listed more "
                "than once, each streaming in the highest mode asked"
            )

    def entries(self, default_mode: Mode) -> Iterable[_Entry]:
        """Every listed symbol, pin and ``[[select]]``, in document order."""
        for section, body in self.raw.items():
            if section == "keys" and isinstance(body, list):
                for i, table in enumerate(body):
                    if not isinstance(table, dict) or "symbols" not in table:
                        continue
                    key_id = table.get("id")
                    pins = self.array(table["symbols"], f"keys[{i}].symbols")
                    if isinstance(key_id, str) and key_id:
                        for j, value in enumerate(pins):
                            yield _Entry(f"keys[{i}].symbols[{j}]", value, default_mode, key_id)
            elif section == "symbols":
                yield from self.symbol_table(body, default_mode)
            elif section == "select":
                yield from self.selects(body, default_mode)

    def symbol_table(self, body: object, default_mode: Mode) -> Iterable[_Entry]:
        if not isinstance(body, dict):
            self.problem("symbols: must be a table ([symbols])")
            return
        for key, values in body.items():
            if key not in _SYMBOLS_KEYS:
                self.problem(_unknown("symbols.", key, _SYMBOLS_KEYS))
            elif key == "files":
                for j, value in enumerate(self.array(values, "symbols.files")):
                    yield from self.symbol_file(value, f"symbols.files[{j}]", default_mode)
            else:
                for j, value in enumerate(self.array(values, f"symbols.{key}")):
                    yield _Entry(f"symbols.{key}[{j}]", value, Mode(key))

    def array(self, value: object, place: str) -> list[object]:
        if not isinstance(value, list):
            self.problem(f"{place}: must be an array")
            return []
        return value

    def symbol_file(self, value: object, place: str, default_mode: Mode) -> Iterable[_Entry]:
        if not isinstance(value, str):
            self.problem(f"{place}: must be a path (a string), not {_quoted(value)}")
            return
        file = self.path_of(value, place)
        if file is None:
            return
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            self.problem(f"{place}: cannot read {file}: {exc.strerror}")
            return
        except UnicodeDecodeError:
            self.problem(f"{place}: {file} is not UTF-8 text")
            return
        for number, line in enumerate(lines, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            line_place = f"{value}:{number}"
            symbol, suffix = _split_mode(text)
            if suffix is None:
                yield _Entry(line_place, symbol, default_mode)
            elif suffix.lower() in _MODES:
                yield _Entry(line_place, symbol, Mode(suffix.lower()))
            else:
                self.problem(f'{line_place}: unknown mode "{suffix}" (ltp, quote or full)')

    def selects(self, tables: object, default_mode: Mode) -> Iterable[_Entry]:
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            self.problem("select: must be an array of tables ([[select]])")
            return
        for i, table in enumerate(tables):
            place = f"select[{i}]"
            ok = True
            for key in table:
                if key not in _SELECT_KEYS:
                    self.problem(_unknown(f"{place}.", key, _SELECT_KEYS))
                    ok = False
            if not any(key in table for key in _SELECT_FILTERS):
                self.problem(f"{place}: needs at least one of {', '.join(_SELECT_FILTERS)}")
                ok = False
            mode = self.choice(table.get("mode", default_mode), f"{place}.mode", Mode)
            exchange = self.words(table.get("exchange"), f"{place}.exchange")
            segment = self.words(table.get("segment"), f"{place}.segment")
            name = self.words(table.get("name"), f"{place}.name")
            kind = self.words(table.get("instrument_type"), f"{place}.instrument_type")
            expiry = self.expiry(table.get("expiry"), f"{place}.expiry")
            if (
                ok
                and mode is not None
                and exchange is not None
                and segment is not None
                and name is not None
                and kind is not None
                and expiry is not None
            ):
                what = InstrumentFilter(exchange, segment, name, kind, expiry)
                yield _Entry(place, what, mode)

    def words(self, value: object, place: str) -> tuple[str, ...] | None:
        values = value if isinstance(value, list) else [] if value is None else [value]
        if not all(isinstance(v, str) and v for v in values):
            self.problem(f"{place}: must be a string or an array of strings")
            return None
        return tuple(str(v).upper() for v in values)

    def expiry(self, value: object, place: str) -> tuple[date, ...] | Literal["nearest"] | None:
        if value is None:
            return ()
        if value == "nearest":
            return "nearest"
        dates: list[date] = []
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, date) and not isinstance(item, datetime):
                dates.append(item)
            elif isinstance(item, str) and _ISO_DATE.match(item):
                try:
                    dates.append(date.fromisoformat(item))
                except ValueError:
                    self.problem(f'{place}: "{item}" is not a valid date')
                    return None
            else:
                self.problem(
                    f'{place}: must be "nearest", a date (YYYY-MM-DD) or an array of dates, '
                    f"not {_quoted(item)}"
                )
                return None
        return tuple(dates)

    def empty_select(self, place: str, what: InstrumentFilter) -> str:
        if what.expiry == "nearest":
            return (
                f"{place}: no instrument with an expiry on or after {self.today.isoformat()} "
                f"matches in {_dump_name(self.index)}; the dump may be stale: "
                "run `kitefan instruments fetch`"
            )
        return f"{place}: matches no instrument in {_dump_name(self.index)}"

    def dump(self, instruments: Path | None, users: list[str]) -> InstrumentIndex | None:
        more = f" and {len(users) - 1} more" if len(users) > 1 else ""
        if instruments is None:
            self.problem(
                f"instruments: not set, but {users[0]}{more} "
                f"{'need' if more else 'needs'} the instruments dump; "
                'set instruments = "instruments.csv" and run `kitefan instruments fetch`'
            )
            return None
        if not instruments.is_file():
            self.problem(
                f"instruments: {instruments} does not exist ({users[0]}{more} "
                f"{'need' if more else 'needs'} it); "
                "run `kitefan instruments fetch`"
            )
            return None
        try:
            return load_instruments(instruments)
        except InstrumentsError as exc:
            self.problem(f"instruments: {exc}")
            return None

    def token_of(self, place: str, value: object) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 < value <= _MAX_TOKEN:
                return value
            self.problem(f"{place}: {value} is not an instrument token")
            return None
        if not isinstance(value, str):
            self.problem(
                f"{place}: must be an instrument token or EXCHANGE:TRADINGSYMBOL, "
                f"not {_quoted(value)}"
            )
            return None
        if _DECIMAL.fullmatch(value):  # not isdigit(): "²" is a digit that int() refuses
            return self.token_of(place, int(value))
        if ":" not in value:
            self.problem(
                f'{place}: "{value}" is neither an instrument token nor EXCHANGE:TRADINGSYMBOL'
            )
            return None
        if self.index is None:
            return None  # the missing dump is one problem, reported once
        row = self.index.resolve(value)
        if row is None:
            close = self.index.closest(value)
            hint = f"; closest: {', '.join(close)}" if close else ""
            self.problem(f'{place}: unknown symbol "{value}"{hint}')
            return None
        return row.instrument_token


def _split_mode(text: str) -> tuple[str, str | None]:
    """``NSE:INFY:full`` → (``NSE:INFY``, ``full``); ``408065:ltp`` → (``408065``, ``ltp``)."""
    parts = text.rsplit(":", 1)
    if len(parts) == 2 and (parts[0].count(":") == 1 or parts[0].isdigit()):
        return parts[0].strip(), parts[1].strip()
    return text, None


def _dump_name(index: InstrumentIndex | None) -> str:
    return "the instruments dump" if index is None else Path(index.source).name


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


# Symbols given to a running feed -----------------------------------------------------------------


def parse_token(value: object) -> int:
    """An instrument token: an integer, or its decimal string, from 1 to 4294967295 (uint32).

    Raises:
        SymbolError: ``value`` is not one (a bool, a float, a name, out of range, ...).
    """
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        token = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        token = value.__index__()  # a plain int, also of an int subclass
    else:
        raise SymbolError(
            value,
            f"{_shown(value)} is neither an instrument token nor EXCHANGE:TRADINGSYMBOL",
        )
    if not 0 < token <= _MAX_TOKEN:
        raise SymbolError(
            value, f"{token} is not an instrument token (tokens are 1 to {_MAX_TOKEN})"
        )
    return token


def parse_mode(value: object) -> Mode:
    """A :class:`Mode`, or its wire string (``"ltp"``, ``"quote"``, ``"full"``), as a Mode.

    Raises:
        SymbolError: ``value`` is neither.
    """
    if isinstance(value, Mode):
        return value
    if isinstance(value, str) and value in _MODES:
        return Mode(value)
    raise SymbolError(value, f"{_shown(value)} is not a mode (ltp, quote or full)")


def needs_instruments(item: object, by_name: Mapping[str, SymbolSpec]) -> bool:
    """Whether :func:`spec_of` needs the instruments dump to resolve ``item``.

    True for an ``EXCHANGE:TRADINGSYMBOL`` name that is not in ``by_name``.
    """
    return isinstance(item, str) and ":" in item and item not in by_name


def spec_of(
    item: object,
    *,
    mode: Mode,
    by_token: Mapping[int, SymbolSpec],
    by_name: Mapping[str, SymbolSpec],
    index: InstrumentIndex | None,
    instruments: Path | None = None,
) -> SymbolSpec:
    """The spec of one symbol given to a running feed, checked; raises rather than guesses.

    ``item`` is an instrument token (an integer, or its decimal string: a name always has a
    colon, so a string of digits can only be a token), an ``EXCHANGE:TRADINGSYMBOL`` name, or a
    :class:`SymbolSpec` (its token, mode and pin are checked). A token or name in ``by_token`` /
    ``by_name`` (what the feed streams) gives that spec; another name is resolved through
    ``index``, the instruments dump; another token streams as itself. New symbols get ``mode``.

    Args:
        item: what was given.
        mode: the mode of a symbol the feed does not stream yet.
        by_token: the specs the feed streams, by token.
        by_name: the same, by name.
        index: the instruments dump, if loaded (names not in ``by_name`` need it).
        instruments: the dump's configured path, for the message when ``index`` is None.

    Raises:
        SymbolError: a malformed item, a token out of range, a bad mode, an unknown name (with
            the closest names of the dump), or a name with no dump to resolve it.
    """
    if isinstance(item, SymbolSpec):
        token = parse_token(item.token)
        if item.key is not None and not isinstance(item.key, str):
            raise SymbolError(item, f"the key of {token} must be a key id, not {_shown(item.key)}")
        name = item.name if isinstance(item.name, str) and item.name else str(token)
        return SymbolSpec(token, name, parse_mode(item.mode), item.key)
    if not isinstance(item, str) or _DECIMAL.fullmatch(item):
        token = parse_token(item)
        known = by_token.get(token)
        if known is not None:
            return known
        row = index.get(token) if index is not None else None
        return SymbolSpec(token, row.symbol if row is not None else str(token), mode)
    known = by_name.get(item)
    if known is not None:
        return known
    if ":" not in item:
        parse_token(item)  # raises: neither a token nor a name
    if index is None:
        where = (
            "set instruments in the config and"
            if instruments is None
            else f"{instruments} does not exist:"
        )
        raise SymbolError(
            item,
            f'"{item}" needs the instruments dump to resolve it: {where} '
            "run `kitefan instruments fetch`",
        )
    row = index.resolve(item)
    if row is None:
        raise SymbolError(item, f'unknown symbol "{item}"', closest=index.closest(item))
    return by_token.get(row.instrument_token) or SymbolSpec(row.instrument_token, row.symbol, mode)


def _shown(value: object) -> str:
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def select_symbols(config: AppConfig, symbols: Sequence[str]) -> tuple[SymbolSpec, ...]:
    """The symbols named on a command line (``stream --symbols``), as specs.

    Each item is a token or ``EXCHANGE:TRADINGSYMBOL``, with an optional ``:mode`` suffix. A
    symbol of the config keeps its mode and pin unless a suffix gives another mode; any other is
    resolved through the config's instruments dump (names need it) and streams in the config's
    default mode, unpinned. Listed twice, a symbol keeps its highest mode.

    Raises:
        ConfigError: an item is malformed or unknown (with the closest names), or names need a
            dump the config does not have.
    """
    by_token = {spec.token: spec for spec in config.symbols}
    by_name = {spec.name: spec for spec in config.symbols}
    index: InstrumentIndex | None = None
    problems: list[str] = []
    chosen: dict[int, SymbolSpec] = {}
    for item in symbols:
        text, suffix = _split_mode(item.strip())
        mode = None
        if suffix is not None:
            if suffix.lower() not in _MODES:
                problems.append(f'"{item}": unknown mode "{suffix}" (ltp, quote or full)')
                continue
            mode = Mode(suffix.lower())
        spec: SymbolSpec | None
        if _DECIMAL.fullmatch(text):
            try:
                token = parse_token(text)
            except SymbolError as exc:
                problems.append(str(exc))
                continue
            spec = by_token.get(token) or SymbolSpec(token, str(token), config.mode)
        else:
            spec = by_name.get(text)
        if spec is None and ":" in text:
            if index is None:
                if config.instruments is None or not config.instruments.is_file():
                    problems.append(
                        f'"{text}" needs the instruments dump; set instruments in the config '
                        "and run `kitefan instruments fetch`"
                    )
                    continue
                try:
                    index = load_instruments(config.instruments)
                except InstrumentsError as exc:
                    raise ConfigError("--symbols", [str(exc)]) from None
            row = index.resolve(text)
            if row is None:
                close = index.closest(text)
                hint = f"; closest: {', '.join(close)}" if close else ""
                problems.append(f'unknown symbol "{text}"{hint}')
                continue
            spec = by_token.get(row.instrument_token) or SymbolSpec(
                row.instrument_token, row.symbol, config.mode
            )
        elif spec is None:
            problems.append(f'"{text}" is neither an instrument token nor EXCHANGE:TRADINGSYMBOL')
            continue
        if mode is not None:
            spec = dataclasses.replace(spec, mode=mode)
        earlier = chosen.get(spec.token)
        if earlier is None or MODE_RANK[spec.mode] > MODE_RANK[earlier.mode]:
            chosen[spec.token] = spec
    if problems:
        raise ConfigError("--symbols", problems)
    return tuple(chosen.values())


# Writing ----------------------------------------------------------------------------------------


def dump_config(config: AppConfig) -> str:
    """The resolved config as TOML, with every api key and access token masked.

    Symbols appear by name where the dump knows them (else by token), each in its resolved mode;
    pins stay in their key's ``symbols``. Every tuning knob is shown with its value.
    """
    name_of = {spec.token: spec.name for spec in config.symbols}

    def shown(token: int) -> str | int:
        name = name_of.get(token, str(token))
        return token if name == str(token) else name

    doc: dict[str, Any] = {
        "url": config.url,
        "api_root": config.api_root,
        "strategy": config.strategy.value,
        "mode": config.mode.value,
        "max_connections_per_key": config.max_connections_per_key,
        "max_symbols_per_connection": config.max_symbols_per_connection,
    }
    if config.instruments is not None:
        doc["instruments"] = str(config.instruments)
    keys = []
    for key in config.keys:
        table: dict[str, Any] = {
            "id": key.id,
            "api_key": mask(key.credential.api_key),
            "access_token": mask(key.credential.access_token),
        }
        if key.pinned:
            table["symbols"] = [shown(token) for token in key.pinned]
        keys.append(table)
    doc["keys"] = keys
    by_mode: dict[str, list[str | int]] = {}
    for spec in config.symbols:
        by_mode.setdefault(spec.mode.value, []).append(shown(spec.token))
    doc["symbols"] = {mode.value: by_mode[mode.value] for mode in Mode if mode.value in by_mode}
    doc["tuning"] = dataclasses.asdict(config.tuning)
    if config.publish is not None:
        doc["publish"] = {
            "url": config.publish.url.shown,
            "stream": config.publish.stream,
            "maxlen": config.publish.maxlen,
            "format": config.publish.format,
        }
    return tomli_w.dumps(doc)


def starter_config() -> str:
    """The commented starter config ``kitefan init`` writes.

    It uses only instrument tokens, so it loads before any instruments dump exists; names and a
    ``[[select]]`` example are there, commented out. Every tuning knob is listed, commented, with
    its default.
    """
    defaults = Tuning()
    tuning_lines = []
    for spec in dataclasses.fields(Tuning):
        value = getattr(defaults, spec.name)
        tuning_lines.append(f"# {TUNING_HELP[spec.name]}")
        tuning_lines.append(f"# {tomli_w.dumps({spec.name: value}).strip()}")
    tuning = "\n".join(tuning_lines)
    return _STARTER.replace("@TUNING@", tuning)


_STARTER = """\
# kitefan config. Every field is documented in the README ("Config").
# Check it with `kitefan config check`; see where each symbol goes with
# `kitefan distribute --dry-run`.

url = "wss://ws.kite.trade"        # the ticker; a simulator's ws:// URL for tests and demos
strategy = "round-robin"           # "round-robin" | "least-loaded" | "manual"
mode = "quote"                     # mode of symbols listed without one: "ltp" | "quote" | "full"
max_connections_per_key = 3        # Kite allows 3; lower it to leave some for other programs
max_symbols_per_connection = 3000  # Kite allows 3000
instruments = "instruments.csv"    # the dump that resolves EXCHANGE:TRADINGSYMBOL names;
                                   # download it with `kitefan instruments fetch`
# api_root = "https://api.kite.trade"   # where `kitefan instruments fetch` downloads from

# One table per API key. ${VAR} reads the environment, so no token is stored here;
# access_token_file = "path" reads the token from a file instead (re-read on every load).
[[keys]]
id = "main"
api_key = "${KITE_API_KEY}"
access_token = "${KITE_ACCESS_TOKEN}"
# symbols = [256265]                # pinned to this key

# [[keys]]
# id = "second"
# api_key = "${KITE_API_KEY_2}"
# access_token_file = "second.token"

[symbols]
quote = [256265, 260105]            # NIFTY 50, NIFTY BANK (or "NSE:NIFTY 50", "NSE:NIFTY BANK")
full = [738561]                     # RELIANCE (or "NSE:RELIANCE")
ltp = []
files = []                          # watchlists: one symbol a line, optional ":mode" suffix

# Pick many instruments from the dump at once:
# [[select]]
# exchange = "NFO"
# name = "NIFTY"
# instrument_type = ["CE", "PE"]
# expiry = "nearest"                # or "YYYY-MM-DD"
# mode = "full"

[tuning]
@TUNING@
"""


def write_starter_config(path: Path, *, force: bool = False) -> None:
    """Write :func:`starter_config` to ``path`` with mode 0600 (it will hold credentials).

    Args:
        path: where to write.
        force: overwrite an existing file.

    Raises:
        FileExistsError: ``path`` exists and ``force`` is false.
        OSError: the file cannot be written.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(starter_config())
