"""kitefan.compat.KiteTicker is a drop-in for the official client's KiteTicker.

One script written for the official client (scripts/official_style.py) runs, against the real
simulator, once on ``kiteconnect`` and once with its import switched to ``kitefan.compat``: the
same callbacks in the same order (connect, the drop's error and close, connect again, the order
update, the server's error, the final close), ticks equal to the official parser's dicts for the
same bytes (naive local datetimes), and the same subscriptions at the end. Each run is its own
process: Twisted's reactor cannot be restarted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import processes
import pytest

from kitefan.codec import error_message
from kitefan.models import Mode
from kitefan.simulator import Account, Simulator

kiteconnect = pytest.importorskip("kiteconnect")

pytestmark = [pytest.mark.interop, pytest.mark.integration]

SCRIPT = Path(__file__).parent / "scripts" / "official_style.py"
ACCOUNT = Account("interop-api-key-02", "interop-access-token-02", label="interop")
INFY, NIFTY, SENSEX, USDINR = 408065, 256265, 265, (1050 << 8) | 3
MODES = {INFY: Mode.FULL, NIFTY: Mode.FULL, SENSEX: Mode.QUOTE, USDINR: Mode.LTP}
ORDER = {"order_id": "220303000308932", "status": "COMPLETE"}


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def official_parse(frame: bytes) -> list[dict[str, Any]]:
    """The official client's own parser on these bytes (no reactor is started)."""
    ticker = kiteconnect.KiteTicker(ACCOUNT.api_key, ACCOUNT.access_token)
    ticks: list[dict[str, Any]] = ticker._parse_binary(frame)
    return ticks


async def run_script(compat: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(processes.ROOT), "KITEFAN_COMPAT": "1" if compat else ""}
    async with Simulator([ACCOUNT], seed=5, rate=10.0, heartbeat_interval_s=0.2) as sim:

        def subscribed(skip: int | None = None) -> bool:
            return any(
                view.id != skip and view.subscriptions == MODES for view in sim.connections()
            )

        argv = (sys.executable, str(SCRIPT), sim.url, ACCOUNT.api_key, ACCOUNT.access_token)
        async with processes.started(*argv, env=env) as command:
            async with asyncio.timeout(30):
                await sim.wait_until(subscribed)
                (first,) = sim.connections()
                await sim.drop_connections()
                await sim.wait_until(lambda: subscribed(skip=first.id))
                await sim.push_order(ACCOUNT.api_key, ORDER)
                await sim.send_text(error_message("Can't subscribe to more than 3000 instruments."))
                out, err = await command.communicate()
            assert command.returncode == 0, err.decode()
    report: dict[str, Any] = json.loads(out)
    return report


@pytest.mark.slow
async def test_an_official_client_script_runs_unchanged_on_kitefan_compat() -> None:
    official = await run_script(compat=False)
    compat = await run_script(compat=True)
    expected_calls = [
        ["connect"],
        ["error", 1006],
        ["close", 1006],
        ["connect"],
        ["order", "220303000308932", "COMPLETE"],
        ["error", 0, "Can't subscribe to more than 3000 instruments."],
        ["close", 1000],
    ]
    assert official["calls"] == expected_calls
    assert compat["calls"] == expected_calls
    subscribed = {str(t): m.value for t, m in sorted(MODES.items())}
    assert official["subscribed_tokens"] == compat["subscribed_tokens"] == subscribed
    for report in (official, compat):
        assert len(report["frames"]) >= 4
        for seen in report["frames"]:
            assert seen["ticks"] == plain(official_parse(base64.b64decode(seen["frame"])))
    # Naive local datetimes, as the official client gives them.
    (full,) = [t for f in compat["frames"] for t in f["ticks"] if t["mode"] == "full"][:1]
    assert datetime.fromisoformat(full["exchange_timestamp"]).tzinfo is None
