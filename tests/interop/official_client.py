"""The official Python client (``kiteconnect.KiteTicker``) against a ticker URL, in its own process.

Run by test_kiteconnect_interop.py: Twisted's reactor cannot be restarted within a process, so
each run gets a fresh interpreter. Prints one JSON object on stdout: every binary frame the client
received (base64) with the ticks it decoded from it (datetimes as Unix seconds; run with TZ=UTC,
since the client builds naive local datetimes), and every on_error / on_close it saw.

    python official_client.py ROOT API_KEY ACCESS_TOKEN ticks|refused
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime
from typing import Any

from kiteconnect import KiteTicker
from twisted.internet import reactor

INFY, NIFTY, SENSEX = 408065, 256265, 265
USDINR_CDS, USDINR_BCD = (1050 << 8) | 3, (1050 << 8) | 6
WANTED = {(INFY, "full"), (NIFTY, "full"), (USDINR_CDS, "ltp"), (SENSEX, "quote")}


def plain(value: Any) -> Any:
    """JSON-friendly: naive UTC datetimes to Unix seconds."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC).timestamp()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def main() -> None:
    root, api_key, access_token, scenario = sys.argv[1:5]
    ticker = KiteTicker(api_key, access_token, root=root)
    report: dict[str, list[Any]] = {"frames": [], "errors": [], "closes": []}
    raw: list[bytes] = []
    seen: set[tuple[int, str]] = set()

    def finish() -> None:
        ticker.stop_retry()
        if reactor.running:
            # Twisted's reactor is typed as zope interfaces, whose methods take no self: mypy,
            # without the mypy-zope plugin, reads a call of one as a self-less attribute.
            reactor.stop()  # type: ignore[misc]  # see above

    def on_connect(ws: KiteTicker, response: Any) -> None:
        ws.subscribe([INFY, NIFTY, SENSEX, USDINR_CDS, USDINR_BCD])
        ws.set_mode(ws.MODE_FULL, [INFY, NIFTY])
        ws.set_mode(ws.MODE_LTP, [USDINR_CDS])

    def on_message(ws: KiteTicker, payload: bytes, is_binary: bool) -> None:
        if is_binary:
            raw.append(payload)

    def on_ticks(ws: KiteTicker, ticks: list[dict[str, Any]]) -> None:
        report["frames"].append(
            {"frame": base64.b64encode(raw[-1]).decode(), "ticks": plain(ticks)}
        )
        seen.update((t["instrument_token"], t["mode"]) for t in ticks)
        if seen >= WANTED and len(report["frames"]) >= 5:
            ws.close()
            reactor.callLater(0.2, finish)  # type: ignore[arg-type]  # as reactor.stop

    def on_error(ws: KiteTicker, code: Any, reason: Any) -> None:
        report["errors"].append([code, str(reason)])
        if scenario == "refused":
            finish()

    def on_close(ws: KiteTicker, code: Any, reason: Any) -> None:
        report["closes"].append([code, str(reason)])

    ticker.on_connect = on_connect
    ticker.on_message = on_message
    ticker.on_ticks = on_ticks
    ticker.on_error = on_error
    ticker.on_close = on_close
    reactor.callLater(20, finish)  # type: ignore[arg-type]  # never hang; typed as reactor.stop
    ticker.connect(threaded=False)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
