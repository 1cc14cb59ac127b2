"""Symbols: what names an instrument, and how a name becomes a :class:`SymbolSpec`.

A symbol is an instrument token (an integer from 1 to 4294967295, or its decimal string) or an
``EXCHANGE:TRADINGSYMBOL`` name, resolved through the instruments dump
(:class:`~kitefan.instruments.InstrumentIndex`). In a watchlist or on a command line it may carry a
``:mode`` suffix (``NSE:INFY:full``). The config loader, ``select_symbols`` (``stream --symbols``)
and the running feed (``FeedManager.subscribe``) all resolve symbols here.

Pure: no I/O. Callers that need the dump load it (:func:`kitefan.loader.load_instruments`) and
pass the index in; :func:`needs_instruments` says whether an item needs it.

Owns: :func:`parse_token`, :func:`parse_mode`, :func:`split_mode`, :func:`needs_instruments`,
:func:`spec_of`. Must not import any kitefan module above the values (:mod:`kitefan.settings`,
:mod:`kitefan.instruments`), nor asyncio, websockets, socket, urllib, rich or typer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from kitefan.errors import SymbolError
from kitefan.instruments import InstrumentIndex
from kitefan.models import Mode
from kitefan.settings import SymbolSpec

__all__ = [
    "DECIMAL",
    "MAX_TOKEN",
    "MODE_NAMES",
    "needs_instruments",
    "parse_mode",
    "parse_token",
    "shown",
    "spec_of",
    "split_mode",
]

#: The largest instrument token (tokens are uint32 on the wire).
MAX_TOKEN = 0xFFFFFFFF
#: The modes by their wire names.
MODE_NAMES = frozenset(mode.value for mode in Mode)
# A token's decimal string (not str.isdigit(): "²" is a digit that int() refuses).
DECIMAL = re.compile(r"[0-9]+")


def split_mode(text: str) -> tuple[str, str | None]:
    """The symbol and its ``:mode`` suffix, if any (the suffix is not checked).

    ``NSE:INFY:full`` → (``NSE:INFY``, ``full``); ``408065:ltp`` → (``408065``, ``ltp``);
    ``NSE:INFY`` → (``NSE:INFY``, ``None``).
    """
    parts = text.rsplit(":", 1)
    if len(parts) == 2 and (parts[0].count(":") == 1 or parts[0].isdigit()):
        return parts[0].strip(), parts[1].strip()
    return text, None


def parse_token(value: object) -> int:
    """An instrument token: an integer, or its decimal string, from 1 to 4294967295 (uint32).

    Raises:
        SymbolError: ``value`` is not one (a bool, a float, a name, out of range, ...).
    """
    if isinstance(value, str) and DECIMAL.fullmatch(value):
        token = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        token = value.__index__()  # a plain int, also of an int subclass
    else:
        raise SymbolError(
            value,
            f"{shown(value)} is neither an instrument token nor EXCHANGE:TRADINGSYMBOL",
        )
    if not 0 < token <= MAX_TOKEN:
        raise SymbolError(
            value, f"{token} is not an instrument token (tokens are 1 to {MAX_TOKEN})"
        )
    return token


def parse_mode(value: object) -> Mode:
    """A :class:`Mode`, or its wire string (``"ltp"``, ``"quote"``, ``"full"``), as a Mode.

    Raises:
        SymbolError: ``value`` is neither.
    """
    if isinstance(value, Mode):
        return value
    if isinstance(value, str) and value in MODE_NAMES:
        return Mode(value)
    raise SymbolError(value, f"{shown(value)} is not a mode (ltp, quote or full)")


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
            raise SymbolError(item, f"the key of {token} must be a key id, not {shown(item.key)}")
        name = item.name if isinstance(item.name, str) and item.name else str(token)
        return SymbolSpec(token, name, parse_mode(item.mode), item.key)
    if not isinstance(item, str) or DECIMAL.fullmatch(item):
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


def shown(value: object) -> str:
    """``value`` as a message names it: quoted if a string, cut at 40 characters."""
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
