"""A script written for the official client, run on it and on kitefan.compat: only the import
differs (KITEFAN_COMPAT=1 picks kitefan's).

It subscribes in on_connect, sets modes, records every callback in order, and once it has been
reconnected (the test drops its socket), seen every token tick in its mode again, and received an
order update and a server error, it closes and stops in on_close. Prints one JSON object: the
callbacks, every binary frame (base64) with the ticks it was given for it (datetimes in ISO
form, naive as given), and its subscribed_tokens.

    python official_style.py ROOT API_KEY ACCESS_TOKEN
"""

from __future__ import annotations

import base64
import json
import os
import sys
from datetime import datetime
from typing import Any

if os.environ.get("KITEFAN_COMPAT") == "1":
    from kitefan.compat import KiteTicker
else:
    from kiteconnect import KiteTicker  # type: ignore[no-redef]  # either one: the same API

INFY, NIFTY, SENSEX, USDINR = 408065, 256265, 265, (1050 << 8) | 3
WANTED = {(INFY, "full"), (NIFTY, "full"), (SENSEX, "quote"), (USDINR, "ltp")}

calls: list[list[Any]] = []
frames: list[dict[str, Any]] = []
raw: list[bytes] = []
seen_after_reconnect: set[tuple[int, str]] = set()
state = {"connects": 0, "orders": 0, "server_errors": 0, "closing": False}


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def maybe_done(ws: Any) -> None:
    if (
        state["connects"] == 2
        and seen_after_reconnect >= WANTED
        and state["orders"]
        and state["server_errors"]
        and not state["closing"]
    ):
        state["closing"] = True
        ws.close(1000, "done")


def on_connect(ws: Any, response: Any) -> None:
    state["connects"] += 1
    calls.append(["connect"])
    ws.subscribe([INFY, NIFTY, SENSEX, USDINR])
    ws.set_mode(ws.MODE_FULL, [INFY, NIFTY])
    ws.set_mode(ws.MODE_LTP, [USDINR])


def on_message(ws: Any, payload: bytes, is_binary: bool) -> None:
    if is_binary and len(payload) > 4:
        raw.append(payload)


def on_ticks(ws: Any, ticks: list[dict[str, Any]]) -> None:
    frames.append({"frame": base64.b64encode(raw[-1]).decode(), "ticks": plain(ticks)})
    if state["connects"] == 2:
        seen_after_reconnect.update((t["instrument_token"], t["mode"]) for t in ticks)
    maybe_done(ws)


def on_order_update(ws: Any, data: dict[str, Any]) -> None:
    state["orders"] += 1
    calls.append(["order", data["order_id"], data["status"]])
    maybe_done(ws)


def on_error(ws: Any, code: Any, reason: Any) -> None:
    calls.append(["error", code])
    if code == 0:
        state["server_errors"] += 1
        calls[-1].append(reason)
    maybe_done(ws)


def on_close(ws: Any, code: Any, reason: Any) -> None:
    calls.append(["close", code])
    if state["closing"]:
        ws.stop()


def on_reconnect(ws: Any, attempts_count: int) -> None:
    calls.append(["reconnect", attempts_count])


def on_noreconnect(ws: Any) -> None:
    calls.append(["noreconnect"])
    ws.stop()


def main() -> None:
    root, api_key, access_token = sys.argv[1:4]
    kws = KiteTicker(api_key, access_token, root=root, reconnect_max_delay=5)
    kws.on_connect = on_connect
    kws.on_message = on_message
    kws.on_ticks = on_ticks
    kws.on_order_update = on_order_update
    kws.on_error = on_error
    kws.on_close = on_close
    kws.on_reconnect = on_reconnect
    kws.on_noreconnect = on_noreconnect
    kws.connect()
    subscribed = {str(token): mode for token, mode in sorted(kws.subscribed_tokens.items())}
    print(json.dumps({"calls": calls, "frames": frames, "subscribed_tokens": subscribed}))


if __name__ == "__main__":
    main()
