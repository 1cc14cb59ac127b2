"""The config loader: what a valid file becomes, and the exact message of every problem."""

from __future__ import annotations

import os
import shutil
import tomllib
from dataclasses import FrozenInstanceError, fields
from datetime import date
from pathlib import Path

import pytest

from kitefan.config import (
    AppConfig,
    Credential,
    KeyConfig,
    Strategy,
    SymbolSpec,
    Tuning,
    demo_config_path,
    dump_config,
    find_config_path,
    load_config,
    mask,
    select_symbols,
    starter_config,
)
from kitefan.errors import ConfigError
from kitefan.instruments import INSTRUMENTS_HEADER
from kitefan.models import Mode

REPO = Path(__file__).parent.parent
TODAY = date(2026, 11, 27)
ENV = {"KITE_ACCESS_TOKEN_1": "token-one-000001", "KITE_ACCESS_TOKEN_2": "token-two-000002"}

DUMP = "\n".join(
    [
        ",".join(INSTRUMENTS_HEADER),
        "738561,2885,RELIANCE,RELIANCE INDUSTRIES,1520.4,,0.0,0.1,1,EQ,NSE,NSE",
        "408065,1594,INFY,INFOSYS,1605.25,,0.0,0.1,1,EQ,NSE,NSE",
        "2953217,11536,TCS,TATA CONSULTANCY SERV LT,3410.8,,0.0,0.1,1,EQ,NSE,NSE",
        "779521,3045,SBIN,STATE BANK OF INDIA,962.15,,0.0,0.05,1,EQ,NSE,NSE",
        "884737,3456,TATAMOTORS,TATA MOTORS,712.45,,0.0,0.05,1,EQ,NSE,NSE",
        "256265,1001,NIFTY 50,NIFTY 50,26150.35,,0.0,0.0,0,EQ,INDICES,NSE",
        "12000002,46875,NIFTY26N2426000CE,NIFTY,1.0,2026-11-24,26000.0,0.05,75,CE,NFO-OPT,NFO",
        "12100002,47265,NIFTY26D0126000PE,NIFTY,117.25,2026-12-01,26000.0,0.05,75,PE,NFO-OPT,NFO",
        "12100258,47266,NIFTY26D0126000CE,NIFTY,210.5,2026-12-01,26000.0,0.05,75,CE,NFO-OPT,NFO",
        "12200002,47656,NIFTY26DEC26000CE,NIFTY,477.95,2026-12-29,26000.0,0.05,75,CE,NFO-OPT,NFO",
        "12300002,48046,NIFTY26DECFUT,NIFTY,26248.6,2026-12-29,0.0,0.05,75,FUT,NFO-FUT,NFO",
        "",
    ]
)

# The config example of the product design (docs/behaviour.md, "Config"), exactly as written.
DESIGN_EXAMPLE = """\
url = "wss://ws.kite.trade"        # the simulator's ws:// URL for tests and demos
strategy = "round-robin"           # "round-robin" | "manual" | "least-loaded"
mode = "quote"                     # mode for symbols listed without one
max_connections_per_key = 3        # Kite's limit; lower it to leave slots for other programs
max_symbols_per_connection = 3000  # Kite's limit
instruments = "instruments.csv"    # optional: the instruments dump, to resolve EXCHANGE:TRADINGSYMBOL

[[keys]]
id = "account1"
api_key = "abcd1234"
access_token = "${KITE_ACCESS_TOKEN_1}"   # ${VAR} reads the environment; never stored in the plan

[[keys]]
id = "account2"
api_key = "efgh5678"
access_token = "${KITE_ACCESS_TOKEN_2}"
symbols = ["NSE:RELIANCE", 256265]         # pinned to this key

[symbols]
quote = ["NSE:INFY", 408065, 738561]
full = ["NSE:NIFTY 50"]
ltp = []
files = ["watchlist.txt"]                  # one symbol per line, optional ":mode" suffix

[[select]]                                 # pick from the instruments dump, for large universes
exchange = "NFO"
name = "NIFTY"
instrument_type = ["CE", "PE"]
expiry = "nearest"                         # or "YYYY-MM-DD"
mode = "full"
"""  # noqa: E501

KEY = """
[[keys]]
id = "a"
api_key = "key-aaaa-1111"
access_token = "${KITE_ACCESS_TOKEN_1}"
"""


def write(directory: Path, text: str, name: str = "kitefan.toml", mode: int = 0o600) -> Path:
    path = directory / name
    path.write_text(text)
    path.chmod(mode)
    return path


def load(path: Path, environ: dict[str, str] | None = None) -> AppConfig:
    return load_config(path, environ=ENV if environ is None else environ, today=TODAY)


def problems_of(directory: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = write(directory, text)
    with pytest.raises(ConfigError) as caught:
        load(path, environ)
    assert caught.value.source == str(path)
    return caught.value.problems


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    path = tmp_path / "instruments.csv"
    path.write_text(DUMP)
    return path


# A valid config ---------------------------------------------------------------------------------


def test_the_design_example_loads(tmp_path: Path, dump: Path) -> None:
    (tmp_path / "watchlist.txt").write_text(
        "# my watchlist\nNSE:TCS\n\nNSE:SBIN:ltp   # cheap\n884737:full\n"
    )
    config = load(write(tmp_path, DESIGN_EXAMPLE))
    assert config.url == "wss://ws.kite.trade"
    assert config.strategy is Strategy.ROUND_ROBIN
    assert config.mode is Mode.QUOTE
    assert (config.max_connections_per_key, config.max_symbols_per_connection) == (3, 3000)
    assert config.instruments == dump
    assert config.api_root == "https://api.kite.trade"
    assert config.tuning == Tuning()
    assert config.keys == (
        KeyConfig("account1", Credential("abcd1234", "token-one-000001")),
        KeyConfig("account2", Credential("efgh5678", "token-two-000002"), (738561, 256265)),
    )
    assert config.symbols == (
        SymbolSpec(738561, "NSE:RELIANCE", Mode.QUOTE, "account2"),
        SymbolSpec(256265, "NSE:NIFTY 50", Mode.FULL, "account2"),
        SymbolSpec(408065, "NSE:INFY", Mode.QUOTE),
        SymbolSpec(2953217, "NSE:TCS", Mode.QUOTE),
        SymbolSpec(779521, "NSE:SBIN", Mode.LTP),
        SymbolSpec(884737, "NSE:TATAMOTORS", Mode.FULL),
        SymbolSpec(12100258, "NFO:NIFTY26D0126000CE", Mode.FULL),
        SymbolSpec(12100002, "NFO:NIFTY26D0126000PE", Mode.FULL),
    )
    assert config.warnings == (
        "NSE:INFY is listed 2 times (symbols.quote[0], symbols.quote[1]); streaming it in "
        "quote, the highest mode asked",
    )
    assert config.capacity == 18000


def test_defaults_and_a_token_only_config_need_no_dump(tmp_path: Path) -> None:
    config = load(write(tmp_path, KEY + "[symbols]\nquote = [408065, '738561']\n"))
    assert config == AppConfig(
        source=str(tmp_path / "kitefan.toml"),
        url="wss://ws.kite.trade",
        strategy=Strategy.ROUND_ROBIN,
        mode=Mode.QUOTE,
        max_connections_per_key=3,
        max_symbols_per_connection=3000,
        keys=(KeyConfig("a", Credential("key-aaaa-1111", "token-one-000001")),),
        symbols=(
            SymbolSpec(408065, "408065", Mode.QUOTE),
            SymbolSpec(738561, "738561", Mode.QUOTE),
        ),
    )


def test_tokens_are_named_when_the_dump_exists(tmp_path: Path, dump: Path) -> None:
    text = 'instruments = "instruments.csv"\n' + KEY + "[symbols]\nltp = [408065, 99]\n"
    config = load(write(tmp_path, text))
    assert config.symbols == (
        SymbolSpec(408065, "NSE:INFY", Mode.LTP),
        SymbolSpec(99, "99", Mode.LTP),
    )


def test_every_setting_is_read(tmp_path: Path) -> None:
    text = """
url = "ws://127.0.0.1:${PORT}/feed"
api_root = "http://127.0.0.1:9/"
strategy = "least-loaded"
mode = "full"
max_connections_per_key = 2
max_symbols_per_connection = 100
[tuning]
connect_timeout_s = 3
liveness_timeout_s = 2.5
backoff_initial_s = 0.5
backoff_max_s = 0.5
backoff_factor = 1
backoff_jitter = 0
auth_retry_s = 60
subscribe_batch = 3000
queue_max_ticks = 1
failover = false
fetch_timeout_s = 1
close_timeout_s = 0.25
slot_retry_s = 5
overflow = "drop-newest"
""" + KEY.replace("${KITE_ACCESS_TOKEN_1}", "${KITE_ACCESS_TOKEN_1}-${PORT}")
    config = load(write(tmp_path, text), {**ENV, "PORT": "8765"})
    assert config.url == "ws://127.0.0.1:8765/feed"
    assert config.api_root == "http://127.0.0.1:9"
    assert (config.strategy, config.mode) == (Strategy.LEAST_LOADED, Mode.FULL)
    assert (config.max_connections_per_key, config.max_symbols_per_connection) == (2, 100)
    assert config.keys[0].credential.access_token == "token-one-000001-8765"
    assert config.tuning == Tuning(
        connect_timeout_s=3.0,
        liveness_timeout_s=2.5,
        backoff_initial_s=0.5,
        backoff_max_s=0.5,
        backoff_factor=1.0,
        backoff_jitter=0.0,
        auth_retry_s=60.0,
        subscribe_batch=3000,
        queue_max_ticks=1,
        failover=False,
        fetch_timeout_s=1.0,
        close_timeout_s=0.25,
        slot_retry_s=5.0,
        overflow="drop-newest",
    )
    assert isinstance(config.tuning.connect_timeout_s, float)


def test_config_objects_are_immutable(tmp_path: Path) -> None:
    config = load(write(tmp_path, KEY))
    with pytest.raises(FrozenInstanceError):
        config.url = "ws://elsewhere"  # type: ignore[misc]  # assigning a frozen field is the test


def test_relative_paths_resolve_against_the_config_directory(
    tmp_path: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    shutil.move(dump, conf / "instruments.csv")
    (conf / "lists").mkdir()
    (conf / "lists" / "w.txt").write_text("NSE:INFY\n")
    text = 'instruments = "instruments.csv"\n' + KEY + '[symbols]\nfiles = ["lists/w.txt"]\n'
    write(conf, text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load(Path("../conf/kitefan.toml"))
    assert config.instruments == (elsewhere / "../conf/instruments.csv").absolute()
    assert config.symbols == (SymbolSpec(408065, "NSE:INFY", Mode.QUOTE),)


def test_symbols_come_in_document_order(tmp_path: Path) -> None:
    text = "[symbols]\nfull = [3]\nquote = [2, 1]\n" + KEY + "symbols = [4, 1]\n"
    config = load(write(tmp_path, text))
    assert [(s.token, s.mode, s.key) for s in config.symbols] == [
        (3, Mode.FULL, None),
        (2, Mode.QUOTE, None),
        (1, Mode.QUOTE, "a"),
        (4, Mode.QUOTE, "a"),
    ]
    assert config.keys[0].pinned == (1, 4)


def test_a_symbol_listed_twice_keeps_its_highest_mode_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text("7:ltp\n7:FULL\n7\n")
    text = KEY + '[symbols]\nltp = [7, 8]\nquote = [8]\nfiles = ["w.txt"]\n'
    config = load(write(tmp_path, text))
    assert config.symbols == (SymbolSpec(7, "7", Mode.FULL), SymbolSpec(8, "8", Mode.QUOTE))
    assert config.warnings == (
        "7 is listed 4 times (symbols.ltp[0], w.txt:1, w.txt:2, …); streaming it in full, "
        "the highest mode asked",
        "8 is listed 2 times (symbols.ltp[1], symbols.quote[0]); streaming it in quote, "
        "the highest mode asked",
    )


def test_many_duplicates_are_summarised(tmp_path: Path) -> None:
    text = KEY + f"[symbols]\nltp = {list(range(1, 9))}\nquote = {list(range(1, 9))}\n"
    config = load(write(tmp_path, text))
    assert len(config.symbols) == 8
    assert len(config.warnings) == 6
    assert config.warnings[-1] == (
        "… and 3 more symbols listed more than once, each streaming in the highest mode asked"
    )


def test_a_pin_takes_the_mode_listed_elsewhere_without_a_warning(tmp_path: Path) -> None:
    text = 'mode = "ltp"\n' + KEY + "symbols = [5, 6]\n[symbols]\nfull = [5]\n"
    config = load(write(tmp_path, text))
    assert config.symbols == (SymbolSpec(5, "5", Mode.FULL, "a"), SymbolSpec(6, "6", Mode.LTP, "a"))
    assert config.warnings == ()


def test_select_picks_from_the_dump(tmp_path: Path, dump: Path) -> None:
    text = (
        'instruments = "instruments.csv"\n'
        + KEY
        + """
[[select]]
exchange = "nfo"
name = "NIFTY"
expiry = 2026-12-29

[[select]]
segment = ["NFO-OPT"]
instrument_type = "CE"
expiry = ["2026-11-24", "2026-12-01"]
mode = "ltp"
"""
    )
    config = load(write(tmp_path, text))
    assert config.symbols == (
        SymbolSpec(12300002, "NFO:NIFTY26DECFUT", Mode.QUOTE),
        SymbolSpec(12200002, "NFO:NIFTY26DEC26000CE", Mode.QUOTE),
        SymbolSpec(12000002, "NFO:NIFTY26N2426000CE", Mode.LTP),
        SymbolSpec(12100258, "NFO:NIFTY26D0126000CE", Mode.LTP),
    )


def test_access_token_file_is_read_stripped_and_reread_on_every_load(tmp_path: Path) -> None:
    token_file = tmp_path / "a.token"
    token_file.write_text("  first-token-0001\n")
    token_file.chmod(0o600)
    text = KEY.replace('access_token = "${KITE_ACCESS_TOKEN_1}"', 'access_token_file = "a.token"')
    path = write(tmp_path, text)
    assert load(path).keys[0].credential.access_token == "first-token-0001"
    token_file.write_text("second-token-0002\n")
    assert load(path).keys[0].credential.access_token == "second-token-0002"
    assert load(path).warnings == ()


def test_a_token_file_others_can_read_gets_a_warning(tmp_path: Path) -> None:
    token_file = tmp_path / "a.token"
    token_file.write_text("first-token-0001\n")
    token_file.chmod(0o644)
    text = KEY.replace('access_token = "${KITE_ACCESS_TOKEN_1}"', 'access_token_file = "a.token"')
    assert load(write(tmp_path, text)).warnings == (
        f"keys[0].access_token_file: {token_file} holds an access token and others can read it; "
        f"chmod 600 {token_file}",
    )


LITERAL = KEY.replace("${KITE_ACCESS_TOKEN_1}", "literal-token-0001")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_literal_token_in_a_readable_file_gets_a_warning(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, LITERAL, mode=mode)
    assert load(path).warnings == (
        f"keys[0].access_token: a literal access token in {path}, which others can read; "
        f"chmod 600 {path}, or use ${{VAR}} or access_token_file",
    )


def test_no_warning_for_a_private_file_or_a_token_from_the_environment(tmp_path: Path) -> None:
    assert load(write(tmp_path, LITERAL, mode=0o600)).warnings == ()
    assert load(write(tmp_path, KEY, mode=0o644)).warnings == ()


def test_the_demo_config_loads_without_warnings() -> None:
    config = load_config(demo_config_path(), environ={})
    assert [key.id for key in config.keys] == ["alpha", "bravo", "charlie"]
    assert config.keys[0].credential == Credential("demo-alpha-key", "demo-alpha-token-0001")
    assert config.url == "ws://127.0.0.1:8765"
    assert config.strategy is Strategy.ROUND_ROBIN
    assert config.instruments == REPO / "configs" / "demo-instruments.csv"
    assert config.warnings == ()
    assert len(config.symbols) == 64
    by_mode = {mode: sum(1 for s in config.symbols if s.mode is mode) for mode in Mode}
    assert by_mode == {Mode.FULL: 6, Mode.QUOTE: 50, Mode.LTP: 8}
    names = {s.name: s for s in config.symbols}
    assert names["NSE:RELIANCE"] == SymbolSpec(738561, "NSE:RELIANCE", Mode.FULL)
    assert names["NSE:NIFTY 50"] == SymbolSpec(256265, "NSE:NIFTY 50", Mode.FULL, "alpha")
    assert names["BSE:SENSEX"].token == 265
    assert names["CDS:USDINR26DECFUT"] == SymbolSpec(
        2103555, "CDS:USDINR26DECFUT", Mode.LTP, "charlie"
    )


def test_the_example_config_loads_with_its_files(tmp_path: Path) -> None:
    shutil.copy(REPO / "configs" / "example.toml", tmp_path / "kitefan.toml")
    shutil.copy(REPO / "configs" / "demo-instruments.csv", tmp_path / "instruments.csv")
    (tmp_path / "watchlist.txt").write_text("NSE:SBIN:full\nNSE:ITC\n")
    (tmp_path / "family.token").write_text("family-token-0001\n")
    (tmp_path / "family.token").chmod(0o600)
    env = {
        "KITE_API_KEY_MAIN": "main-key-0001",
        "KITE_ACCESS_TOKEN_MAIN": "main-token-0001",
        "KITE_API_KEY_FAMILY": "family-key-0001",
    }
    config = load(tmp_path / "kitefan.toml", env)
    assert [(k.id, k.credential.access_token) for k in config.keys] == [
        ("main", "main-token-0001"),
        ("family", "family-token-0001"),
    ]
    names = [s.name for s in config.symbols]
    assert names[:2] == ["NSE:NIFTY 50", "NSE:NIFTY BANK"]
    assert "CDS:USDINR26DECFUT" in names
    assert sum(1 for name in names if name.startswith("NFO:NIFTY26D01")) == 12
    assert config.warnings == ()


def test_secrets_stay_out_of_repr_and_str() -> None:
    credential = Credential("SENTINELAPIKEY42", "SENTINELTOKEN42")
    key = KeyConfig("a", credential)
    for text in (repr(credential), str(credential), repr(key)):
        assert "SENTINELAPIKEY42" not in text
        assert "SENTINELTOKEN42" not in text
    assert str(credential) == "Credential(api_key=SENT…42, access_token=SENT…42)"


@pytest.mark.parametrize(
    ("secret", "shown"), [("abcd1234", "abcd…34"), ("abcdefg", "abcd…fg"), ("abcdef", "…")]
)
def test_mask(secret: str, shown: str) -> None:
    assert mask(secret) == shown


# Problems, each with its place ------------------------------------------------------------------

SPLIT = "[[keys]]\nid = 'b'\napi_key = 'key-bbbb'\naccess_token = '${KITE_ACCESS_TOKEN_2}'\n"


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        pytest.param(
            'stratgy = "manual"\n' + KEY,
            ["stratgy: unknown key (did you mean strategy?)"],
            id="typo-top",
        ),
        pytest.param(
            KEY + "[[keys]]\nid = 'b'\naccess_token = '${KITE_ACCESS_TOKEN_2}'\n",
            ["keys[1].api_key: missing"],
            id="missing-api-key",
        ),
        pytest.param(
            KEY.replace("KITE_ACCESS_TOKEN_1", "KITE_TOKEN_X"),
            ["keys[0].access_token: environment variable KITE_TOKEN_X is not set"],
            id="missing-var",
        ),
        pytest.param(
            KEY.replace("access_token", "acess_token"),
            [
                "keys[0].acess_token: unknown key (did you mean access_token?)",
                "keys[0].access_token: missing (or set access_token_file)",
            ],
            id="typo-in-key",
        ),
        pytest.param(
            KEY + 'mode = "full"\n',
            [
                "keys[0].mode: unknown key (mode is a top-level setting: move it above the first "
                "[table] of the file)"
            ],
            id="setting-below-a-table",
        ),
        pytest.param(
            KEY + "access_token_file = 'x'\n",
            ["keys[0]: access_token and access_token_file are both set; keep one"],
            id="two-tokens",
        ),
        pytest.param(
            KEY + "access_token_file = 'nope.token'\n",
            ["keys[0]: access_token and access_token_file are both set; keep one"],
            id="two-tokens-missing-file",
        ),
        pytest.param(
            KEY + SPLIT.replace("'b'", "'a'"),
            ['keys[1].id: "a" is already the id of keys[0]'],
            id="duplicate-id",
        ),
        pytest.param(
            "[[keys]]\napi_key = 123\naccess_token = ''\n",
            [
                "keys[0].id: missing",
                "keys[0].api_key: must be a string",
                "keys[0].access_token: empty",
            ],
            id="bad-key-fields",
        ),
        pytest.param(
            "url = 'wss://x'\n",
            ["keys: missing; add a [[keys]] table with id, api_key and access_token"],
            id="no-keys",
        ),
        pytest.param(
            "keys = []\n",
            ["keys: empty; add a [[keys]] table with id, api_key and access_token"],
            id="empty-keys",
        ),
        pytest.param(
            'strategy = "roundrobin"\nmode = "depth"\n' + KEY,
            [
                'strategy: must be one of round-robin, least-loaded, manual, not "roundrobin"',
                'mode: must be one of ltp, quote, full, not "depth"',
            ],
            id="choices",
        ),
        pytest.param(
            "max_connections_per_key = 4\nmax_symbols_per_connection = '3000'\n" + KEY,
            [
                "max_connections_per_key: must be an integer from 1 to 3, not 4",
                'max_symbols_per_connection: must be an integer from 1 to 3000, not "3000"',
            ],
            id="limits",
        ),
        pytest.param(
            "url = 'https://ws.kite.trade'\napi_root = 'ftp://x'\n" + KEY,
            [
                'url: must start with ws:// or wss://, not "https://ws.kite.trade"',
                'api_root: must start with http:// or https://, not "ftp://x"',
            ],
            id="urls",
        ),
        pytest.param(
            "url = 'wss://ws.kite.trade/?api_key=abcd1234&access_token=tok-secret#top'\n" + KEY,
            [
                "url: must not have a query (kitefan adds api_key and access_token itself): "
                'write "wss://ws.kite.trade/"',
                'url: must not have a fragment: write "wss://ws.kite.trade/"',
            ],
            id="url-query-and-fragment",
        ),
        pytest.param(
            "url = 'ws://127.0.0.1:8765/feed#x'\n" + KEY,
            ['url: must not have a fragment: write "ws://127.0.0.1:8765/feed"'],
            id="url-fragment",
        ),
        pytest.param(
            "url = 'ws://127.0.0.1:70000'\n" + KEY,
            ["url: port 70000 is out of range; a port is 1 to 65535"],
            id="url-port-out-of-range",
        ),
        pytest.param(
            "url = 'ws://[::1]:0'\n" + KEY,
            ["url: port 0 is out of range; a port is 1 to 65535"],
            id="url-port-zero",
        ),
        pytest.param(
            "url = 'ws://localhost:http'\n" + KEY,
            ['url: port "http" is not a number; a port is 1 to 65535'],
            id="url-port-not-a-number",
        ),
        pytest.param(
            "url = 'wss://me:pass-secret@ws.kite.trade'\n" + KEY,
            [
                "url: must not carry a user or password (kitefan signs in with each key's "
                'api_key and access_token): write "wss://ws.kite.trade"'
            ],
            id="url-user-and-password",
        ),
        pytest.param(
            "url = 'http://me:pass-secret@ws.kite.trade/?access_token=tok-secret'\n" + KEY,
            ['url: must start with ws:// or wss://, not "http://ws.kite.trade/"'],
            id="url-scheme-hides-query-and-user",
        ),
        pytest.param(
            "url = 'ws:///feed'\n" + KEY,
            ["url: has no host; write ws://HOST:PORT or wss://HOST"],
            id="url-no-host",
        ),
        pytest.param(
            "url = 'ws://[::1'\n" + KEY,
            [
                'url: "ws://[::1" is not a URL (Invalid IPv6 URL); write ws://HOST:PORT or wss://HOST'
            ],
            id="url-unparsable",
        ),
        pytest.param(
            KEY + "[symbols]\nqoute = [1]\nquote = 5\n",
            ["symbols.qoute: unknown key (did you mean quote?)", "symbols.quote: must be an array"],
            id="symbols-table",
        ),
        pytest.param(
            KEY + "[symbols]\nquote = ['INFY', 0, true, 4294967296, '²']\n",
            [
                'symbols.quote[0]: "INFY" is neither an instrument token nor '
                "EXCHANGE:TRADINGSYMBOL",
                "symbols.quote[1]: 0 is not an instrument token",
                "symbols.quote[2]: must be an instrument token or EXCHANGE:TRADINGSYMBOL, not true",
                "symbols.quote[3]: 4294967296 is not an instrument token",
                'symbols.quote[4]: "²" is neither an instrument token nor EXCHANGE:TRADINGSYMBOL',
            ],
            id="bad-symbols",
        ),
        pytest.param(
            KEY + "[symbols]\nquote = ['NSE:INFY', 'NSE:TCS']\n",
            [
                "instruments: not set, but symbols.quote[0] and 1 more need the instruments "
                'dump; set instruments = "instruments.csv" and run `kitefan instruments fetch`'
            ],
            id="names-without-dump",
        ),
        pytest.param(
            KEY + SPLIT + "symbols = [5]\n[[keys]]\nid = 'c'\napi_key = 'k'\naccess_token = "
            "'${KITE_ACCESS_TOKEN_2}'\nsymbols = [5]\n",
            [
                'keys[2].symbols[0]: 5 is pinned to both "b" (keys[1].symbols[0]) and "c"; pin it '
                "to one key"
            ],
            id="pinned-twice",
        ),
        pytest.param(
            KEY + "[symbols]\nfiles = ['missing.txt']\n",
            ["symbols.files[0]: cannot read {dir}/missing.txt: No such file or directory"],
            id="missing-file",
        ),
        pytest.param(
            KEY + "[[select]]\nmode = 'full'\nexpiry = 'soon'\nstrike = 100\n",
            [
                "select[0].strike: unknown key (known: exchange, segment, name, instrument_type, "
                "expiry, mode)",
                'select[0].expiry: must be "nearest", a date (YYYY-MM-DD) or an array of dates, '
                'not "soon"',
            ],
            id="bad-select",
        ),
        pytest.param(
            KEY + "[[select]]\nmode = 'full'\n",
            ["select[0]: needs at least one of exchange, segment, name, instrument_type, expiry"],
            id="empty-select",
        ),
        pytest.param(
            KEY + "[tuning]\nliveness_timeout = 5\nbackoff_jitter = 1.5\nsubscribe_batch = 2.5\n"
            "failover = 'yes'\nconnect_timeout_s = 0\nqueue_max_ticks = 0\noverflow = 'drop'\n"
            "backoff_max_s = nan\n",
            [
                "tuning.liveness_timeout: unknown key (did you mean liveness_timeout_s?)",
                "tuning.backoff_jitter: must be a number from 0 to 1, not 1.5",
                "tuning.subscribe_batch: must be an integer from 1 to 3000, not 2.5",
                'tuning.failover: must be true or false, not "yes"',
                "tuning.connect_timeout_s: must be a number above 0, not 0",
                "tuning.queue_max_ticks: must be an integer of at least 1, not 0",
                'tuning.overflow: must be one of drop-oldest, drop-newest, not "drop"',
                "tuning.backoff_max_s: must be a number above 0, not nan",
            ],
            id="tuning",
        ),
        pytest.param(
            KEY + "[tuning]\nbackoff_initial_s = 10\nbackoff_max_s = 5\n",
            ["tuning.backoff_max_s: must be at least backoff_initial_s (10), not 5"],
            id="backoff-order",
        ),
        pytest.param(
            "tuning = 3\n" + KEY, ["tuning: must be a table ([tuning])"], id="tuning-type"
        ),
        pytest.param(
            'url = "wss://x"\nstrategy = "round-robin\n',
            ["line 2, column 24: invalid TOML: illegal character '\\n'"],
            id="syntax",
        ),
        pytest.param(
            '[[keys]]\nid = "a" api_key = "b"\n',
            [
                "line 2, column 10: invalid TOML: expected newline or end of document after a "
                "statement"
            ],
            id="syntax-2",
        ),
    ],
)
def test_each_problem_has_its_exact_message(tmp_path: Path, text: str, problems: list[str]) -> None:
    expected = [p.replace("{dir}", str(tmp_path)) for p in problems]
    assert problems_of(tmp_path, text) == expected


def test_all_problems_are_reported_at_once_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'stratgy = "x"\nmode = "depth"\n' + KEY.replace("api_key", "apikey"))
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == (
        f"{path}: 4 problems: stratgy: unknown key (did you mean strategy?); mode: must be one "
        'of ltp, quote, full, not "depth"; keys[0].apikey: unknown key (did you mean api_key?); '
        "keys[0].api_key: missing"
    )
    assert "\n" not in str(caught.value)


def test_an_unknown_symbol_lists_the_closest_names(tmp_path: Path, dump: Path) -> None:
    text = 'instruments = "instruments.csv"\n' + KEY + "symbols = ['NSE:RELAINCE', 'NSE:ZZZZ']\n"
    assert problems_of(tmp_path, text) == [
        'keys[0].symbols[0]: unknown symbol "NSE:RELAINCE"; closest: NSE:RELIANCE',
        'keys[0].symbols[1]: unknown symbol "NSE:ZZZZ"',
    ]


def test_a_missing_dump_is_one_problem(tmp_path: Path) -> None:
    text = 'instruments = "instruments.csv"\n' + KEY + "[symbols]\nquote = ['NSE:INFY']\n"
    assert problems_of(tmp_path, text) == [
        f"instruments: {tmp_path / 'instruments.csv'} does not exist (symbols.quote[0] needs "
        "it); run `kitefan instruments fetch`"
    ]


def test_a_select_that_matches_nothing_says_so(tmp_path: Path, dump: Path) -> None:
    text = (
        'instruments = "instruments.csv"\n'
        + KEY
        + "[[select]]\nname = 'BANKNIFTY'\n[[select]]\nname = 'NIFTY'\nexpiry = 'nearest'\n"
        "instrument_type = 'FUT'\n[[select]]\nexpiry = 'nearest'\nexchange = 'MCX'\n"
    )
    assert problems_of(tmp_path, text) == [
        "select[0]: matches no instrument in instruments.csv",
        "select[2]: no instrument with an expiry on or after 2026-11-27 matches in "
        "instruments.csv; the dump may be stale: run `kitefan instruments fetch`",
    ]


def test_file_lines_are_places(tmp_path: Path, dump: Path) -> None:
    (tmp_path / "w.txt").write_text("NSE:INFY\nNSE:TCS:fast\nNSE:INFI:full\n")
    text = 'instruments = "instruments.csv"\n' + KEY + "[symbols]\nfiles = ['w.txt']\n"
    assert problems_of(tmp_path, text) == [
        'w.txt:2: unknown mode "fast" (ltp, quote or full)',
        'w.txt:3: unknown symbol "NSE:INFI"; closest: NSE:INFY',
    ]


def test_token_file_problems(tmp_path: Path) -> None:
    (tmp_path / "empty.token").write_text("\n")
    text = KEY.replace(
        'access_token = "${KITE_ACCESS_TOKEN_1}"', 'access_token_file = "no.token"'
    ) + SPLIT.replace(
        "access_token = '${KITE_ACCESS_TOKEN_2}'", "access_token_file = 'empty.token'"
    )
    assert problems_of(tmp_path, text) == [
        f"keys[0].access_token_file: cannot read {tmp_path / 'no.token'}: No such file or "
        "directory",
        f"keys[1].access_token_file: {tmp_path / 'empty.token'} is empty",
    ]


def test_an_empty_variable_is_a_problem(tmp_path: Path) -> None:
    assert problems_of(tmp_path, KEY, {"KITE_ACCESS_TOKEN_1": " "}) == [
        "keys[0].access_token: empty (from the environment)"
    ]


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "nope.toml")
    path = tmp_path / "nope.toml"
    assert str(caught.value) == (
        f"{path}: cannot read: No such file or directory "
        f"(`kitefan init {path}` writes a starter config there)"
    )


def test_a_missing_file_with_a_space_in_its_path_is_quoted_in_the_hint(tmp_path: Path) -> None:
    path = tmp_path / "my config.toml"
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == (
        f"{path}: cannot read: No such file or directory "
        f"(`kitefan init '{path}'` writes a starter config there)"
    )


def test_a_directory_is_unreadable_without_the_init_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    assert str(caught.value) == f"{tmp_path}: cannot read: Is a directory"


def test_no_message_carries_a_secret(tmp_path: Path) -> None:
    text = (
        "[[keys]]\nid = 'a'\napi_key = 'SENTINELAPIKEY42'\naccess_token = 17\n"
        "[[keys]]\nid = 'a'\napi_key = ['SENTINELAPIKEY42']\naccess_token = 'SENTINELTOKEN42'\n"
        "bogus = 'SENTINELTOKEN42'\n"
    )
    problems = problems_of(tmp_path, text)
    assert problems == [
        "keys[0].access_token: must be a string",
        "keys[1].bogus: unknown key (known: id, api_key, access_token, access_token_file, symbols)",
        'keys[1].id: "a" is already the id of keys[0]',
        "keys[1].api_key: must be a string",
    ]


# Finding the config ---------------------------------------------------------------------------


def test_find_config_path(tmp_path: Path) -> None:
    assert find_config_path(Path("x.toml"), environ={}, cwd=tmp_path) == Path("x.toml")
    assert find_config_path(None, environ={"KITEFAN_CONFIG": "/e.toml"}, cwd=tmp_path) == Path(
        "/e.toml"
    )
    (tmp_path / "kitefan.toml").write_text("")
    assert find_config_path(None, environ={"KITEFAN_CONFIG": "/e.toml"}, cwd=tmp_path) == (
        tmp_path / "kitefan.toml"
    )


def test_no_config_anywhere(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        find_config_path(None, environ={}, cwd=tmp_path)
    assert str(caught.value) == (
        "no config: pass --config PATH, create kitefan.toml with `kitefan init`, or set "
        "KITEFAN_CONFIG"
    )


# Writing ----------------------------------------------------------------------------------------


def test_dump_config_masks_secrets_and_loads_back(tmp_path: Path, dump: Path) -> None:
    (tmp_path / "watchlist.txt").write_text("NSE:TCS\n")
    config = load(write(tmp_path, DESIGN_EXAMPLE))
    text = dump_config(config)
    for secret in ("abcd1234", "efgh5678", "token-one-000001", "token-two-000002"):
        assert secret not in text
    shown = tomllib.loads(text)
    assert shown["keys"] == [
        {"id": "account1", "api_key": "abcd…34", "access_token": "toke…01"},
        {
            "id": "account2",
            "api_key": "efgh…78",
            "access_token": "toke…02",
            "symbols": ["NSE:RELIANCE", "NSE:NIFTY 50"],
        },
    ]
    assert shown["symbols"] == {
        "full": ["NSE:NIFTY 50", "NFO:NIFTY26D0126000CE", "NFO:NIFTY26D0126000PE"],
        "quote": ["NSE:RELIANCE", "NSE:INFY", "NSE:TCS"],
    }
    assert shown["tuning"] == {f.name: getattr(Tuning(), f.name) for f in fields(Tuning)}
    assert shown["instruments"] == str(dump)
    # What it shows is itself a config that resolves to the same symbols.
    again = write(tmp_path, text, name="shown.toml")
    assert load(again).symbols == config.symbols


def test_the_starter_config_documents_every_knob_and_loads(tmp_path: Path) -> None:
    text = starter_config()
    for spec in fields(Tuning):
        assert f"# {spec.name} = " in text
    env = {"KITE_API_KEY": "starter-key-01", "KITE_ACCESS_TOKEN": "starter-token-01"}
    config = load(write(tmp_path, text), env)
    assert config.tuning == Tuning()
    assert [s.token for s in config.symbols] == [256265, 260105, 738561]
    assert os.stat(tmp_path / "kitefan.toml").st_mode & 0o777 == 0o600


# select_symbols -------------------------------------------------------------------------------


def test_select_symbols_keeps_config_specs_and_resolves_others(tmp_path: Path, dump: Path) -> None:
    (tmp_path / "watchlist.txt").write_text("")
    config = load(write(tmp_path, DESIGN_EXAMPLE))
    picked = select_symbols(config, ["NSE:NIFTY 50", "408065:ltp", "NSE:TCS", "5", "NSE:INFY:full"])
    assert picked == (
        SymbolSpec(256265, "NSE:NIFTY 50", Mode.FULL, "account2"),
        SymbolSpec(408065, "NSE:INFY", Mode.FULL),
        SymbolSpec(2953217, "NSE:TCS", Mode.QUOTE),
        SymbolSpec(5, "5", Mode.QUOTE),
    )
    with pytest.raises(ConfigError) as caught:
        select_symbols(config, ["NSE:RELAINCE", "INFY", "NSE:INFY:fast"])
    assert caught.value.problems == [
        'unknown symbol "NSE:RELAINCE"; closest: NSE:RELIANCE',
        '"INFY" is neither an instrument token nor EXCHANGE:TRADINGSYMBOL',
        '"NSE:INFY:fast": unknown mode "fast" (ltp, quote or full)',
    ]


def test_select_symbols_refuses_tokens_out_of_the_uint32_range(tmp_path: Path, dump: Path) -> None:
    (tmp_path / "watchlist.txt").write_text("")
    config = load(write(tmp_path, DESIGN_EXAMPLE))
    assert select_symbols(config, ["4294967295"]) == (
        SymbolSpec(4294967295, "4294967295", Mode.QUOTE),
    )
    with pytest.raises(ConfigError) as caught:
        select_symbols(config, ["0", "4294967296:full", "99999999999", "²"])
    assert str(caught.value).startswith("--symbols: 4 problems: ")
    assert caught.value.problems == [
        "0 is not an instrument token (tokens are 1 to 4294967295)",
        "4294967296 is not an instrument token (tokens are 1 to 4294967295)",
        "99999999999 is not an instrument token (tokens are 1 to 4294967295)",
        '"²" is neither an instrument token nor EXCHANGE:TRADINGSYMBOL',
    ]
