"""Symbols: what names an instrument, and how a name becomes a :class:`SymbolSpec`.

A symbol is an instrument token (an integer from 1 to 4294967295, or its decimal string) or an
``EXCHANGE:TRADINGSYMBOL`` name, resolved through the instruments dump
(:class:`~kitefan.instruments.InstrumentIndex`). In a watchlist or on a command line it may carry a
``:mode`` suffix (``NSE:INFY:full``). The config loader, ``select_symbols`` (``stream --symbols``)
and the running feed (``FeedManager.subscribe``) all resolve symbols here.

Pure: no I/O. Callers that need the dump load it (:func:`kitefan.loader.load_instruments`) and
pass the index in; :func:`needs_instruments` says whether an item needs it.

There is one resolver: :func:`read_symbol` (a token or a name, checked) and :func:`find_symbol`
(a name looked up in the dump) raise :class:`Unresolved`, a :class:`~kitefan.errors.SymbolError`
that says which :class:`Problem` it is; the loader words a file's problems from it, and
:func:`spec_of` builds on it for ``select_symbols`` and the running feed.

Owns: :func:`read_symbol`, :func:`find_symbol`, :func:`parse_token`, :func:`parse_mode`,
:func:`split_mode`, :func:`needs_instruments`, :func:`spec_of`, :class:`Problem`,
:class:`Unresolved`. Must not import any kitefan module above the values (:mod:`kitefan.settings`,
:mod:`kitefan.instruments`), nor asyncio, websockets, socket, urllib, rich or typer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path

from kitefan.errors import SymbolError
from kitefan.instruments import Instrument, InstrumentIndex
from kitefan.models import Mode
from kitefan.settings import SymbolSpec

__all__ = [
    "DECIMAL",
    "MAX_TOKEN",
    "MODE_NAMES",
    "Problem",
    "Unresolved",
    "find_symbol",
    "needs_instruments",
    "parse_mode",
    "parse_token",
    "read_symbol",
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


class Problem(StrEnum):
    """Why an item does not name an instrument."""

    NOT_TEXT = "not-text"
    """Neither an integer nor a string (a bool, a float, ``None``, a list...)."""
    OUT_OF_RANGE = "out-of-range"
    """A token outside 1 to :data:`MAX_TOKEN`."""
    NOT_A_NAME = "not-a-name"
    """A string that is neither a token's digits nor ``EXCHANGE:TRADINGSYMBOL``."""
    UNKNOWN = "unknown"
    """A name the instruments dump does not hold."""


class Unresolved(SymbolError):
    """A :class:`~kitefan.errors.SymbolError` that says which :class:`Problem` it is.

    The config loader words the problems of a file in its own way; everything else shows the
    message as it is.

    Attributes:
        problem: what is wrong.
        token: the token read, for :attr:`Problem.OUT_OF_RANGE` (else ``None``).
    """

    def __init__(
        self,
        given: object,
        problem: Problem,
        reason: str,
        *,
        token: int | None = None,
        closest: Sequence[str] = (),
    ) -> None:
        self.problem = problem
        self.token = token
        super().__init__(given, reason, closest=closest)


def parse_token(value: object) -> int:
    """An instrument token: an integer, or its decimal string, from 1 to 4294967295 (uint32).

    Raises:
        Unresolved: ``value`` is not one (a bool, a float, a name, out of range, ...).
    """
    if isinstance(value, str) and DECIMAL.fullmatch(value):
        token = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        token = value.__index__()  # a plain int, also of an int subclass
    else:
        raise Unresolved(
            value,
            Problem.NOT_A_NAME if isinstance(value, str) else Problem.NOT_TEXT,
            f"{shown(value)} is neither an instrument token nor EXCHANGE:TRADINGSYMBOL",
        )
    if not 0 < token <= MAX_TOKEN:
        raise Unresolved(
            value,
            Problem.OUT_OF_RANGE,
            f"{token} is not an instrument token (tokens are 1 to {MAX_TOKEN})",
            token=token,
        )
    return token


def read_symbol(item: object) -> int | str:
    """What ``item`` names, before any lookup: a token (checked) or an ``EXCHANGE:TRADINGSYMBOL``.

    A name always has a colon, so a string of digits can only be a token.

    Raises:
        Unresolved: ``item`` is neither (:attr:`Problem.NOT_TEXT`, :attr:`Problem.NOT_A_NAME`) or
            a token out of range (:attr:`Problem.OUT_OF_RANGE`).
    """
    if isinstance(item, str) and ":" in item:
        return item
    return parse_token(item)


def find_symbol(name: str, index: InstrumentIndex) -> Instrument:
    """The instrument of the dump named ``name`` (``EXCHANGE:TRADINGSYMBOL``, exactly).

    Raises:
        Unresolved: the dump has no such name (:attr:`Problem.UNKNOWN`), with its closest names.
    """
    row = index.resolve(name)
    if row is None:
        raise Unresolved(
            name, Problem.UNKNOWN, f'unknown symbol "{name}"', closest=index.closest(name)
        )
    return row


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
    if isinstance(item, str) and not DECIMAL.fullmatch(item):
        known = by_name.get(item)
        if known is not None:
            return known
    symbol = read_symbol(item)
    if isinstance(symbol, int):
        known = by_token.get(symbol)
        if known is not None:
            return known
        row = index.get(symbol) if index is not None else None
        return SymbolSpec(symbol, row.symbol if row is not None else str(symbol), mode)
    if index is None:
        where = (
            "set instruments in the config and"
            if instruments is None
            else f"{instruments} does not exist:"
        )
        raise SymbolError(
            symbol,
            f'"{symbol}" needs the instruments dump to resolve it: {where} '
            "run `kitefan instruments fetch`",
        )
    row = find_symbol(symbol, index)
    return by_token.get(row.instrument_token) or SymbolSpec(row.instrument_token, row.symbol, mode)


def shown(value: object) -> str:
    """``value`` as a message names it: quoted if a string, cut at 40 characters."""
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
