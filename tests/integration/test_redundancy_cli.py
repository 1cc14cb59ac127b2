"""``redundancy = 2`` downstream, as a user runs it: one ``kitefan stream`` process writes JSON
lines, records and publishes to Redis at once, and every output holds the merged ticks, each
snapshot once: the recording renders as exactly the lines printed, Redis holds exactly the
recorded frames, and the candles of the recording count exactly the ticks printed.

The simulator runs in this process (two keys, the same 20 full-mode symbols on both); the stream
and ``kitefan candles`` in their own processes; Redis is a real ``redis-server``."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from redisserver import running_redis
from simulators import nse
from streams import account, environment, kitefan

from kitefan.broker import decode_entry
from kitefan.events import TickBatch
from kitefan.recording import Recording
from kitefan.render.records import encode_jsonl
from kitefan.simulator import Simulator

pytestmark = pytest.mark.integration

TOKENS = nse(20)


def redundant_config(path: Path, url: str) -> Path:
    lines = [f'url = "{url}"', 'mode = "full"', "redundancy = 2"]
    for key_id in ("alpha", "bravo"):
        credential = account(key_id)
        lines += [
            "[[keys]]",
            f'id = "{key_id}"',
            f'api_key = "{credential.api_key}"',
            f'access_token = "{credential.access_token}"',
        ]
    lines += ["[symbols]", f"full = {TOKENS}"]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


async def test_lines_recording_redis_and_candles_all_hold_each_snapshot_once(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path)
    record = tmp_path / "day.kfr"
    accounts = [account(k) for k in ("alpha", "bravo")]
    async with running_redis() as redis, Simulator(accounts, seed=5, rate=4.0) as sim:
        config = redundant_config(tmp_path / "kitefan.toml", sim.url)
        code, printed, err = await kitefan(
            "stream", "--config", str(config), "--format", "jsonl", "--duration", "3",
            "--record", str(record), "--publish", redis.url, env=env,
        )  # fmt: skip
        assert code == 0, err
        client = redis.client()
        try:
            entries = await client.xrange("kitefan:frames")
        finally:
            await client.aclose()
    ticks = [json.loads(line) for line in printed.splitlines() if line.startswith('{"type":"tick"')]
    # Every symbol ticked, and each full-mode snapshot (its fields, exchange timestamp included:
    # a symbol ticks in quote mode until its mode message is read) is printed once.
    snapshots = Counter(
        json.dumps({k: v for k, v in t.items() if k not in ("key", "connection")}, sort_keys=True)
        for t in ticks
        if t["mode"] == "full"
    )
    assert {t["instrument_token"] for t in ticks if t["mode"] == "full"} == set(TOKENS)
    assert set(snapshots.values()) == {1}
    merged = re.search(r"redundancy 2: ([\d,]+) ticks once, ([\d,]+) duplicates dropped", err)
    assert merged is not None, err
    assert int(merged[1].replace(",", "")) == len(ticks)
    assert int(merged[2].replace(",", "")) > len(TOKENS)  # the other key's copies, merged away
    assert "ticks from 2 keys (20 symbols, each on 2 keys), " in err
    # The recording is the stream's very lines.
    recording = Recording(record)
    events = list(recording.events())
    assert encode_jsonl(events, recording.name_of).decode() == printed
    # Redis holds the recorded frames, in order, byte for byte.
    frames = [e.frame for e in events if isinstance(e, TickBatch)]
    published = [decode_entry(i, f, 0.0).item for i, f in entries if b"frame" in f]
    assert [b.frame for b in published if isinstance(b, TickBatch)] == frames
    # The candles of the recording count the ticks printed, each once: in the bars written, or
    # in the bars still forming when the recording ended.
    code, bars, err = await kitefan(
        "candles", "--recording", str(record), "--interval", "1s", "--format", "jsonl", env=env
    )
    assert code == 0, err
    counted = sum(json.loads(line)["ticks"] for line in bars.splitlines())
    summary = re.search(
        r": (\d+) ticks from recording .*, (\d+) 1s bars written, 0 late ticks, "
        r"(\d+) forming bars not written \((\d+) ticks\)",
        err,
    )
    assert summary is not None, err
    assert int(summary[1]) == len(ticks)
    assert int(summary[2]) == len(bars.splitlines())
    assert counted + int(summary[4]) == len(ticks)
