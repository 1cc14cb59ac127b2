"""The broker's instruments dump: parsing it, indexing it, selecting from it.

The dump is the CSV that ``GET /instruments`` on the Kite API returns (one row per instrument:
``instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,
instrument_type,segment,exchange``). kitefan uses it to turn ``EXCHANGE:TRADINGSYMBOL`` names into
instrument tokens, to name tokens in plans and tables, to pick large universes with ``[[select]]``
filters, and (the simulator) to seed prices from ``last_price``.

Pure: text in, an index out. Reading the file is :func:`kitefan.loader.load_instruments`;
downloading it, :func:`kitefan.fetch.fetch_instruments`.

Owns: :class:`Instrument`, :class:`InstrumentIndex`, :class:`InstrumentFilter`, parsing the CSV
(:func:`parse_instruments`). Must not import any other kitefan module but :mod:`kitefan.errors`,
nor asyncio, websockets, socket, urllib, http, tempfile, rich or typer.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal, NamedTuple

from kitefan.errors import InstrumentsError

__all__ = [
    "INSTRUMENTS_HEADER",
    "Instrument",
    "InstrumentFilter",
    "InstrumentIndex",
    "parse_instruments",
]

#: The dump's columns, in the broker's order.
INSTRUMENTS_HEADER: tuple[str, ...] = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)

_OPTION_TYPES = frozenset({"CE", "PE"})


class Instrument(NamedTuple):
    """One row of the dump, with its numbers and date parsed."""

    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    last_price: float
    expiry: date | None
    strike: float
    tick_size: float
    lot_size: int
    instrument_type: str
    segment: str
    exchange: str

    @property
    def symbol(self) -> str:
        """The name kitefan knows it by: ``EXCHANGE:TRADINGSYMBOL`` (``NSE:NIFTY 50``)."""
        return f"{self.exchange}:{self.tradingsymbol}"


@dataclass(frozen=True, slots=True)
class InstrumentFilter:
    """One ``[[select]]`` table: which rows of the dump to pick.

    Every field is a set of accepted values (upper-case, as in the dump); an empty tuple accepts
    anything. ``expiry`` is either a tuple of dates or ``"nearest"``: for each underlying (exchange
    and name), the earliest expiry on or after today among the rows that pass the other filters,
    chosen separately for options (CE/PE) and for everything else (futures).
    """

    exchange: tuple[str, ...] = ()
    segment: tuple[str, ...] = ()
    name: tuple[str, ...] = ()
    instrument_type: tuple[str, ...] = ()
    expiry: tuple[date, ...] | Literal["nearest"] = ()


class InstrumentIndex:
    """The dump, indexed by token and by ``EXCHANGE:TRADINGSYMBOL``.

    Lookups are dict lookups, so resolving thousands of names is fast. When the dump holds a name
    twice, the first row wins.
    """

    __slots__ = ("_by_name", "_by_token", "_rows", "source")

    def __init__(self, rows: Iterable[Instrument], *, source: str) -> None:
        """Index ``rows``; ``source`` names the dump in messages (usually its path)."""
        self.source = source
        self._rows = tuple(rows)
        self._by_token: dict[int, Instrument] = {}
        self._by_name: dict[str, Instrument] = {}
        for row in self._rows:
            self._by_token.setdefault(row.instrument_token, row)
            self._by_name.setdefault(row.symbol, row)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._rows)

    def __repr__(self) -> str:
        return f"InstrumentIndex(source={self.source!r}, instruments={len(self._rows)})"

    @property
    def by_token(self) -> Mapping[int, Instrument]:
        """Every instrument by its token."""
        return self._by_token

    def get(self, token: int) -> Instrument | None:
        """The instrument with this token, or ``None``."""
        return self._by_token.get(token)

    def resolve(self, symbol: str) -> Instrument | None:
        """The instrument named ``EXCHANGE:TRADINGSYMBOL`` (exactly as in the dump), or ``None``."""
        return self._by_name.get(symbol)

    def closest(self, symbol: str, n: int = 3) -> list[str]:
        """Up to ``n`` names in the dump closest to ``symbol``, best first.

        When the dump knows the exchange, only its tradingsymbols are compared (so a shared
        ``NSE:`` prefix does not make every NSE name look close); matching ignores case.
        """
        exchange, _, tradingsymbol = symbol.upper().rpartition(":")
        prefix = exchange + ":"
        names = [name for name in self._by_name if name.upper().startswith(prefix)]
        if exchange and names:
            by_part = {name[len(prefix) :].upper(): name for name in reversed(names)}
            wanted = tradingsymbol
        else:
            by_part = {name.upper(): name for name in reversed(list(self._by_name))}
            wanted = symbol.upper()
        found = difflib.get_close_matches(wanted, list(by_part), n=n, cutoff=0.6)
        return [by_part[part] for part in found]

    def select(self, what: InstrumentFilter, *, today: date) -> list[Instrument]:
        """The rows ``what`` picks, sorted by exchange, name, expiry, strike, type and symbol.

        The order does not depend on the order of rows in the dump, so a freshly fetched dump
        with the same instruments gives the same selection.

        Args:
            what: the filter.
            today: the date ``expiry = "nearest"`` counts from.

        Returns:
            The matching instruments (possibly none).
        """
        exchanges = frozenset(what.exchange)
        segments = frozenset(what.segment)
        names = frozenset(what.name)
        types = frozenset(what.instrument_type)
        rows = [
            row
            for row in self._rows
            if (not exchanges or row.exchange in exchanges)
            and (not segments or row.segment in segments)
            and (not names or row.name in names)
            and (not types or row.instrument_type in types)
        ]
        if what.expiry == "nearest":
            nearest: dict[tuple[str, str, bool], date] = {}
            for row in rows:
                if row.expiry is None or row.expiry < today:
                    continue
                group = (row.exchange, row.name, row.instrument_type in _OPTION_TYPES)
                if group not in nearest or row.expiry < nearest[group]:
                    nearest[group] = row.expiry
            rows = [
                row
                for row in rows
                if row.expiry is not None
                and nearest.get((row.exchange, row.name, row.instrument_type in _OPTION_TYPES))
                == row.expiry
            ]
        elif what.expiry:
            expiries = frozenset(what.expiry)
            rows = [row for row in rows if row.expiry in expiries]
        rows.sort(
            key=lambda r: (
                r.exchange,
                r.name,
                r.expiry or date.min,
                r.strike,
                r.instrument_type,
                r.tradingsymbol,
            )
        )
        return rows


def parse_instruments(text: str, *, source: str) -> InstrumentIndex:
    """Parse the dump's CSV text.

    Args:
        text: the whole CSV, header first.
        source: what to call it in messages (a path, or a URL).

    Returns:
        The indexed dump.

    Raises:
        InstrumentsError: the header is not the broker's, or a row is malformed (the first bad
            row is named with its line number).
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise InstrumentsError(f"{source}: empty; expected the instruments CSV header")
    header = [column.strip() for column in header]
    missing = [column for column in INSTRUMENTS_HEADER if column not in header]
    if missing:
        raise InstrumentsError(
            f"{source}: not an instruments dump: the header lacks {', '.join(missing)}"
        )
    at = [header.index(column) for column in INSTRUMENTS_HEADER]
    width = len(header)
    rows: list[Instrument] = []
    for line, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != width:
            raise InstrumentsError(
                f"{source}:{line}: expected {width} fields, got {len(fields)} "
                "(a cut download? run `kitefan instruments fetch`)"
            )
        rows.append(_row(fields, at, source, line))
    return InstrumentIndex(rows, source=source)


def _row(fields: Sequence[str], at: Sequence[int], source: str, line: int) -> Instrument:
    (token, exchange_token, tradingsymbol, name, last_price, expiry, strike, tick, lot) = (
        fields[i] for i in at[:9]
    )
    instrument_type, segment, exchange = (fields[i] for i in at[9:])
    column = "instrument_token"
    try:
        parsed_token = int(token)
        column = "exchange_token"
        parsed_exchange_token = int(exchange_token or 0)
        column = "last_price"
        parsed_price = float(last_price or 0)
        column = "expiry"
        parsed_expiry = date.fromisoformat(expiry) if expiry else None
        column = "strike"
        parsed_strike = float(strike or 0)
        column = "tick_size"
        parsed_tick = float(tick or 0)
        column = "lot_size"
        parsed_lot = int(float(lot or 0))
    except ValueError:
        value = fields[at[INSTRUMENTS_HEADER.index(column)]]
        raise InstrumentsError(f'{source}:{line}: {column} "{value}" is not valid') from None
    return Instrument(
        parsed_token,
        parsed_exchange_token,
        tradingsymbol,
        name,
        parsed_price,
        parsed_expiry,
        parsed_strike,
        parsed_tick,
        parsed_lot,
        instrument_type,
        segment,
        exchange,
    )
