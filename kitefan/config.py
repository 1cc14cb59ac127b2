"""The kitefan config: a TOML file read into typed, immutable objects.

SKELETON: the types below are the contract other modules build on. ``load_config`` reads only the
``[[keys]]`` tables and ``url`` for now; the full loader (symbols, instruments, select, tuning,
validation with every problem reported at once) is being written under issue 3.

Owns: the config types, loading and validating the file, masking secrets. Must not import rich,
typer, asyncio or websockets.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from kitefan.errors import ConfigError
from kitefan.models import Mode

__all__ = [
    "AppConfig",
    "Credential",
    "KeyConfig",
    "Strategy",
    "SymbolSpec",
    "Tuning",
    "demo_config_path",
    "load_config",
    "mask",
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


@dataclass(frozen=True, slots=True)
class Credential:
    """An api key and its access token. Neither appears in repr, str, logs or errors."""

    api_key: str = field(repr=False)
    access_token: str = field(repr=False)

    def __str__(self) -> str:
        return f"Credential(api_key={mask(self.api_key)}, access_token={mask(self.access_token)})"


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """One ``[[keys]]`` table."""

    id: str
    credential: Credential


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
    """Every knob the stream uses, with its documented default."""

    connect_timeout_s: float = 10.0
    liveness_timeout_s: float = 5.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.2
    auth_retry_s: float = 300.0
    subscribe_batch: int = 500
    queue_max_ticks: int = 200_000
    failover: bool = True


@dataclass(frozen=True, slots=True)
class AppConfig:
    """A loaded, validated config."""

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


def demo_config_path() -> Path:
    """The bundled demo config (used by ``--demo``)."""
    packaged = Path(__file__).parent / "configs" / "demo.toml"
    if packaged.exists():
        return packaged
    return Path(__file__).parent.parent / "configs" / "demo.toml"


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read and validate a config file (SKELETON: keys and url only)."""
    env = os.environ if environ is None else environ
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"TOML syntax: {exc}"]) from None
    keys = []
    for index, table in enumerate(raw.get("keys", [])):
        token = str(table["access_token"])
        if token.startswith("${") and token.endswith("}"):
            token = env[token[2:-1]]
        keys.append(KeyConfig(str(table["id"]), Credential(str(table["api_key"]), token)))
        del index
    return AppConfig(
        source=str(path),
        url=str(raw.get("url", "wss://ws.kite.trade")),
        strategy=Strategy(raw.get("strategy", "round-robin")),
        mode=Mode(raw.get("mode", "quote")),
        max_connections_per_key=int(raw.get("max_connections_per_key", 3)),
        max_symbols_per_connection=int(raw.get("max_symbols_per_connection", 3000)),
        keys=tuple(keys),
        symbols=(),
    )
