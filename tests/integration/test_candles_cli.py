"""``kitefan candles`` for real: the demo's bars as JSON lines, CSV and Parquet, every tick
accounted for; the library's builder on a live feed, which its own frames replay exactly; bars
of a Redis stream; and bad options refused in one line."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import processes
import pytest
from redisserver import running_redis

from kitefan.broker import frame_fields, node_name, symbols_key
from kitefan.candles import DEFAULT_ANCHORS, Candle, CandleBuilder, bar_bounds
from kitefan.config import demo_config_path, load_config
from kitefan.events import TickBatch
from kitefan.models import Tick
from kitefan.render.candles import CANDLE_COLUMNS
from kitefan.runner import running_feed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
SUMMARY = re.compile(
    r"kitefan: duration reached after [\d.]+ s: ([\d,]+) ticks from (.+?), ([\d,]+) (\w+) bars "
    r"written(?: \(([\d,]+) flat\))?, ([\d,]+) late ticks, "
    r"([\d,]+) forming bars not written \(([\d,]+) ticks\), "
    r"([\d,]+) dropped \(shed by a full queue, or queued at the stop\)$"
)


def number(text: str) -> int:
    return int(text.replace(",", ""))


async def kitefan(*args: str, within: float = 60.0) -> tuple[int, str, str]:
    return await processes.run(*processes.kitefan(*args), env=ENV, cwd=ROOT, within=within)


def check_bars(records: list[dict[str, Any]], interval: int) -> None:
    """Each record: the columns in order, ISO times in IST, a bar of the session's grid."""
    assert records
    starts: dict[str, list[int]] = defaultdict(list)
    for record in records:
        assert list(record) == list(CANDLE_COLUMNS)
        assert record["type"] == "candle"
        assert record["start"].endswith("+05:30") and record["end"].endswith("+05:30")
        start = int(datetime.fromisoformat(record["start"]).timestamp())
        end = int(datetime.fromisoformat(record["end"]).timestamp())
        exchange = record["symbol"].split(":")[0]
        anchor = DEFAULT_ANCHORS.get(exchange, DEFAULT_ANCHORS["NSE"])
        assert bar_bounds(start, interval, anchor) == (start, end)
        assert record["low"] <= min(record["open"], record["close"])
        assert record["high"] >= max(record["open"], record["close"])
        assert record["ticks"] >= 1
        assert record["time_source"] in ("exchange", "receive", "mixed")
        if record["instrument_token"] & 0xFF == 9:  # indices carry no volume and no oi
            assert (record["volume"], record["oi"]) == (None, None)
        starts[record["symbol"]].append(start)
    for symbol, times in starts.items():
        assert times == sorted(set(times)), symbol  # one bar per interval, in order


async def test_demo_bars_as_json_lines_account_for_every_tick() -> None:
    code, out, err = await kitefan(
        "candles", "--demo", "--interval", "1s", "--format", "jsonl", "--duration", "4"
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    check_bars(records, 1)
    assert {r["interval"] for r in records} == {"1s"}
    assert {r["symbol"].split(":")[0] for r in records} >= {"NSE", "NFO", "BSE", "MCX", "CDS"}
    # full-mode symbols are timed by the exchange once they stream in full mode
    assert any(r["time_source"] == "exchange" for r in records if r["symbol"] == "NSE:RELIANCE")
    match = SUMMARY.match(err.strip().splitlines()[-1])
    assert match is not None, err
    received, source, written, interval, flat, late, forming, forming_ticks, dropped = (
        match.groups()
    )
    assert flat is None
    assert (source, interval, number(written)) == ("3 keys (64 symbols)", "1s", len(records))
    in_bars = sum(r["ticks"] for r in records)
    assert number(received) == in_bars + number(late) + number(forming_ticks) + number(dropped)
    assert number(forming) <= number(forming_ticks)


async def test_csv_and_parquet_files_hold_the_same_columns(tmp_path: Path) -> None:
    csv_path, parquet_path = tmp_path / "bars.csv", tmp_path / "bars.parquet"
    (code, out, err), (code2, out2, err2) = await asyncio.gather(
        kitefan("candles", "--demo", "--interval", "1s", "--format", "csv", "--output",
                str(csv_path), "--duration", "3"),
        kitefan("candles", "--demo", "--interval", "1s", "--format", "parquet", "--output",
                str(parquet_path), "--duration", "3", "--fill"),
    )  # fmt: skip
    assert (code, out, code2, out2) == (0, "", 0, ""), err + err2
    rows = list(csv.reader(io.StringIO(csv_path.read_text())))
    assert rows[0] == list(CANDLE_COLUMNS)
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    summary = SUMMARY.match(err.strip().splitlines()[-1])
    assert summary, err
    assert len(records) == number(summary.group(3))
    for record in records:
        assert record["type"] == "candle" and record["interval"] == "1s"
        assert float(record["low"]) <= float(record["high"])
        assert record["volume"] == "" or int(record["volume"]) >= 0
    import pyarrow.parquet as pq

    table = pq.read_table(parquet_path)
    assert table.column_names == list(CANDLE_COLUMNS)
    assert str(table.schema.field("start").type) == "timestamp[ms, tz=Asia/Kolkata]"
    summary = SUMMARY.match(err2.strip().splitlines()[-1])
    assert summary is not None and table.num_rows == number(summary.group(3))
    # with --fill, every symbol has a bar for every second from its first, flat or not
    starts: dict[str, list[int]] = defaultdict(list)
    for row in table.to_pylist():
        starts[row["symbol"]].append(int(row["start"].timestamp()))
        if row["ticks"] == 0:
            assert row["open"] == row["high"] == row["low"] == row["close"]
    for symbol, times in starts.items():
        assert times == list(range(times[0], times[0] + len(times))), symbol
    flat = sum(1 for row in table.to_pylist() if row["ticks"] == 0)
    assert number(summary.group(5) or "0") == flat


async def test_the_builder_on_a_live_feed_is_replayed_exactly_by_its_frames() -> None:
    """With ``clock=None`` the receive times are the clock: the recorded frames give the same
    bars, and the bars hold exactly the ticks of their interval."""
    config = load_config(demo_config_path())
    live = CandleBuilder(1, clock=None)
    frames: list[TickBatch] = []
    closed: list[Candle] = []
    async with running_feed(config, demo=True, demo_faults=False) as feed:
        stream = feed.ticks()
        async with asyncio.timeout(30):
            async for batch in stream:
                frames.append(batch)
                closed += live.add(batch)
                if len({c.start for c in closed}) >= 3:
                    break
    closed += live.flush()
    replay = CandleBuilder(1, clock=None)
    again = [c for b in frames for c in replay.add(b)] + replay.flush()
    assert again == closed
    assert live.late == 0  # one connection's frames arrive in order, and the grace covers 1 s
    ticks: dict[tuple[int, int], list[tuple[Tick, float]]] = defaultdict(list)
    for b in frames:
        for tick in b.ticks:
            exchange = "MCX" if tick.segment == 7 else "NSE"
            t = tick.exchange_epoch_s or b.received_wall
            start = bar_bounds(t, 1, DEFAULT_ANCHORS[exchange])[0]
            ticks[(tick.instrument_token, start)].append((tick, b.received_wall))
    assert sum(c.ticks for c in closed) == sum(len(b) for b in frames) == live.ticks
    for bar in closed:
        members = [tick.last_price for tick, _ in ticks[(bar.instrument_token, bar.start)]]
        assert (bar.open, bar.high, bar.low, bar.close, bar.ticks) == (
            members[0],
            max(members),
            min(members),
            members[-1],
            len(members),
        )


async def test_a_recording_gives_the_bars_its_live_run_gave(tmp_path: Path) -> None:
    """A live feed's batches into the library's builder, and the same feed recorded; then
    ``kitefan candles --recording``: the very same records, closed by the recorded clock."""
    from kitefan.recording import Recorder, Recording
    from kitefan.render.candles import encode_candles_jsonl

    path = tmp_path / "live.kfr"
    config = load_config(demo_config_path())
    live = CandleBuilder(1, clock=None)
    closed: list[Candle] = []
    async with Recorder(path) as recorder, running_feed(config, demo=True) as feed:
        recorder.symbols = lambda: {s.token: s.name for s in feed.config.symbols}
        recording = asyncio.get_running_loop().create_task(recorder.consume(feed.events()))
        stream = feed.ticks()
        async with asyncio.timeout(30):
            async for batch in stream:
                closed += live.add(batch)
                if len({c.start for c in closed}) >= 3:
                    break
            await feed.close()
            async for batch in stream:  # what came before the close, to its end
                closed += live.add(batch)
        async with asyncio.timeout(10):
            await recording
    closed += live.close_due()  # due by the last frame's receive time; the rest still forming
    ticks = sum(len(b) for b in Recording(path).ticks())
    assert ticks == live.ticks > 0

    code, out, err = await kitefan(
        "candles", "--recording", str(path), "--interval", "1s", "--format", "jsonl"
    )
    assert code == 0, err
    assert out == encode_candles_jsonl(closed, feed.name_of).decode()
    assert err.splitlines()[-1] == (
        f"kitefan: the recording ended after {err.split(' after ')[1].split(' s:')[0]} s: "
        f"{ticks:,} ticks from recording {path}, {len(closed):,} 1s bars written, "
        f"{live.late:,} late ticks, {live.forming_bars:,} forming bars not written "
        f"({live.forming_ticks:,} ticks), 0 dropped (shed by a full queue, or queued at the stop)"
    )


async def test_bars_of_a_redis_stream() -> None:
    async with running_redis() as redis:
        client = redis.client()
        token = (2885 << 8) | 1
        await client.hset(symbols_key("s"), str(token), "NSE:RELIANCE")
        node = node_name().encode()
        published = 0

        async def publish_until(done: asyncio.Future[Any]) -> None:
            nonlocal published
            while not done.done():
                now = time.time()
                tick = Tick.ltp(token, 1000_00 + published % 50)
                entry = TickBatch.of_ticks("alpha", 0, [tick], received_wall=now)
                await client.xadd("s", frame_fields(entry, node))
                published += 1
                await asyncio.sleep(0.05)

        try:
            run = asyncio.ensure_future(
                kitefan("candles", "--from", redis.url, "--stream", "s", "--interval", "1s",
                        "--format", "jsonl", "--duration", "3")
            )  # fmt: skip
            await publish_until(run)
            code, out, err = run.result()
        finally:
            await client.aclose()
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    check_bars(records, 1)
    assert {(r["symbol"], r["time_source"], r["volume"]) for r in records} == {
        ("NSE:RELIANCE", "receive", None)
    }
    match = SUMMARY.match(err.strip().splitlines()[-1])
    assert match is not None, err
    assert match.group(2) == "stream s"
    assert number(match.group(1)) == sum(r["ticks"] for r in records) + number(
        match.group(6)
    ) + number(match.group(8))
    assert 0 < number(match.group(1)) <= published


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "2d"], "error: --interval: '2d' is not between 1s and 1d"),
        (
            ["--grace", "soon"],
            "error: --grace: 'soon' is not a grace: "
            "give seconds from 0 to 3600, like 1s, 500ms or 0",
        ),
        (
            ["--anchor", "XYZ=09:00"],
            "error: --anchor: XYZ is not an exchange: "
            "give one of BCD, BFO, BSE, CDS, MCX, MCXSX, NCO, NFO, NSE",
        ),
        (["--anchor", "MCX=9"], "error: --anchor: 'MCX=9' is not EXCHANGE=HH:MM (like MCX=09:00)"),
        (
            ["--format", "parquet"],
            "error: --format: parquet is written to a file: add --output FILE.parquet",
        ),
        (
            ["--format", "live", "--output", "x"],
            "error: --output: the dashboard writes no file: choose --format jsonl, csv or parquet",
        ),
        (
            ["--from", "redis://127.0.0.1:1"],
            "error: --from: --demo and --from are two sources: give one",
        ),
        (
            ["--recording", "day.kfr"],
            "error: --recording: --demo and --recording are two sources: give one",
        ),
    ],
)
def test_bad_options_are_refused_before_anything_connects(args: list[str], message: str) -> None:
    result = processes.invoke("candles", "--demo", *args)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [message]
