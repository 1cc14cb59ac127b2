"""What ``FeedManager.subscribe``, ``unsubscribe`` and ``set_mode`` accept, and what they refuse.

Bad input raises :class:`SymbolError` at once and changes nothing: the feed's symbols and plan
stay as they were (so nothing can be sent). The feed is not entered here, so nothing connects;
that a refusal sends nothing on a live connection is tested against the simulator in
``tests/integration/test_manager.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from app_configs import app_config, key

from kitefan import KitefanError, SymbolError
from kitefan.config import (
    AppConfig,
    SymbolSpec,
    parse_mode,
    parse_token,
    spec_of,
)
from kitefan.instruments import INSTRUMENTS_HEADER, parse_instruments
from kitefan.manager import FeedManager
from kitefan.models import Mode

DUMP = "\n".join(
    [
        ",".join(INSTRUMENTS_HEADER),
        "738561,2885,RELIANCE,RELIANCE INDUSTRIES,1520.4,,0.0,0.1,1,EQ,NSE,NSE",
        "408065,1594,INFY,INFOSYS,1605.25,,0.0,0.1,1,EQ,NSE,NSE",
        "2953217,11536,TCS,TATA CONSULTANCY SERV LT,3410.8,,0.0,0.1,1,EQ,NSE,NSE",
        "256265,1001,NIFTY 50,NIFTY 50,26150.35,,0.0,0.0,0,EQ,INDICES,NSE",
        "",
    ]
)
INDEX = parse_instruments(DUMP, source="instruments.csv")
NIFTY = SymbolSpec(256265, "NSE:NIFTY 50", Mode.FULL, "b")
STREAMING = {NIFTY.token: NIFTY}
NAMES = {NIFTY.name: NIFTY}


def config(
    instruments: Path | None = None, symbols: tuple[SymbolSpec, ...] = (NIFTY,)
) -> AppConfig:
    return app_config(
        [
            key("a", "input-api-key-a", "input-token-a-0001"),
            key("b", "input-api-key-b", "input-token-b-0001"),
        ],
        symbols,
        instruments=instruments,
    )


def placed(feed: FeedManager) -> dict[int, tuple[str, int, Mode]]:
    """Every planned token: its key, connection and mode."""
    return {
        spec.token: (key_plan.key_id, slot.index, spec.mode)
        for key_plan in feed.plan.keys
        for slot in key_plan.connections
        for spec in slot.symbols
    }


# The values layer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "token"),
    [(408065, 408065), ("408065", 408065), ("0042", 42), (4294967295, 4294967295)],
)
def test_a_token_is_an_int_or_its_decimal_string_in_the_uint32_range(
    value: object, token: int
) -> None:
    assert parse_token(value) == token
    assert type(parse_token(value)) is int


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "0 is not an instrument token (tokens are 1 to 4294967295)"),
        (-5, "-5 is not an instrument token (tokens are 1 to 4294967295)"),
        (4294967296, "4294967296 is not an instrument token (tokens are 1 to 4294967295)"),
        ("99999999999", "99999999999 is not an instrument token (tokens are 1 to 4294967295)"),
        (True, "True is neither an instrument token nor EXCHANGE:TRADINGSYMBOL"),
        (408065.0, "408065.0 is neither an instrument token nor EXCHANGE:TRADINGSYMBOL"),
        ("INFY", '"INFY" is neither an instrument token nor EXCHANGE:TRADINGSYMBOL'),
        ("²", '"²" is neither an instrument token nor EXCHANGE:TRADINGSYMBOL'),
        ("-5", '"-5" is neither an instrument token nor EXCHANGE:TRADINGSYMBOL'),
        (None, "None is neither an instrument token nor EXCHANGE:TRADINGSYMBOL"),
    ],
)
def test_anything_else_is_refused_with_one_line(value: object, message: str) -> None:
    with pytest.raises(SymbolError) as caught:
        parse_token(value)
    assert str(caught.value) == message
    assert caught.value.given == value
    assert caught.value.closest == ()
    assert isinstance(caught.value, KitefanError)


def test_a_mode_is_a_mode_or_its_wire_string() -> None:
    assert [parse_mode(m) for m in ("ltp", "quote", "full", Mode.FULL)] == [
        Mode.LTP,
        Mode.QUOTE,
        Mode.FULL,
        Mode.FULL,
    ]
    for bad, shown in (("FULL", '"FULL"'), ("fulll", '"fulll"'), (2, "2"), (None, "None")):
        with pytest.raises(SymbolError) as caught:
            parse_mode(bad)
        assert str(caught.value) == f"{shown} is not a mode (ltp, quote or full)"


def test_spec_of_resolves_names_through_the_dump_and_keeps_what_streams() -> None:
    def of(item: object, index: object = INDEX) -> SymbolSpec:
        return spec_of(
            item,
            mode=Mode.LTP,
            by_token=STREAMING,
            by_name=NAMES,
            index=INDEX if index is INDEX else None,
        )

    assert of("NSE:INFY") == SymbolSpec(408065, "NSE:INFY", Mode.LTP)
    assert of(408065) == SymbolSpec(408065, "NSE:INFY", Mode.LTP)
    assert of("408065", None) == SymbolSpec(408065, "408065", Mode.LTP)
    assert of("NSE:NIFTY 50", None) is NIFTY  # streaming: no dump needed
    assert of(256265) is NIFTY
    assert of(SymbolSpec(5, "", "full", "a")) == SymbolSpec(5, "5", Mode.FULL, "a")  # type: ignore[arg-type]  # a mode by name: the test
    with pytest.raises(SymbolError) as caught:
        of("NSE:INFYY")
    assert str(caught.value) == 'unknown symbol "NSE:INFYY"; closest: NSE:INFY'
    assert caught.value.closest == ("NSE:INFY",)
    with pytest.raises(SymbolError) as caught:
        of(SymbolSpec(2**32, "x", Mode.FULL))
    assert str(caught.value) == "4294967296 is not an instrument token (tokens are 1 to 4294967295)"
    with pytest.raises(SymbolError) as caught:
        of(SymbolSpec(5, "x", "fast"))  # type: ignore[arg-type]  # a bad mode: the test
    assert str(caught.value) == '"fast" is not a mode (ltp, quote or full)'


# The manager's boundary ----------------------------------------------------------------------


async def test_names_resolve_through_the_configs_dump(tmp_path: Path) -> None:
    dump = tmp_path / "instruments.csv"
    dump.write_text(DUMP)
    feed = FeedManager(config(dump))
    change = feed.subscribe(["NSE:INFY", "2953217", 738561], mode="full")
    assert sorted(s.token for s in change.added) == [408065, 738561, 2953217]
    assert feed.symbol(408065) == SymbolSpec(408065, "NSE:INFY", Mode.FULL)
    # A decimal string is a token; the name comes from the dump only when it was read.
    assert feed.symbol(2953217) == SymbolSpec(2953217, "NSE:TCS", Mode.FULL)
    assert feed.symbol(738561) == SymbolSpec(738561, "NSE:RELIANCE", Mode.FULL)
    assert all(type(mode) is Mode for _, _, mode in placed(feed).values())
    feed.set_mode(["NSE:INFY"], "ltp")
    assert placed(feed)[408065][2] is Mode.LTP
    feed.unsubscribe(["NSE:TCS", "738561"])
    assert sorted(placed(feed)) == [256265, 408065]


async def test_names_are_name_of_in_a_dict_made_again_only_when_the_symbols_change(
    tmp_path: Path,
) -> None:
    dump = tmp_path / "instruments.csv"
    dump.write_text(DUMP)
    feed = FeedManager(config(dump))
    names = feed.names()
    assert names == {256265: "NSE:NIFTY 50"} == {t: feed.name_of(t) for t in names}
    assert feed.names() is names  # no change, the same dict
    feed.subscribe(["NSE:INFY", 2953217], mode="quote")
    again = feed.names()
    assert again is not names
    assert again == {256265: "NSE:NIFTY 50", 408065: "NSE:INFY", 2953217: "NSE:TCS"}
    assert 99 not in again and feed.name_of(99) == "99"  # the encoder names it by its number


async def test_resolve_reads_the_dump_off_the_loop_and_its_specs_need_none(
    tmp_path: Path,
) -> None:
    dump = tmp_path / "instruments.csv"
    dump.write_text(DUMP)
    feed = FeedManager(config(dump))
    before = placed(feed)
    specs = await feed.resolve(["NSE:INFY", 738561])
    assert specs == [
        SymbolSpec(408065, "NSE:INFY", Mode.QUOTE),
        SymbolSpec(738561, "NSE:RELIANCE", Mode.QUOTE),  # the dump was read: named
    ]
    assert placed(feed) == before  # resolving changes nothing
    dump.unlink()  # what resolve gave needs no dump any more
    change = feed.subscribe(specs, mode="full")
    assert sorted(s.token for s in change.added) == [408065, 738561]
    assert feed.symbol(408065) == SymbolSpec(408065, "NSE:INFY", Mode.FULL)
    with pytest.raises(SymbolError) as caught:
        await feed.resolve(["NSE:TCS"])
    assert str(caught.value) == (
        f'"NSE:TCS" needs the instruments dump to resolve it: {dump} does not exist: '
        "run `kitefan instruments fetch`"
    )


async def test_an_unknown_name_is_refused_with_the_closest_and_changes_nothing(
    tmp_path: Path,
) -> None:
    dump = tmp_path / "instruments.csv"
    dump.write_text(DUMP)
    feed = FeedManager(config(dump))
    before = placed(feed)
    with pytest.raises(SymbolError) as caught:
        feed.subscribe([408065, "NSE:RELAINCE"])
    assert str(caught.value) == 'unknown symbol "NSE:RELAINCE"; closest: NSE:RELIANCE'
    assert placed(feed) == before
    assert feed.symbol(408065) is None


async def test_names_without_a_dump_are_refused_saying_what_to_do(tmp_path: Path) -> None:
    for instruments, where in (
        (None, "set instruments in the config and"),
        (tmp_path / "gone.csv", f"{tmp_path / 'gone.csv'} does not exist:"),
    ):
        feed = FeedManager(config(instruments))
        with pytest.raises(SymbolError) as caught:
            feed.subscribe(["NSE:INFY"])
        assert str(caught.value) == (
            f'"NSE:INFY" needs the instruments dump to resolve it: {where} '
            "run `kitefan instruments fetch`"
        )
        # A name the feed streams needs no dump.
        feed.set_mode(["NSE:NIFTY 50"], Mode.LTP)
        assert placed(feed)[256265][2] is Mode.LTP


# A call mypy refuses is ignored on purpose: these are the wrong arguments a caller without a type
# checker passes, and what kitefan answers to them is the test.
BAD_CALLS: dict[str, Callable[[FeedManager], object]] = {
    "subscribe-range": lambda feed: feed.subscribe([408065, 2**32]),
    "subscribe-mode": lambda feed: feed.subscribe([408065], mode="FULL"),
    "subscribe-str": lambda feed: feed.subscribe("408065"),
    "subscribe-int": lambda feed: feed.subscribe(408065),  # type: ignore[arg-type]  # see BAD_CALLS
    "subscribe-none": lambda feed: feed.subscribe(None),  # type: ignore[arg-type]  # see BAD_CALLS
    "unsubscribe": lambda feed: feed.unsubscribe([256265, "INFY"]),
    "set_mode-token": lambda feed: feed.set_mode([256265, 0], Mode.LTP),
    "set_mode-mode": lambda feed: feed.set_mode([256265], "fast"),
}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("subscribe-range", "4294967296 is not an instrument token (tokens are 1 to 4294967295)"),
        ("subscribe-mode", '"FULL" is not a mode (ltp, quote or full)'),
        ("subscribe-str", "symbols must be a list of tokens, names or specs, not '408065'"),
        ("subscribe-int", "symbols must be a list of tokens, names or specs, not 408065"),
        ("subscribe-none", "symbols must be a list of tokens, names or specs, not None"),
        ("unsubscribe", '"INFY" is neither an instrument token nor EXCHANGE:TRADINGSYMBOL'),
        ("set_mode-token", "0 is not an instrument token (tokens are 1 to 4294967295)"),
        ("set_mode-mode", '"fast" is not a mode (ltp, quote or full)'),
    ],
)
async def test_bad_input_raises_before_anything_changes(call: str, message: str) -> None:
    feed = FeedManager(config())
    before = placed(feed)
    with pytest.raises(SymbolError) as caught:
        BAD_CALLS[call](feed)
    assert str(caught.value) == message
    assert placed(feed) == before
    assert feed.never_ticked() == []


async def test_a_spec_given_is_checked_and_keeps_its_pin() -> None:
    feed = FeedManager(config())
    feed.subscribe([SymbolSpec(408065, "NSE:INFY", "full", "a")])  # type: ignore[arg-type]  # a mode by name: the test
    assert placed(feed)[408065] == ("a", 0, Mode.FULL)
    with pytest.raises(SymbolError) as caught:
        feed.subscribe([SymbolSpec(408065, "NSE:INFY", Mode.FULL, 7)])  # type: ignore[arg-type]  # a bad pin: the test
    assert str(caught.value) == "the key of 408065 must be a key id, not 7"


async def test_subscribes_reading_the_dump_one_after_the_other_all_take_effect(
    tmp_path: Path,
) -> None:
    dump = tmp_path / "instruments.csv"
    dump.write_text(DUMP)
    feed = FeedManager(config(dump))
    feed.subscribe(["NSE:INFY"])
    feed.subscribe(["NSE:TCS"])
    feed.unsubscribe([256265])
    assert sorted(placed(feed)) == [408065, 2953217]
