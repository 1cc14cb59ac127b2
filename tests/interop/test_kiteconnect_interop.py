"""The official Python client works against the simulator unchanged.

``KiteTicker(api_key, access_token, root="ws://127.0.0.1:PORT")`` connects, subscribes, sets
modes and decodes ticks equal to kitefan's decoding of the same frames; a bad token reaches it as
the 403 the real server answers with. The client runs in its own process (official_client.py):
Twisted's reactor cannot be restarted, and a process keeps its imports away from this one.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import processes
import pytest

from kitefan.codec import decode_frame
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
