"""One resolver: the config loader, ``select_symbols`` (``stream --symbols``) and the running
feed's ``spec_of`` read and look up symbols with the same code, and say the same about them."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_configs import config_file

from kitefan.errors import ConfigError, SymbolError
from kitefan.instruments import INSTRUMENTS_HEADER, parse_instruments
from kitefan.loader import load_config, select_symbols
from kitefan.models import Mode
from kitefan.settings import AppConfig, SymbolSpec
from kitefan.symbols import (
    Problem,
    Unresolved,
    find_symbol,
    needs_instruments,
    read_symbol,
    spec_of,
)

DUMP = "\n".join(
    [
        ",".join(INSTRUMENTS_HEADER),
        "738561,2885,RELIANCE,RELIANCE INDUSTRIES,1520.4,,0.0,0.1,1,EQ,NSE,NSE",
        "408065,1594,INFY,INFOSYS,1605.25,,0.0,0.1,1,EQ,NSE,NSE",
        "2953217,11536,TCS,TATA CONSULTANCY SERV LT,3410.8,,0.0,0.1,1,EQ,NSE,NSE",
        "779521,3045,SBIN,STATE BANK OF INDIA,962.15,,0.0,0.05,1,EQ,NSE,NSE",
        "",
    ]
)
CONFIG = """\
instruments = "instruments.csv"
[[keys]]
id = "a"
api_key = "key-aaaa-1111"
access_token = "token-aaaa-1111"
symbols = ["NSE:RELIANCE"]
[symbols]
full = [408065]
"""


def config_in(directory: Path) -> AppConfig:
    (directory / "instruments.csv").write_text(DUMP)
    path = config_file(directory / "kitefan.toml", CONFIG)
    return load_config(path, environ={})


NEITHER = "is neither an instrument token nor EXCHANGE:TRADINGSYMBOL"
RANGE = "is not an instrument token (tokens are 1 to 4294967295)"


@pytest.mark.parametrize(
    ("item", "problem", "message"),
    [
        (True, Problem.NOT_TEXT, f"True {NEITHER}"),
        (1.5, Problem.NOT_TEXT, f"1.5 {NEITHER}"),
        ("INFY", Problem.NOT_A_NAME, f'"INFY" {NEITHER}'),
        (0, Problem.OUT_OF_RANGE, f"0 {RANGE}"),
        ("4294967296", Problem.OUT_OF_RANGE, f"4294967296 {RANGE}"),
    ],
)
def test_read_symbol_says_which_problem(item: object, problem: Problem, message: str) -> None:
    with pytest.raises(Unresolved) as caught:
        read_symbol(item)
    assert caught.value.problem is problem
    assert str(caught.value) == message
    assert isinstance(caught.value, SymbolError)


def test_read_symbol_and_find_symbol() -> None:
    index = parse_instruments(DUMP, source="dump.csv")
    assert read_symbol(408065) == 408065
    assert read_symbol("0408065") == 408065
    assert read_symbol("NSE:INFY") == "NSE:INFY"
    assert find_symbol("NSE:INFY", index).instrument_token == 408065
    with pytest.raises(Unresolved) as caught:
        find_symbol("NSE:INFI", index)
    assert caught.value.problem is Problem.UNKNOWN
    assert str(caught.value) == 'unknown symbol "NSE:INFI"; closest: NSE:INFY'


@pytest.mark.parametrize(
    "item", ["NSE:RELIANCE", "408065", "NSE:TCS", "2953217", "5", "NSE:TSC", "TCS", "0", "²"]
)
def test_select_symbols_resolves_each_item_as_the_running_feed_does(
    tmp_path: Path, item: str
) -> None:
    config = config_in(tmp_path)
    by_name = {spec.name: spec for spec in config.symbols}
    # The dump is read when an item needs it.
    index = parse_instruments(DUMP, source="dump.csv") if needs_instruments(item, by_name) else None
    try:
        expected: SymbolSpec | str = spec_of(
            item,
            mode=config.mode,
            by_token={spec.token: spec for spec in config.symbols},
            by_name=by_name,
            index=index,
            instruments=config.instruments,
        )
    except SymbolError as exc:
        expected = str(exc)
    try:
        got: tuple[SymbolSpec, ...] | list[str] = select_symbols(config, [item])
    except ConfigError as exc:
        got = exc.problems
    assert got == ([expected] if isinstance(expected, str) else (expected,))


def test_a_token_is_named_through_the_dump_whatever_the_order(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    tcs = SymbolSpec(2953217, "NSE:TCS", Mode.QUOTE)
    sbin = SymbolSpec(779521, "NSE:SBIN", Mode.QUOTE)
    assert select_symbols(config, ["2953217", "NSE:SBIN"]) == (tcs, sbin)
    assert select_symbols(config, ["NSE:SBIN", "2953217"]) == (sbin, tcs)
    # Tokens and the config's own names do not need the dump: it is not read, and a token the
    # config does not name is its own name.
    assert select_symbols(config, ["2953217", "NSE:INFY"]) == (
        SymbolSpec(2953217, "2953217", Mode.QUOTE),
        SymbolSpec(408065, "NSE:INFY", Mode.FULL),
    )


def test_a_name_without_the_dump_says_where_the_dump_should_be(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    dump = tmp_path / "instruments.csv"
    dump.unlink()
    with pytest.raises(ConfigError) as caught:
        select_symbols(config, ["NSE:TCS", "408065"])
    assert caught.value.problems == [
        f'"NSE:TCS" needs the instruments dump to resolve it: {dump} does not exist: '
        "run `kitefan instruments fetch`"
    ]
