"""A config from TOML text or from a mapping, checked as a file is, and settings left unused."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from datetime import date
from pathlib import Path
from types import MappingProxyType

import pytest
from app_configs import config_file

from kitefan.config import config_from_dict, load_config_text
from kitefan.errors import ConfigError
from kitefan.instruments import INSTRUMENTS_HEADER
from kitefan.loader import load_config
from kitefan.models import Mode
from kitefan.settings import AppConfig, SymbolSpec

TODAY = date(2026, 11, 27)
ENV = {"KITE_ACCESS_TOKEN_1": "token-one-000001"}
DUMP = "\n".join(
    [
        ",".join(INSTRUMENTS_HEADER),
        "408065,1594,INFY,INFOSYS,1605.25,,0.0,0.1,1,EQ,NSE,NSE",
        "2953217,11536,TCS,TATA CONSULTANCY SERV LT,3410.8,,0.0,0.1,1,EQ,NSE,NSE",
        "12100002,47265,NIFTY26D0126000PE,NIFTY,117.25,2026-12-01,26000.0,0.05,75,PE,NFO-OPT,NFO",
        "",
    ]
)
TEXT = """\
instruments = "data/instruments.csv"

[[keys]]
id = "a"
api_key = "key-aaaa-1111"
access_token = "${KITE_ACCESS_TOKEN_1}"
symbols = ["NSE:TCS"]

[symbols]
quote = ["NSE:INFY"]
files = ["watchlist.txt"]

[[select]]
exchange = "NFO"
expiry = "nearest"
mode = "full"
"""


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "instruments.csv").write_text(DUMP)
    (tmp_path / "watchlist.txt").write_text("408065:ltp\n")
    return tmp_path


def without_source(config: AppConfig) -> AppConfig:
    return dataclasses.replace(config, source="")


def test_text_and_a_mapping_give_what_the_file_gives(base: Path) -> None:
    path = config_file(base / "kitefan.toml", TEXT)
    from_file = load_config(path, environ=ENV, today=TODAY)
    from_text = load_config_text(TEXT, base=base, environ=ENV, today=TODAY)
    from_dict = config_from_dict(tomllib.loads(TEXT), base=base, environ=ENV, today=TODAY)
    assert from_file.symbols == (
        SymbolSpec(2953217, "NSE:TCS", Mode.QUOTE, "a"),
        SymbolSpec(408065, "NSE:INFY", Mode.QUOTE),
        SymbolSpec(12100002, "NFO:NIFTY26D0126000PE", Mode.FULL),
    )
    assert without_source(from_text) == without_source(from_file)
    assert without_source(from_dict) == without_source(from_file)
    assert (from_text.source, from_dict.source) == ("<string>", "<dict>")
    assert from_text.instruments == base / "data" / "instruments.csv"


def test_relative_paths_resolve_against_the_current_directory_by_default(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(base)
    config = load_config_text(TEXT, environ=ENV, today=TODAY)
    assert config.instruments == base / "data" / "instruments.csv"
    assert config.instruments.is_absolute()


def test_a_mapping_may_use_tuples_read_only_mappings_and_dates(tmp_path: Path) -> None:
    (tmp_path / "instruments.csv").write_text(DUMP)
    original: dict[str, object] = {
        "instruments": "instruments.csv",
        "keys": ({"id": "a", "api_key": "key-aaaa-1111", "access_token": "token-a-0000001"},),
        "symbols": {"full": (408065,)},
        "select": [{"exchange": "NFO", "expiry": date(2026, 12, 1)}],
    }
    before = copy.deepcopy(original)
    mapping = MappingProxyType(original)
    config = config_from_dict(mapping, base=tmp_path, environ={}, today=TODAY)
    assert [(s.token, s.mode) for s in config.symbols] == [
        (408065, Mode.FULL),
        (12100002, Mode.QUOTE),
    ]
    assert original == before  # not changed


def test_problems_of_text_and_mappings_are_the_files_problems_with_their_source() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text('url = "ws://x"\nmode = \n', environ={})
    assert str(caught.value) == "<string>: line 2, column 8: invalid TOML: invalid value"
    text = 'mode = "fast"\n[[keys]]\nid = "a"\napi_key = "${NOPE}"\naccess_token = "t0000001"\n'
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, source="strategy.py", environ={})
    assert caught.value.source == "strategy.py"
    assert caught.value.problems == [
        'mode: must be one of ltp, quote, full, not "fast"',
        "keys[0].api_key: environment variable NOPE is not set",
    ]
    with pytest.raises(ConfigError) as caught:
        config_from_dict(tomllib.loads(text), environ={})
    assert str(caught.value) == f"<dict>: 2 problems: {'; '.join(caught.value.problems)}"
    assert caught.value.problems[1] == "keys[0].api_key: environment variable NOPE is not set"


def test_a_mapping_that_toml_could_not_hold_is_a_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"keys": [{"id": "a", 1: "x"}], "symbols": {("q",): []}}, environ={})
    assert caught.value.problems == [
        "keys[0].1: a setting's name must be a string",
        "symbols.('q',): a setting's name must be a string",
    ]
    with pytest.raises(ConfigError) as caught:
        config_from_dict([("keys", [])], environ={})  # type: ignore[arg-type]  # a list where a mapping goes: the test
    assert str(caught.value) == "<dict>: must be a mapping of settings, not list"


def test_a_literal_token_in_text_gets_no_file_permission_warning() -> None:
    text = '[[keys]]\nid = "a"\napi_key = "key-aaaa-1111"\naccess_token = "token-a-0000001"\n'
    assert load_config_text(text, environ={}).warnings == ()


def test_settings_left_unused_are_not_read_and_keep_their_defaults() -> None:
    text = (
        'url = "${UNSET_URL}"\napi_root = "ftp://nowhere"\n'
        '[publish]\nurl = "${UNSET_REDIS}"\n'
        '[[keys]]\nid = "a"\napi_key = "key-aaaa-1111"\naccess_token = "${KITE_ACCESS_TOKEN_1}"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ=ENV)
    assert caught.value.problems == [
        "url: environment variable UNSET_URL is not set",
        'api_root: must start with http:// or https://, not "ftp://nowhere"',
        "publish.url: environment variable UNSET_REDIS is not set",
    ]
    config = load_config_text(text, environ=ENV, unused=("url", "api_root", "publish"))
    assert (config.url, config.api_root, config.publish) == (
        "wss://ws.kite.trade",
        "https://api.kite.trade",
        None,
    )
    assert config.keys[0].credential.access_token == "token-one-000001"
    with pytest.raises(ValueError, match="unused must name settings of url, api_root, publish"):
        load_config_text(text, environ=ENV, unused=("keys",))
