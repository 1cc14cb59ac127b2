"""Configs for the tests: built in memory, and written as the private file kitefan reads.

Owns: ``config_file`` (a config's text written where kitefan accepts it: readable by its owner
alone, as kitefan asks of a file holding tokens), ``app_config`` (every field a test does not name
is the value most tests want: round-robin, quote mode, 3 connections per key of up to 3000
symbols, the default tuning) and ``key`` (a key with the credentials the integration tests'
simulator accounts have). A config of the integration tests' sentinel keys for a simulator is
``streams.write_config`` (tests/integration).

Must not import: anything of kitefan beyond the config's values (``kitefan.settings``,
``kitefan.models``): these are values, for pure and integration tests alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kitefan.models import Mode
from kitefan.settings import AppConfig, Credential, KeyConfig, Strategy, SymbolSpec, Tuning

DEFAULT_TUNING = Tuning()


def config_file(path: Path, text: str) -> Path:
    """``text`` written to ``path``, mode 0600; ``path``."""
    path.write_text(text)
    path.chmod(0o600)
    return path


def key(key_id: str, api_key: str | None = None, access_token: str | None = None) -> KeyConfig:
    """Key ``key_id``: api key ``{key_id}-api-key`` and token ``{key_id}-token-0001`` unless
    given."""
    return KeyConfig(
        key_id,
        Credential(
            api_key if api_key is not None else f"{key_id}-api-key",
            access_token if access_token is not None else f"{key_id}-token-0001",
        ),
    )


def app_config(
    keys: Iterable[KeyConfig | str],
    symbols: Iterable[SymbolSpec | int] = (),
    *,
    url: str = "ws://127.0.0.1:9",
    mode: Mode = Mode.QUOTE,
    strategy: Strategy = Strategy.ROUND_ROBIN,
    max_connections_per_key: int = 3,
    max_symbols_per_connection: int = 3000,
    tuning: Tuning = DEFAULT_TUNING,
    instruments: Path | None = None,
    redundancy: int = 1,
    source: str = "<test>",
) -> AppConfig:
    """A config of ``keys`` and ``symbols``, as the loader would make it of a file.

    A key given by its id is ``key(id)``; a symbol given by its token is named after it, in
    ``mode``.
    """
    return AppConfig(
        source=source,
        url=url,
        strategy=strategy,
        mode=mode,
        max_connections_per_key=max_connections_per_key,
        max_symbols_per_connection=max_symbols_per_connection,
        keys=tuple(key(k) if isinstance(k, str) else k for k in keys),
        symbols=tuple(SymbolSpec(s, str(s), mode) if isinstance(s, int) else s for s in symbols),
        tuning=tuning,
        instruments=instruments,
        redundancy=redundancy,
    )
