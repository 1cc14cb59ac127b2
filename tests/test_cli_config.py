"""The config commands end to end through the CLI: exit codes, exact stderr lines, JSON shape,
pins that freeze a plan, init, and the instruments fetch against a local HTTP server."""

from __future__ import annotations

import json
import os
import tomllib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from app_configs import config_file
from instruments_server import serve_dump
from processes import invoke
from typer.testing import Result

from kitefan.config import demo_config_path
from kitefan.errors import ConfigError
from kitefan.instruments import INSTRUMENTS_HEADER

REPO = Path(__file__).parent.parent
DEMO_DUMP = REPO / "configs" / "demo-instruments.csv"
ENV = {"KITE_ACCESS_TOKEN_1": "token-one-000001"}


def run(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    return invoke(*args, env={"KITEFAN_CONFIG": None, **(env or {})})


def keys_toml(count: int, *, literal: bool = True) -> str:
    tables = []
    for i in range(count):
        token = f"token-{i}-0000001" if literal else "${KITE_ACCESS_TOKEN_1}"
        tables.append(
            f'[[keys]]\nid = "k{i}"\napi_key = "key-{i}-0001"\naccess_token = "{token}"\n'
        )
    return "\n".join(tables)


def big_config(directory: Path, symbols: int, strategy: str = "round-robin") -> Path:
    text = (
        f'strategy = "{strategy}"\n'
        + keys_toml(3)
        + f"[symbols]\nquote = {list(range(1, symbols + 1))}\n"
    )
    return config_file(directory / "kitefan.toml", text)


def layout(document: dict[str, Any]) -> dict[str, list[list[tuple[int, str]]]]:
    return {
        key["id"]: [
            [(s["instrument_token"], s["mode"]) for s in connection["symbols"]]
            for connection in key["connections"]
        ]
        for key in document["keys"]
    }


# distribute --dry-run ---------------------------------------------------------------------------


def test_dry_run_json_has_the_documented_shape() -> None:
    result = run("distribute", "--dry-run", "--config", str(demo_config_path()), "--format", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert list(document) == ["strategy", "redundancy", "keys", "totals"]
    assert document["strategy"] == "round-robin"
    assert document["totals"] == {"symbols": 64, "capacity": 27000, "connections": 9}
    assert [key["id"] for key in document["keys"]] == ["alpha", "bravo", "charlie"]
    for key in document["keys"]:
        assert list(key) == ["id", "connections"]
        assert [c["index"] for c in key["connections"]] == [0, 1, 2]
        for connection in key["connections"]:
            assert list(connection) == ["index", "symbols"]
            for symbol in connection["symbols"]:
                assert list(symbol) == ["instrument_token", "symbol", "mode"]
    first = document["keys"][0]["connections"][0]["symbols"][0]
    assert first == {"instrument_token": 256265, "symbol": "NSE:NIFTY 50", "mode": "full"}
    pinned = {s["symbol"] for c in document["keys"][2]["connections"] for s in c["symbols"]}
    assert {"MCX:CRUDEOIL26DECFUT", "MCX:GOLD27FEBFUT", "CDS:USDINR26DECFUT"} <= pinned


def test_dry_run_table_shows_fill_modes_bandwidth_totals_and_spare() -> None:
    result = run("distribute", "--dry-run", "--config", str(demo_config_path()))
    assert (result.exit_code, result.stderr) == (0, "")
    lines = [line.split() for line in result.stdout.splitlines()]
    rows = [line for line in lines if line and line[0] in {"alpha", "bravo", "charlie"}]
    assert len(rows) == 9
    assert rows[0] == [
        "alpha",
        "0",
        "8",
        "2",
        "full,",
        "5",
        "quote,",
        "1",
        "ltp",
        "8/3,000",
        "0%",
        "460",
        "B/s",
    ]
    total = next(line for line in lines if line and line[0] == "total")
    assert total == [
        "total",
        "9",
        "64",
        "6",
        "full,",
        "50",
        "quote,",
        "8",
        "ltp",
        "64/27,000",
        "0%",
        "3.1",
        "kB/s",
    ]
    assert result.stdout.rstrip().endswith(
        "spare capacity 26,936 symbols; bandwidth at ~1 tick/s per symbol"
    )


def test_20000_symbols_over_3_keys_are_placed_once_balanced_within_limits(tmp_path: Path) -> None:
    path = big_config(tmp_path, 20_000)
    result = run("distribute", "--dry-run", "--config", str(path), "--format", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    tokens = Counter(
        s["instrument_token"]
        for key in document["keys"]
        for connection in key["connections"]
        for s in connection["symbols"]
    )
    assert set(tokens) == set(range(1, 20_001))
    assert set(tokens.values()) == {1}
    per_key = []
    for key in document["keys"]:
        assert len(key["connections"]) <= 3
        assert all(len(c["symbols"]) <= 3000 for c in key["connections"])
        per_key.append(sum(len(c["symbols"]) for c in key["connections"]))
    assert max(per_key) - min(per_key) <= 1
    assert document["totals"] == {"symbols": 20_000, "capacity": 27_000, "connections": 9}


def test_27001_symbols_over_3_keys_exit_3_with_the_numbers(tmp_path: Path) -> None:
    path = big_config(tmp_path, 27_001)
    result = run("distribute", "--dry-run", "--config", str(path), "--format", "json")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == (
        "error: over capacity: 27001 symbols asked, 27000 fit (3 keys × 3 connections × 3000); "
        "drop 1 symbol or add a key\n"
    )


BROKEN = {
    "typo": ('stratgy = "manual"\n', "stratgy: unknown key (did you mean strategy?)"),
    "missing-var": (
        keys_toml(1, literal=False).replace("KITE_ACCESS_TOKEN_1", "KITE_TOKEN_X"),
        "keys[0].access_token: environment variable KITE_TOKEN_X is not set",
    ),
    "unknown-symbol": (
        f'instruments = "{DEMO_DUMP}"\n[symbols]\nquote = ["NSE:RELAINCE"]\n',
        'symbols.quote[0]: unknown symbol "NSE:RELAINCE"; closest: NSE:RELIANCE',
    ),
    "syntax": ('mode = "quote\n', "line 1, column 14: invalid TOML: illegal character '\\n'"),
}


@pytest.mark.parametrize("case", list(BROKEN))
@pytest.mark.parametrize("command", [("distribute", "--dry-run", "--config"), ("config", "check")])
def test_each_broken_config_is_one_line_and_exit_3(
    tmp_path: Path, case: str, command: tuple[str, ...]
) -> None:
    body, problem = BROKEN[case]
    text = body if case in {"missing-var", "syntax"} else body + keys_toml(1)
    path = config_file(tmp_path / "kitefan.toml", text)
    result = run(*command, str(path))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == f"error: {path}: {problem}\n"


def test_debug_lets_the_exception_through(tmp_path: Path) -> None:
    path = config_file(tmp_path / "kitefan.toml", 'stratgy = "manual"\n' + keys_toml(1))
    result = run("distribute", "--dry-run", "--config", str(path), "--debug")
    assert isinstance(result.exception, ConfigError)


def test_distribute_without_dry_run_says_there_is_no_stream(tmp_path: Path) -> None:
    result = run("distribute", "--config", str(demo_config_path()))
    assert result.exit_code == 1
    demo = demo_config_path().resolve()
    assert result.stderr == (
        f"error: no running stream for {demo}: start one with `kitefan stream --config {demo}`\n"
    )
    assert result.stdout == ""


def test_warnings_go_to_stderr(tmp_path: Path) -> None:
    path = config_file(
        tmp_path / "kitefan.toml", keys_toml(1) + "[symbols]\nltp = [5]\nfull = [5]\n"
    )
    result = run("distribute", "--dry-run", "--config", str(path), "--format", "json")
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: 5 is listed 2 times (symbols.ltp[0], symbols.full[0]); streaming it in full, "
        "the highest mode asked\n"
    )
    assert json.loads(result.stdout)["totals"]["symbols"] == 1


# --output: pins that freeze the plan ------------------------------------------------------------


def replay(source: Path, pins: Path, directory: Path) -> Path:
    """A config with the source's keys and settings and the pins' symbols, under manual."""
    original = tomllib.loads(source.read_text())
    frozen = tomllib.loads(pins.read_text())
    assert set(frozen) <= {"strategy", "mode", "keys", "symbols"}
    assert frozen["strategy"] == "manual"
    keys = []
    for key, pinned in zip(original["keys"], frozen["keys"], strict=True):
        assert pinned["id"] == key["id"]
        keys.append(
            {**{k: v for k, v in key.items() if k != "symbols"}, "symbols": pinned["symbols"]}
        )
    document: dict[str, Any] = {
        k: v for k, v in original.items() if k not in {"keys", "symbols", "select", "strategy"}
    }
    if "instruments" in document:
        document["instruments"] = str((source.parent / document["instruments"]).resolve())
    document.update(strategy="manual", mode=frozen["mode"], keys=keys)
    if "symbols" in frozen:
        document["symbols"] = frozen["symbols"]
    return config_file(directory / "frozen.toml", tomli_w.dumps(document))


@pytest.mark.parametrize("strategy", ["round-robin", "least-loaded"])
def test_output_pins_replay_to_the_same_plan(tmp_path: Path, strategy: str) -> None:
    text = (
        f'strategy = "{strategy}"\nmode = "ltp"\nmax_symbols_per_connection = 700\n'
        + keys_toml(3)
        + f"[symbols]\nquote = {list(range(1, 4001))}\nfull = {list(range(4001, 4101))}\n"
        + "ltp = [5000]\n"
    )
    source = config_file(tmp_path / "kitefan.toml", text)
    pins = tmp_path / "plan.toml"
    first = run(
        "distribute",
        "--dry-run",
        "--config",
        str(source),
        "--format",
        "json",
        "--output",
        str(pins),
    )
    assert first.exit_code == 0
    assert first.stderr == f"wrote the plan as pins to {pins}\n"
    frozen = replay(source, pins, tmp_path)
    second = run("distribute", "--dry-run", "--config", str(frozen), "--format", "json")
    assert (second.exit_code, second.stderr) == (0, "")
    before, after = json.loads(first.stdout), json.loads(second.stdout)
    assert after["strategy"] == "manual"
    assert layout(after) == layout(before)


def test_output_pins_of_the_demo_keep_every_symbol_on_its_key(tmp_path: Path) -> None:
    pins = tmp_path / "plan.toml"
    first = run(
        "distribute",
        "--dry-run",
        "--config",
        str(demo_config_path()),
        "--format",
        "json",
        "--output",
        str(pins),
    )
    assert first.exit_code == 0
    frozen = tomllib.loads(pins.read_text())
    assert frozen["keys"][0]["symbols"][:3] == ["NSE:NIFTY 50", "NSE:NIFTY BANK", "NSE:INDIA VIX"]
    result = run(
        "distribute",
        "--dry-run",
        "--config",
        str(replay(demo_config_path(), pins, tmp_path)),
        "--format",
        "json",
    )
    assert result.exit_code == 0
    assert layout(json.loads(result.stdout)) == layout(json.loads(first.stdout))


# init, config check, config show ----------------------------------------------------------------

STARTER_ENV = {"KITE_API_KEY": "starter-key-0001", "KITE_ACCESS_TOKEN": "starter-token-0001"}


def test_init_then_check_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "kitefan.toml"
    result = run("init", str(path))
    assert (result.exit_code, result.stderr) == (0, "")
    assert (
        result.stdout
        == f"wrote {path}; put your keys in it, then run `kitefan config check {path}`\n"
    )
    assert os.stat(path).st_mode & 0o777 == 0o600
    check = run("config", "check", str(path), env=STARTER_ENV)
    assert (check.exit_code, check.stderr) == (0, "")
    assert check.stdout.splitlines() == [
        f"{path}: ok",
        "keys: 1 (main), up to 3 connections × 3000 symbols each",
        "symbols: 3 (1 full, 2 quote), 0 pinned",
        "plan: round-robin over 3 connections, 3 of 9000 (8997 spare)",
    ]


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "kitefan.toml"
    path.write_text("mine\n")
    path.chmod(0o644)
    result = run("init")
    assert result.exit_code == 1
    assert result.stderr == "error: kitefan.toml already exists; pass --force to overwrite it\n"
    assert path.read_text() == "mine\n"
    forced = run("init", "--force")
    assert forced.exit_code == 0
    assert path.read_text().startswith("# kitefan config.")
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_check_lists_every_problem_on_its_own_line(tmp_path: Path) -> None:
    path = config_file(
        tmp_path / "kitefan.toml", 'mode = "depth"\nmax_connections_per_key = 9\n' + keys_toml(1)
    )
    result = run("config", "check", str(path))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f'error: {path}: 2 problems: mode: must be one of ltp, quote, full, not "depth"; '
        "max_connections_per_key: must be an integer from 1 to 3, not 9",
        '  mode: must be one of ltp, quote, full, not "depth"',
        "  max_connections_per_key: must be an integer from 1 to 3, not 9",
    ]


def test_check_refuses_a_url_with_the_credentials_in_its_query_without_showing_them(
    tmp_path: Path,
) -> None:
    url = "wss://ws.kite.trade/?api_key=key-0-0001&access_token=token-0-0000001"
    path = config_file(tmp_path / "kitefan.toml", f'url = "{url}"\n' + keys_toml(1))
    result = run("config", "check", str(path))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {path}: url: must not have a query (kitefan adds api_key and access_token "
        'itself): write "wss://ws.kite.trade/"\n'
    )


def test_check_reports_a_plan_that_does_not_fit(tmp_path: Path) -> None:
    path = config_file(
        tmp_path / "kitefan.toml",
        'strategy = "manual"\n' + keys_toml(1) + "[symbols]\nquote = [1, 2]\n",
    )
    result = run("config", "check", str(path))
    assert result.exit_code == 3
    assert result.stderr == (
        'error: strategy "manual" places only pinned symbols; not pinned: 1, 2; pin them in a '
        '[[keys]] table\'s symbols, or use strategy "round-robin"\n'
    )


def test_check_and_show_use_kitefan_toml_then_kitefan_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = run("config", "check")
    assert missing.exit_code == 3
    assert missing.stderr == (
        "error: no config: pass --config PATH, create kitefan.toml with `kitefan init`, or set "
        "KITEFAN_CONFIG\n"
    )
    elsewhere = config_file(tmp_path / "elsewhere.toml", keys_toml(2))
    from_env = run("config", "check", env={"KITEFAN_CONFIG": str(elsewhere)})
    assert from_env.stdout.splitlines()[0] == f"{elsewhere}: ok"
    config_file(tmp_path / "kitefan.toml", keys_toml(1))
    here = run("config", "show", env={"KITEFAN_CONFIG": str(elsewhere)})
    assert here.exit_code == 0
    assert [k["id"] for k in tomllib.loads(here.stdout)["keys"]] == ["k0"]


def test_show_prints_the_resolved_config_masked() -> None:
    result = run("config", "show", str(demo_config_path()))
    assert (result.exit_code, result.stderr) == (0, "")
    shown = tomllib.loads(result.stdout)
    assert shown["keys"][0] == {
        "id": "alpha",
        "api_key": "demo…ey",
        "access_token": "demo…01",
        "symbols": ["NSE:NIFTY 50", "NSE:NIFTY BANK", "NSE:INDIA VIX"],
    }
    assert sum(len(v) for v in shown["symbols"].values()) == 64
    assert "demo-alpha-token-0001" not in result.stdout


# instruments fetch ------------------------------------------------------------------------------

DUMP = ",".join(INSTRUMENTS_HEADER) + "\n408065,1594,INFY,INFOSYS,1605.25,,0.0,0.1,1,EQ,NSE,NSE\n"
OLD = ",".join(INSTRUMENTS_HEADER) + "\n1,1,OLD,OLD,1.0,,0.0,0.05,1,EQ,NSE,NSE\n"


def fetch_config(directory: Path, api_root: str) -> Path:
    # Names in the config must not stop the fetch that makes them resolvable.
    text = (
        f'api_root = "{api_root}"\ninstruments = "instruments.csv"\n'
        + keys_toml(2)
        + '[symbols]\nquote = ["NSE:INFY"]\n'
    )
    return config_file(directory / "kitefan.toml", text)


def test_fetch_writes_the_dump_with_the_first_key(tmp_path: Path) -> None:
    with serve_dump() as server:
        server.body = DUMP.encode()
        path = fetch_config(tmp_path, server.url)
        result = run("instruments", "fetch", "--config", str(path))
    assert result.exit_code == 0
    assert result.stderr == f"downloading {server.url}/instruments with key k0…\n"
    assert result.stdout == f"fetched 1 instruments into {tmp_path / 'instruments.csv'}\n"
    assert (tmp_path / "instruments.csv").read_text() == DUMP
    assert server.requests[0][1]["Authorization"] == "token key-0-0001:token-0-0000001"
    check = run("config", "check", str(path))
    assert check.exit_code == 0


def test_fetch_403_exits_1_and_keeps_the_old_file(tmp_path: Path) -> None:
    (tmp_path / "instruments.csv").write_text(OLD)
    with serve_dump() as server:
        server.status = 403
        server.body = b'{"status": "error", "message": "Token is invalid or has expired."}'
        result = run("instruments", "fetch", "--config", str(fetch_config(tmp_path, server.url)))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: {server.url}/instruments refused the request with HTTP 403 (Token is invalid or "
        "has expired): the access token is invalid or expired; put a fresh token in the config; "
        f"{tmp_path / 'instruments.csv'} left unchanged"
    )
    assert (tmp_path / "instruments.csv").read_text() == OLD


def test_fetch_cut_connection_exits_1_and_keeps_the_old_file(tmp_path: Path) -> None:
    (tmp_path / "instruments.csv").write_text(OLD)
    with serve_dump() as server:
        server.body = DUMP.encode()
        server.cut = True
        result = run("instruments", "fetch", "--config", str(fetch_config(tmp_path, server.url)))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: download of {server.url}/instruments was cut short after {len(DUMP) // 2} of "
        f"{len(DUMP)} bytes; {tmp_path / 'instruments.csv'} left unchanged"
    )
    assert (tmp_path / "instruments.csv").read_text() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instruments.csv", "kitefan.toml"]


def test_fetch_needs_an_instruments_setting(tmp_path: Path) -> None:
    path = config_file(tmp_path / "kitefan.toml", keys_toml(1))
    result = run("instruments", "fetch", "--config", str(path))
    assert result.exit_code == 3
    assert result.stderr == (
        f'error: {path}: instruments: not set; add instruments = "instruments.csv" to say where '
        "it goes\n"
    )


# Secrets ----------------------------------------------------------------------------------------

API_KEY, TOKEN = "SENTINELAPIKEY9876", "SENTINELTOKEN5432"


def test_no_secret_appears_in_any_output(tmp_path: Path) -> None:
    text = (
        f'instruments = "{DEMO_DUMP}"\n'
        f'[[keys]]\nid = "s"\napi_key = "{API_KEY}"\naccess_token = "{TOKEN}"\n'
        '[symbols]\nquote = ["NSE:INFY", 256265]\n'
    )
    path = tmp_path / "kitefan.toml"
    path.write_text(text)
    path.chmod(0o644)  # readable by others: the warning names the place, never the token
    broken = config_file(
        tmp_path / "broken.toml", text.replace("NSE:INFY", "NSE:INFZ") + "bogus = 1\n"
    )
    pins = tmp_path / "plan.toml"
    results = [
        run("config", "check", str(path)),
        run("config", "show", str(path)),
        run("distribute", "--dry-run", "--config", str(path)),
        run(
            "distribute",
            "--dry-run",
            "--config",
            str(path),
            "--format",
            "json",
            "--output",
            str(pins),
        ),
        run("config", "check", str(broken)),
        run("distribute", "--dry-run", "--config", str(broken)),
    ]
    with serve_dump() as server:
        server.status = 403
        server.body = f'{{"message": "bad token {TOKEN} for {API_KEY}"}}'.encode()
        fetch = tmp_path / "fetch.toml"
        own_dump = text.replace(str(DEMO_DUMP), str(tmp_path / "i.csv"))
        fetch.write_text(f'api_root = "{server.url}"\n' + own_dump)
        results.append(run("instruments", "fetch", "--config", str(fetch)))
    assert [r.exit_code for r in results] == [0, 0, 0, 0, 3, 3, 1]
    assert "warning: keys[0].access_token: a literal access token" in results[0].stderr
    assert "bad token … for …" in results[-1].stderr
    for result in results:
        for secret in (API_KEY, TOKEN):
            assert secret not in result.stdout
            assert secret not in result.stderr
    for secret in (API_KEY, TOKEN):
        assert secret not in pins.read_text()
