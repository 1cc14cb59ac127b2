"""The official Python client works against the simulator, and ``kitefan replay``, unchanged.

``KiteTicker(api_key, access_token, root="ws://127.0.0.1:PORT")`` connects, subscribes, sets
modes and decodes ticks equal to kitefan's decoding of the same frames; a bad token reaches it as
the 403 the real server answers with; ``kitefan replay`` serves it a recording's packets, cut to
the modes it set. The client runs in its own process (official_client.py): Twisted's reactor
cannot be restarted, and a process keeps its imports away from this one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import processes
import pytest
import recordings

from kitefan.codec import decode_frame, frame_of_packets
from kitefan.models import Mode
from kitefan.simulator import Account, Simulator

pytest.importorskip("kiteconnect")

pytestmark = pytest.mark.interop

CLIENT = Path(__file__).with_name("official_client.py")
ACCOUNT = Account("interop-api-key-01", "interop-access-token-01", label="interop")
INFY, NIFTY, SENSEX = 408065, 256265, 265
USDINR_CDS, USDINR_BCD = (1050 << 8) | 3, (1050 << 8) | 6


async def official_client(sim: Simulator, access_token: str, scenario: str) -> dict[str, Any]:
    code, out, err = await processes.run(
        sys.executable, str(CLIENT), sim.url, ACCOUNT.api_key, access_token, scenario,
        env={**os.environ, "TZ": "UTC"}, within=40,
    )  # fmt: skip
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def plain(value: Any) -> Any:
    """kitefan's dict with its (timezone-aware) datetimes as Unix seconds."""
    if hasattr(value, "timestamp"):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


async def test_the_official_client_subscribes_sets_modes_and_decodes_the_same_ticks() -> None:
    async with Simulator([ACCOUNT], seed=3, rate=10.0) as sim:
        report = await official_client(sim, ACCOUNT.access_token, "ticks")
        assert sim.requests.subscribe_messages == 1
        assert sim.requests.subscribe_tokens == 5
        assert sim.requests.mode_messages == 2
    assert report["errors"] == []
    assert len(report["frames"]) >= 5
    modes: dict[int, set[str]] = {}
    for seen in report["frames"]:
        ticks = decode_frame(base64.b64decode(seen["frame"]))
        assert [plain(t.as_dict()) for t in ticks] == seen["ticks"]
        for tick in seen["ticks"]:
            modes.setdefault(tick["instrument_token"], set()).add(tick["mode"])
    # After the first snapshot (quote), each token ticks in the mode it was set to.
    assert Mode.FULL in modes[INFY]
    assert Mode.FULL in modes[NIFTY]
    assert Mode.LTP in modes[USDINR_CDS]
    assert modes[SENSEX] == {"quote"}
    assert modes.get(USDINR_BCD, {"quote"}) == {"quote"}


async def test_a_bad_token_reaches_the_official_client_as_403() -> None:
    async with Simulator([ACCOUNT]) as sim:
        report = await official_client(sim, "not-the-token", "refused")
        assert sim.refusals() == {403: 1}
    assert report["frames"] == []
    ((code, reason),) = report["errors"]
    assert code == 1006
    assert "WebSocket connection upgrade failed (403 - Forbidden)" in reason


async def test_the_official_client_gets_the_recorded_ticks_from_kitefan_replay(
    tmp_path: Path,
) -> None:
    tokens = [INFY, NIFTY, SENSEX, USDINR_CDS, USDINR_BCD]
    frames = recordings.market_frames(tokens, 40, start_s=1_700_023_531, gap_s=0.05, seed=9)
    path = await recordings.write_recording(tmp_path / "day.kfr", frames)
    async with processes.started(*processes.kitefan("replay", str(path), "--port", "0")) as replay:
        assert replay.stdout is not None
        async with asyncio.timeout(40):
            url = (await replay.stdout.readline()).decode().strip()
        code, out, err = await processes.run(
            sys.executable, str(CLIENT), url, ACCOUNT.api_key, ACCOUNT.access_token, "ticks",
            env={**os.environ, "TZ": "UTC"}, within=40,
        )  # fmt: skip
        assert code == 0, err
        replay.send_signal(signal.SIGTERM)
        await replay.wait()
    assert replay.returncode == 0
    report = json.loads(out)
    assert report["errors"] == []
    assert len(report["frames"]) >= 5
    # Each token cut to the mode the client set: full 184 (index 32), quote 44 (index 28), ltp 8.
    cut = {INFY: 184, NIFTY: 32, SENSEX: 28, USDINR_CDS: 8, USDINR_BCD: 44}
    for seen, (_, recorded) in zip(report["frames"], frames, strict=False):
        frame = base64.b64decode(seen["frame"])
        assert frame == frame_of_packets(
            [
                packet[: cut[token]]
                for token, packet in zip(tokens, packets_of(recorded), strict=True)
            ]
        )
        assert [plain(t.as_dict()) for t in decode_frame(frame)] == seen["ticks"]


def packets_of(frame: bytes) -> list[bytes]:
    out, offset = [], 2
    for _ in range(int.from_bytes(frame[:2], "big")):
        length = int.from_bytes(frame[offset : offset + 2], "big")
        out.append(frame[offset + 2 : offset + 2 + length])
        offset += 2 + length
    return out
