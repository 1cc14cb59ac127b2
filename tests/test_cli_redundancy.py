"""``redundancy = 2`` through the loader and ``distribute --dry-run``: both places shown, capacity
halved, errors as one line with the numbers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from app_configs import config_file
from processes import invoke
from typer.testing import Result


def run(*args: str) -> Result:
    return invoke(*args, env={"KITEFAN_CONFIG": None})


def config(directory: Path, keys: int, symbols: int, extra: str = "redundancy = 2\n") -> Path:
    tables = "\n".join(
        f'[[keys]]\nid = "k{i}"\napi_key = "key-{i}-0001"\naccess_token = "token-{i}-0000001"\n'
        for i in range(keys)
    )
    quote = list(range(1, symbols + 1))
    return config_file(directory / "kitefan.toml", extra + tables + f"[symbols]\nquote = {quote}\n")


def test_dry_run_json_lists_every_symbol_under_two_keys(tmp_path: Path) -> None:
    path = config(tmp_path, 3, 10_000)
    result = run("distribute", "--dry-run", "--config", str(path), "--format", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert document["redundancy"] == 2
    keys_of: dict[int, list[str]] = {}
    for key in document["keys"]:
        for connection in key["connections"]:
            assert len(connection["symbols"]) <= 3000
            for s in connection["symbols"]:
                keys_of.setdefault(s["instrument_token"], []).append(key["id"])
    assert set(keys_of) == set(range(1, 10_001))
    assert all(len(set(keys)) == len(keys) == 2 for keys in keys_of.values())
    assert Counter(k for keys in keys_of.values() for k in keys) == {
        "k0": 6667,
        "k1": 6667,
        "k2": 6666,
    }
    assert document["totals"] == {"symbols": 10_000, "capacity": 13_500, "connections": 9}


def test_dry_run_table_says_redundancy_and_counts_symbols_once(tmp_path: Path) -> None:
    path = config(tmp_path, 2, 4)
    result = run("distribute", "--dry-run", "--config", str(path))
    assert result.exit_code == 0
    rows = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert rows[4:12] == [
        "k0 0 2 2 quote 2/3,000 0% 92 B/s",
        "k0 1 1 1 quote 1/3,000 0% 46 B/s",
        "k0 2 1 1 quote 1/3,000 0% 46 B/s",
        "k1 0 2 2 quote 2/3,000 0% 92 B/s",
        "k1 1 1 1 quote 1/3,000 0% 46 B/s",
        "k1 2 1 1 quote 1/3,000 0% 46 B/s",
        "",
        "total 6 4 4 quote 4/9,000 0% 368 B/s",
    ]
    assert " ".join(" ".join(rows[12:]).split()) == (
        "redundancy 2: every symbol on 2 keys (capacity ÷ 2); spare capacity 8,996 symbols; "
        "bandwidth at ~1 tick/s per symbol"
    )


def test_over_capacity_with_redundancy_exits_3_with_the_numbers(tmp_path: Path) -> None:
    path = config(tmp_path, 2, 9001)
    result = run("distribute", "--dry-run", "--config", str(path), "--format", "json")
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == (
        "error: over capacity: 9001 symbols × 2 copies (redundancy = 2) asked, 9000 fit "
        "(2 keys × 3 connections × 3000 ÷ 2); drop 1 symbol or add a key\n"
    )


def test_redundancy_is_checked_by_the_loader(tmp_path: Path) -> None:
    path = config(tmp_path, 1, 3)
    result = run("config", "check", str(path))
    assert result.exit_code == 3
    assert result.stderr.endswith(
        "redundancy: 2 needs at least 2 [[keys]] tables, 1 configured; add a key or set "
        "redundancy = 1\n"
    )
    path = config(tmp_path, 3, 3, extra="redundancy = 3\n")
    result = run("config", "check", str(path))
    assert result.exit_code == 3
    assert result.stderr.endswith("redundancy: must be an integer from 1 to 2, not 3\n")
