"""``kitefan stream`` as a user runs it: a subprocess against the demo or a simulator process,
its stdout lines, its stderr, its exit code."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import processes
import pytest
from app_configs import config_file

from kitefan.simulator import Account, Simulator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}


async def kitefan(*args: str, within: float = 60.0) -> tuple[int, str, str]:
    return await processes.run(*processes.kitefan(*args), cwd=ROOT, env=ENV, within=within)


@asynccontextmanager
async def simulate(config: Path) -> AsyncIterator[str]:
    """``kitefan simulate`` in its own process; yields its URL."""
    async with processes.started(
        *processes.kitefan("simulate", "--config", str(config), "--port", "0"), cwd=ROOT, env=ENV
    ) as process:
        try:
            assert process.stdout is not None
            async with asyncio.timeout(20):
                url = (await process.stdout.readline()).decode().strip()
            assert url.startswith("ws://127.0.0.1:")
            yield url
        finally:
            process.send_signal(signal.SIGINT)
            async with asyncio.timeout(20):
                await process.communicate()


def write_config(path: Path, url: str, token_suffix: str = "") -> Path:
    """Two keys' config for the simulator at ``url``, every mode (also what `kitefan simulate`
    reads its accounts from)."""
    return config_file(
        path,
        f'url = "{url}"\n'
        'mode = "full"\n'
        "[[keys]]\n"
        'id = "one"\napi_key = "one-api-key"\n'
        f'access_token = "one-token{token_suffix}"\n'
        "[[keys]]\n"
        'id = "two"\napi_key = "two-api-key"\n'
        f'access_token = "two-token{token_suffix}"\n'
        "[symbols]\n"
        "quote = [408065, 884737, 256265]\n"
        "full = [738561]\n"
        "ltp = [268803]\n",
    )


async def test_demo_jsonl_for_a_duration_prints_parsable_tick_lines() -> None:
    code, out, err = await kitefan("stream", "--demo", "--format", "jsonl", "--duration", "3")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    ticks = [r for r in records if r["type"] == "tick"]
    assert len(ticks) > 50
    for tick in ticks:
        assert {"key", "connection", "symbol", "instrument_token", "mode", "last_price"} <= set(
            tick
        )
        assert tick["key"] in ("alpha", "bravo", "charlie")
        assert tick["mode"] in ("ltp", "quote", "full")
    assert {t["symbol"] for t in ticks} >= {"NSE:RELIANCE", "NSE:INFY", "NSE:NIFTY 50"}
    full = [t for t in ticks if t["mode"] == "full" and t["tradable"]]
    assert full, "the demo streams a few symbols in full mode"
    assert len(full[0]["depth"]["buy"]) == 5
    assert full[0]["exchange_timestamp"].endswith("+05:30")
    statuses = [r for r in records if r["type"] == "status"]
    assert {(s["key"], s["state"]) for s in statuses} >= {("alpha", "connected")}
    assert err.startswith("kitefan: duration reached after 3.")
    assert "ticks from 3 keys (64 symbols)" in err
    assert len(err.splitlines()) == 1


async def test_symbols_and_mode_narrow_the_stream() -> None:
    code, out, _ = await kitefan(
        "stream",
        "--demo",
        "--format",
        "jsonl",
        "--duration",
        "2",
        "--symbols",
        "NSE:INFY,NSE:RELIANCE",
        "--mode",
        "ltp",
    )
    assert code == 0
    ticks = [r for r in map(json.loads, out.splitlines()) if r["type"] == "tick"]
    # The server answers a subscribe with a tick in its default mode (quote) before the mode
    # message takes effect, as Kite does; from then on each symbol ticks in the mode asked for.
    last = {t["symbol"]: t for t in ticks}
    assert {(t["symbol"], t["mode"]) for t in last.values()} == {
        ("NSE:INFY", "ltp"),
        ("NSE:RELIANCE", "ltp"),
    }
    assert set(last["NSE:INFY"]) == {
        "type",
        "key",
        "connection",
        "symbol",
        "tradable",
        "mode",
        "instrument_token",
        "last_price",
    }


async def test_csv_has_a_header_and_a_row_per_tick(tmp_path: Path) -> None:
    good = write_config(tmp_path / "sim.toml", "ws://unused")
    async with simulate(good) as url:
        config = write_config(tmp_path / "kitefan.toml", url)
        code, out, err = await kitefan(
            "stream", "--config", str(config), "--format", "csv", "--duration", "2"
        )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows
    assert {r["instrument_token"] for r in rows} == {
        "408065",
        "884737",
        "256265",
        "738561",
        "268803",
    }
    reliance = [r for r in rows if r["instrument_token"] == "738561"][-1]
    assert reliance["mode"] == "full"
    assert float(reliance["bid_price"]) < float(reliance["ask_price"])
    ltp = [r for r in rows if r["instrument_token"] == "268803"][-1]
    assert (ltp["mode"], ltp["volume_traded"], ltp["bid_price"]) == ("ltp", "", "")


@pytest.mark.parametrize(
    ("signum", "said"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")]
)
async def test_a_signal_closes_cleanly_with_a_summary_and_exit_0(
    signum: signal.Signals, said: str
) -> None:
    async with processes.started(
        *processes.kitefan("stream", "--demo", "--format", "jsonl"), cwd=ROOT, env=ENV
    ) as process:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            while b'"type":"tick"' not in await process.stdout.readline():
                pass
        process.send_signal(signum)
        async with asyncio.timeout(20):
            out, err = await process.communicate()
    assert process.returncode == 0
    assert err.decode().startswith(f"kitefan: {said} after ")
    assert "Traceback" not in err.decode()
    for line in out.decode().splitlines():
        json.loads(line)


async def test_every_key_refused_exits_4_with_one_line(tmp_path: Path) -> None:
    good = write_config(tmp_path / "sim.toml", "ws://unused")
    async with simulate(good) as url:
        stale = write_config(tmp_path / "stale.toml", url, token_suffix="-yesterday")
        code, out, err = await kitefan(
            "stream", "--config", str(stale), "--format", "jsonl", "--duration", "20"
        )
    assert code == 4
    assert err.splitlines()[-1] == (
        "error: every key was refused with HTTP 403: their access tokens are invalid or "
        "expired; put fresh tokens in the config"
    )
    assert "Traceback" not in err
    assert "one-token" not in out + err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--config", "missing.toml"],
            3,
            "error: missing.toml: cannot read: No such file or directory "
            "(`kitefan init missing.toml` writes a starter config there)\n",
        ),
        (["--demo", "--symbols", "NSE:INFYY"], 3, "error: "),
        (["--demo", "--symbols", ""], 2, ""),
        (["--demo", "--symbols", " , ,"], 2, ""),
        (
            ["--demo", "--symbols", "256265,4294967296"],
            3,
            "error: --symbols: 4294967296 is not an instrument token (tokens are 1 to 4294967295)",
        ),
        (["--demo", "--format", "xml"], 2, ""),
    ],
)
async def test_bad_input_is_one_line_and_an_exit_code(
    args: list[str], code: int, message: str
) -> None:
    status, out, err = await kitefan("stream", *args, "--duration", "1")
    assert status == code
    assert out == ""
    assert "Traceback" not in err
    if message:
        assert err.startswith(message)
        assert len(err.strip().splitlines()) == 1


async def test_an_empty_symbols_list_is_a_usage_error_naming_the_option() -> None:
    status, out, err = await kitefan("stream", "--demo", "--symbols", ",", "--duration", "1")
    assert (status, out) == (2, "")
    assert err == (
        "error: --symbols: names no symbol: give tokens or EXCHANGE:TRADINGSYMBOL names, "
        "comma-separated, or leave --symbols out to stream the config's symbols\n"
    )


async def test_a_token_out_of_range_is_refused_before_anything_connects(
    simulator: Simulator, accounts: tuple[Account, Account], tmp_path: Path
) -> None:
    alpha = accounts[0]
    config = config_file(
        tmp_path / "kitefan.toml",
        f'url = "{simulator.url}"\n'
        "[[keys]]\n"
        f'id = "alpha"\napi_key = "{alpha.api_key}"\naccess_token = "{alpha.access_token}"\n'
        "[symbols]\nquote = [408065]\n",
    )
    status, out, err = await kitefan(
        "stream", "--config", str(config), "--symbols", "408065,99999999999", "--duration", "5"
    )
    assert (status, out) == (3, "")
    assert err == (
        "error: --symbols: 99999999999 is not an instrument token (tokens are 1 to 4294967295)\n"
    )
    assert simulator.counters.connections_opened == 0
    assert simulator.refusals() == {}
