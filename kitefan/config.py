"""The kitefan config, as one import: ``from kitefan.config import load_config, AppConfig``.

A façade over the modules that own the config, kept so that ``from kitefan.config import X``
goes on working for every public name:

* :mod:`kitefan.settings` — the values (pure): :class:`AppConfig`, :class:`KeyConfig`,
  :class:`Credential`, :class:`SymbolSpec`, :class:`Tuning`, :class:`Strategy`,
  :class:`PublishConfig`, :class:`RecordConfig`, :class:`RedisURL`, :func:`mask`, and the
  checks of one value;
* :mod:`kitefan.symbols` — resolving symbols (pure): :func:`parse_token`, :func:`parse_mode`,
  :func:`spec_of`, :func:`needs_instruments`;
* :mod:`kitefan.loader` — reading and validating a config (files): :func:`load_config`,
  :func:`load_config_text`, :func:`config_from_dict`, :func:`find_config_path`,
  :func:`select_symbols`;
* :mod:`kitefan.starter` — the TOML kitefan writes: :func:`starter_config`, :func:`dump_config`.

kitefan's own modules import from those, not from here, so that a pure module never loads the
loader. Owns nothing. Must not import rich, typer, asyncio or websockets.
"""

from __future__ import annotations

from kitefan.loader import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    config_from_dict,
    demo_config_path,
    find_config_path,
    load_config,
    load_config_text,
    select_symbols,
)
from kitefan.settings import (
    DEFAULT_PUBLISH_MAXLEN,
    DEFAULT_PUBLISH_STREAM,
    TUNING_HELP,
    AppConfig,
    Credential,
    KeyConfig,
    PublishConfig,
    RecordConfig,
    RedisURL,
    Strategy,
    SymbolSpec,
    Tuning,
    mask,
    parse_redis_url,
    ticker_url_problems,
)
from kitefan.starter import dump_config, starter_config, write_starter_config
from kitefan.symbols import needs_instruments, parse_mode, parse_token, spec_of

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
    "RecordConfig",
    "RedisURL",
    "Strategy",
    "SymbolSpec",
    "Tuning",
    "config_from_dict",
    "demo_config_path",
    "dump_config",
    "find_config_path",
    "load_config",
    "load_config_text",
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
