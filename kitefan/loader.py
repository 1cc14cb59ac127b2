"""Reading a config: finding the file, loading it, validating it, and the files it names.

``load_config`` reads the file with stdlib ``tomllib``, expands ``${VAR}`` from the environment,
resolves every symbol (tokens, ``EXCHANGE:TRADINGSYMBOL`` names, watchlist files, ``[[select]]``
filters over the instruments dump) to an instrument token with its mode and pin, and validates
everything, reporting every problem at once, each with its place (``keys[1].api_key: missing``).
Relative paths in a config resolve against the directory of the config file.

:func:`load_config_text` (TOML text) and :func:`config_from_dict` (a mapping, the shape
``tomllib`` gives) validate a config that is not a file, with the same checks and messages;
their relative paths resolve against ``base`` (default: the current directory), and a literal
access token in them gets no file-permission warning (there is no file).

This is the files layer: it reads the config, the watchlists, the token files and the instruments
dump (:func:`load_instruments`), and the environment; it builds the values of
:mod:`kitefan.settings` and resolves symbols with :mod:`kitefan.symbols`. No message or warning of
this module contains a secret except masked (``abcd…34``).

Owns: finding the config (:func:`find_config_path`, :func:`demo_config_path`), loading and
validating it (:func:`load_config`, :func:`load_config_text`, :func:`config_from_dict`), the
symbols of a command line (:func:`select_symbols`), and reading the instruments dump
(:func:`load_instruments`). Must not import rich, typer, asyncio,
websockets or any network module, nor any kitefan module of the runtime.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

from kitefan.errors import ConfigError, InstrumentsError, SymbolError
from kitefan.instruments import InstrumentFilter, InstrumentIndex, parse_instruments
from kitefan.models import MODE_RANK, Mode
from kitefan.settings import (
    DEFAULT_PUBLISH_MAXLEN,
    DEFAULT_PUBLISH_STREAM,
    AppConfig,
    Credential,
    KeyConfig,
    PublishConfig,
    RecordConfig,
    RedisURL,
    Strategy,
    SymbolSpec,
    Tuning,
    api_root_problems,
    parse_redis_url,
    quoted,
    ticker_url_problems,
)
from kitefan.symbols import (
    MODE_NAMES,
    Problem,
    Unresolved,
    find_symbol,
    needs_instruments,
    read_symbol,
    spec_of,
    split_mode,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "UNUSABLE_SETTINGS",
    "config_from_dict",
    "demo_config_path",
    "find_config_path",
    "load_config",
    "load_config_text",
    "load_instruments",
    "select_symbols",
]

#: The config file looked for in the current directory.
DEFAULT_CONFIG_NAME = "kitefan.toml"
#: The environment variable naming a config file, used when the current directory has none.
CONFIG_ENV = "KITEFAN_CONFIG"


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

_PUBLISH_KEYS = ("url", "stream", "maxlen", "format")
_PUBLISH_FORMATS = ("frame", "json")
_RECORD_KEYS = ("path",)


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
    "redundancy",
    "instruments",
    "api_root",
    "keys",
    "symbols",
    "select",
    "tuning",
    "publish",
    "record",
)
_KEY_KEYS = ("id", "api_key", "access_token", "access_token_file", "symbols")
_SYMBOLS_KEYS = ("quote", "full", "ltp", "files")
_SELECT_FILTERS = ("exchange", "segment", "name", "instrument_type", "expiry")
_SELECT_KEYS = (*_SELECT_FILTERS, "mode")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOML_PLACE = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")
_MAX_DUPLICATE_WARNINGS = 5
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


_DEFAULT_URL = "wss://ws.kite.trade"
_DEFAULT_API_ROOT = "https://api.kite.trade"
#: The settings a caller may leave unread (``unused=``): they keep their defaults, unchecked.
UNUSABLE_SETTINGS = ("url", "api_root", "publish", "record")


def load_config(
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    today: date | None = None,
    with_symbols: bool = True,
    unused: Collection[str] = (),
) -> AppConfig:
    """Read and validate a config file.

    Args:
        path: the TOML file. Relative paths inside it (``instruments``, ``symbols.files``,
            ``access_token_file``) resolve against its directory.
        environ: where ``${VAR}`` is looked up (default: ``os.environ``).
        today: the date ``expiry = "nearest"`` counts from (default: today).
        with_symbols: resolve the symbols (default). ``False`` skips them and the instruments
            dump, leaving ``symbols`` empty: for ``kitefan instruments fetch``, which must work
            before the dump that resolves the names exists.
        unused: settings of :data:`UNUSABLE_SETTINGS` the caller will not use: they are not
            read (an unset ``${VAR}`` in them is no problem) and keep their defaults. ``kitefan
            simulate`` uses only the keys, so it leaves ``url``, ``api_root``, ``publish`` and
            ``record``.

    Returns:
        The validated config; its ``source`` is ``str(path)``.

    Raises:
        ConfigError: every problem found, each with its place.
    """
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        # What to do about it: the starter config, written where it was looked for.
        hint = f"`kitefan init {shlex.quote(source)}` writes a starter config there"
        raise ConfigError(source, [f"cannot read: {exc.strerror} ({hint})"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(source, ["not UTF-8 text"]) from None
    loader = _Loader(
        _parsed(text, source),
        source=source,
        base=path.parent,
        file=path,
        environ=os.environ if environ is None else environ,
        today=date.today() if today is None else today,
    )
    return loader.load(with_symbols=with_symbols, unused=_checked_unused(unused))


def load_config_text(
    text: str,
    *,
    base: Path | None = None,
    source: str = "<string>",
    environ: Mapping[str, str] | None = None,
    today: date | None = None,
    with_symbols: bool = True,
    unused: Collection[str] = (),
) -> AppConfig:
    """Validate a config given as TOML text, as :func:`load_config` validates a file.

    Args:
        text: the TOML document.
        base: the directory relative paths in it resolve against (default: the current
            directory when this is called).
        source: what messages call it (``<string>: keys: missing``); it becomes the config's
            ``source``.
        environ, today, with_symbols, unused: as for :func:`load_config`.

    Raises:
        ConfigError: every problem found, each with its place; invalid TOML with its line and
            column.
    """
    loader = _Loader(
        _parsed(text, source),
        source=source,
        base=Path.cwd() if base is None else base,
        file=None,
        environ=os.environ if environ is None else environ,
        today=date.today() if today is None else today,
    )
    return loader.load(with_symbols=with_symbols, unused=_checked_unused(unused))


def config_from_dict(
    mapping: Mapping[str, object],
    *,
    base: Path | None = None,
    source: str = "<dict>",
    environ: Mapping[str, str] | None = None,
    today: date | None = None,
    with_symbols: bool = True,
    unused: Collection[str] = (),
) -> AppConfig:
    """Validate a config given as a mapping, the shape ``tomllib.loads`` gives a config file.

    Tables are mappings, arrays are lists or tuples, and everything else is what TOML holds
    (strings, integers, floats, booleans, ``datetime.date`` for an ``expiry``). ``${VAR}`` is
    expanded in it as in a file. The mapping is not changed.

    Args:
        mapping: the config, e.g. ``{"keys": [{"id": "main", "api_key": ..., ...}],
            "symbols": {"quote": [256265]}}``.
        base: the directory relative paths in it resolve against (default: the current
            directory when this is called).
        source: what messages call it (``<dict>: keys: missing``); it becomes the config's
            ``source``.
        environ, today, with_symbols, unused: as for :func:`load_config`.

    Raises:
        ConfigError: every problem found, each with its place (a table key that is not a
            string is one).
    """
    problems: list[str] = []
    raw = _plain(mapping, "", problems)
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"must be a mapping of settings, not {type(mapping).__name__}"])
    if problems:
        raise ConfigError(source, problems)
    loader = _Loader(
        raw,
        source=source,
        base=Path.cwd() if base is None else base,
        file=None,
        environ=os.environ if environ is None else environ,
        today=date.today() if today is None else today,
    )
    return loader.load(with_symbols=with_symbols, unused=_checked_unused(unused))


def _parsed(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [_toml_problem(str(exc))]) from None


def _plain(value: object, place: str, problems: list[str]) -> object:
    """``value`` with its mappings as dicts and its tuples as lists, as tomllib gives them."""
    if isinstance(value, Mapping):
        table: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{place}{key!r:.40}: a setting's name must be a string")
                continue
            table[key] = _plain(item, f"{place}{key}.", problems)
        return table
    if isinstance(value, (list, tuple)):
        return [
            _plain(item, f"{place.rstrip('.')}[{i}].", problems) for i, item in enumerate(value)
        ]
    return value


def _checked_unused(unused: Collection[str]) -> frozenset[str]:
    unknown = sorted(set(unused) - set(UNUSABLE_SETTINGS))
    if isinstance(unused, str) or unknown:
        raise ValueError(
            f"unused must name settings of {', '.join(UNUSABLE_SETTINGS)}, not {unused!r}"
        )
    return frozenset(unused)


def _toml_problem(message: str) -> str:
    match = _TOML_PLACE.match(message)
    if match is None:
        return f"invalid TOML: {message[:1].lower()}{message[1:]}"
    what, line, column = match.groups()
    return f"line {line}, column {column}: invalid TOML: {what[:1].lower()}{what[1:]}"


_E = TypeVar("_E", bound=StrEnum)


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
        self,
        raw: dict[str, Any],
        *,
        source: str,
        base: Path,
        file: Path | None,
        environ: Mapping[str, str],
        today: date,
    ) -> None:
        self.file = file
        self.source = source
        self.base = base
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
            shown = "" if secret else f", not {quoted(value)}"
            self.problem(f"{place}: must be a string{shown}")
            return None
        return value

    def integer(self, key: str, low: int, high: int, default: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(f"{key}: must be an integer from {low} to {high}, not {quoted(value)}")
            return default
        return value

    def choice(self, value: object, place: str, kind: type[_E]) -> _E | None:
        for member in kind:
            if member.value == value:
                return member
        options = ", ".join(member.value for member in kind)
        self.problem(f"{place}: must be one of {options}, not {quoted(value)}")
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

    def load(self, *, with_symbols: bool, unused: frozenset[str] = frozenset()) -> AppConfig:
        raw = self.raw
        for key in raw:
            if key not in _TOP_KEYS:
                self.problem(_unknown("", key, _TOP_KEYS))
        url, api_root = _DEFAULT_URL, _DEFAULT_API_ROOT
        if "url" not in unused:
            url = self.url("url", _DEFAULT_URL, ticker_url_problems)
        if "api_root" not in unused:
            api_root = self.url("api_root", _DEFAULT_API_ROOT, api_root_problems)
        strategy = self.choice(raw.get("strategy", "round-robin"), "strategy", Strategy)
        mode = self.choice(raw.get("mode", "quote"), "mode", Mode)
        max_connections = self.integer("max_connections_per_key", 1, 3, 3)
        max_symbols = self.integer("max_symbols_per_connection", 1, 3000, 3000)
        instruments = None
        if (value := self.string(raw, "instruments", "instruments")) is not None:
            instruments = self.path_of(value, "instruments")
        keys = self.keys(raw.get("keys"))
        redundancy = self.integer("redundancy", 1, 2, 1)
        if redundancy > 1 and keys and len(keys) < redundancy:
            self.problem(
                f"redundancy: {redundancy} needs at least {redundancy} [[keys]] tables, "
                f"{len(keys)} configured; add a key or set redundancy = 1"
            )
        tuning = self.tuning(raw.get("tuning", {}))
        publish = None if "publish" in unused else self.publish(raw.get("publish"))
        record = None if "record" in unused else self.record(raw.get("record"))
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
            record=record,
            redundancy=redundancy,
        )

    # [record]

    def record(self, table: object) -> RecordConfig | None:
        if table is None:
            return None
        if not isinstance(table, dict):
            self.problem("record: must be a table ([record])")
            return None
        for key in table:
            if key not in _RECORD_KEYS:
                self.problem(_unknown("record.", key, _RECORD_KEYS))
        if "path" not in table:
            self.problem(
                'record.path: missing; give path = "ticks/" (a directory: one file per day) '
                "or a file"
            )
            return None
        value = self.string(table, "path", "record.path")
        path = None if value is None else self.path_of(value, "record.path")
        return None if path is None else RecordConfig(path)

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
            self.problem(f"publish.maxlen: must be a positive integer, not {quoted(maxlen)}")
            maxlen = DEFAULT_PUBLISH_MAXLEN
        fmt = table.get("format", "frame")
        if fmt not in _PUBLISH_FORMATS:
            self.problem(
                f"publish.format: must be one of {', '.join(_PUBLISH_FORMATS)}, not {quoted(fmt)}"
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
        if (
            self.file is None
            or not self.literal_tokens
            or _same_file(self.file, demo_config_path())
        ):
            return
        try:
            mode = self.file.stat().st_mode
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
                    self.problem(f"{place}: must be true or false, not {quoted(value)}")
                continue
            if spec.type == "str":
                choices = _TUNING_CHOICES[key]
                if value in choices:
                    values[key] = value
                else:
                    self.problem(
                        f"{place}: must be one of {', '.join(choices)}, not {quoted(value)}"
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
                self.problem(f"{place}: must be {kind} {bounds}, not {quoted(value)}")
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
            if isinstance(e.value, InstrumentFilter) or needs_instruments(e.value, {})
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
            self.problem(f"{place}: must be a path (a string), not {quoted(value)}")
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
            symbol, suffix = split_mode(text)
            if suffix is None:
                yield _Entry(line_place, symbol, default_mode)
            elif suffix.lower() in MODE_NAMES:
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
                    f"not {quoted(item)}"
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
        try:
            symbol = read_symbol(value)
            if isinstance(symbol, int):
                return symbol
            if self.index is None:
                return None  # the missing dump is one problem, reported once
            return find_symbol(symbol, self.index).instrument_token
        except Unresolved as exc:
            self.problem(f"{place}: {_in_a_file(exc)}")
            return None


def _in_a_file(exc: Unresolved) -> str:
    """A symbol's problem as a config file's problems say it (a file shows TOML values)."""
    if exc.problem is Problem.OUT_OF_RANGE:
        return f"{exc.token} is not an instrument token"
    if exc.problem is Problem.NOT_TEXT:
        return f"must be an instrument token or EXCHANGE:TRADINGSYMBOL, not {quoted(exc.given)}"
    return str(exc)


def _dump_name(index: InstrumentIndex | None) -> str:
    return "the instruments dump" if index is None else Path(index.source).name


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def select_symbols(config: AppConfig, symbols: Sequence[str]) -> tuple[SymbolSpec, ...]:
    """The symbols named on a command line (``stream --symbols``), as specs.

    Each item is a token or ``EXCHANGE:TRADINGSYMBOL``, with an optional ``:mode`` suffix. A
    symbol of the config keeps its mode and pin unless a suffix gives another mode; any other is
    resolved through the config's instruments dump (names need it; it is read when one does) and
    streams in the config's default mode, unpinned. Listed twice, a symbol keeps its highest mode.
    Each item is resolved by :func:`kitefan.symbols.spec_of`, as the running feed resolves what
    ``subscribe`` is given.

    Raises:
        ConfigError: an item is malformed or unknown (with the closest names), or names need a
            dump the config does not have.
    """
    by_token = {spec.token: spec for spec in config.symbols}
    by_name = {spec.name: spec for spec in config.symbols}
    items = [split_mode(item.strip()) for item in symbols]
    index: InstrumentIndex | None = None
    dump = config.instruments
    if dump is not None and dump.is_file() and any(needs_instruments(t, by_name) for t, _ in items):
        try:
            index = load_instruments(dump)
        except InstrumentsError as exc:
            raise ConfigError("--symbols", [str(exc)]) from None
    problems: list[str] = []
    chosen: dict[int, SymbolSpec] = {}
    for item, (text, suffix) in zip(symbols, items, strict=True):
        mode = None
        if suffix is not None:
            if suffix.lower() not in MODE_NAMES:
                problems.append(f'"{item}": unknown mode "{suffix}" (ltp, quote or full)')
                continue
            mode = Mode(suffix.lower())
        try:
            spec = spec_of(
                text,
                mode=config.mode,
                by_token=by_token,
                by_name=by_name,
                index=index,
                instruments=dump,
            )
        except SymbolError as exc:
            problems.append(str(exc))
            continue
        if mode is not None:
            spec = dataclasses.replace(spec, mode=mode)
        earlier = chosen.get(spec.token)
        if earlier is None or MODE_RANK[spec.mode] > MODE_RANK[earlier.mode]:
            chosen[spec.token] = spec
    if problems:
        raise ConfigError("--symbols", problems)
    return tuple(chosen.values())


def load_instruments(path: Path) -> InstrumentIndex:
    """Read and parse the dump at ``path``.

    Raises:
        InstrumentsError: the file cannot be read or is not a well-formed dump.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InstrumentsError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InstrumentsError(f"{path}: not UTF-8 text; not an instruments dump") from None
    return parse_instruments(text, source=str(path))
