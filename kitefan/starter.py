"""The TOML kitefan writes: the starter config of ``kitefan init`` and the masked dump of
``kitefan config show``.

Owns: :func:`starter_config`, :func:`write_starter_config` (the one file it writes, mode 0600),
:func:`dump_config` (every api key, access token and Redis password masked). Must not import rich,
typer, asyncio, websockets or any network module, nor any kitefan module but the values
(:mod:`kitefan.settings`, :mod:`kitefan.models`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import tomli_w

from kitefan.models import Mode
from kitefan.settings import TUNING_HELP, AppConfig, Tuning, mask

__all__ = ["dump_config", "starter_config", "write_starter_config"]


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
    if config.record is not None:
        doc["record"] = {"path": str(config.record.path)}
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
