"""Order updates in the postback shape, as Kite pushes them on the ticker socket.

docs/protocol.md §7: ``{"type": "order", "data": {...}}`` where the data has the fields and order of
an HTTP postback (fixtures/kiteconnect-mocks/postback.json). Timestamps are IST wall-clock strings
``YYYY-MM-DD HH:MM:SS``. The real ``checksum`` is the SHA-256 of ``order_id + order_timestamp +
api_secret``; the simulator knows no api secret and uses :data:`CHECKSUM_SECRET` in its place, so
the value has the right shape and is reproducible, and no credential goes into it.

Owns: :func:`order_postback`. Must not import asyncio, websockets, rich or typer.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from kitefan.models import IST

__all__ = ["CHECKSUM_SECRET", "order_postback"]

#: Stands in for the api secret in the checksum of simulated order updates.
CHECKSUM_SECRET = "kitefan-simulator"  # noqa: S105 - public on purpose: no credential at all

# (instrument_token, tradingsymbol, exchange, average price) of the orders the simulator invents.
_ORDERS = (
    (779521, "SBIN", "NSE", 470.0),
    (408065, "INFY", "NSE", 1512.35),
    (738561, "RELIANCE", "NSE", 2456.8),
    (884737, "TATAMOTORS", "NSE", 392.95),
)


def order_postback(sequence: int, now_s: float, *, user_id: str = "AB1234") -> dict[str, Any]:
    """A filled market order, in the postback shape, with ids derived from ``sequence``.

    Args:
        sequence: makes the order id (15 digits, date first, like Kite's) and the guid unique.
        now_s: the order's time, Unix seconds.
        user_id: the Kite user the order belongs to.

    Returns:
        The ``data`` of an ``{"type": "order"}`` message, keys in the postback's order.
    """
    when = datetime.fromtimestamp(now_s, tz=IST)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S")
    order_id = f"{when:%y%m%d}{sequence % 10**9:09d}"
    token, symbol, exchange, price = _ORDERS[sequence % len(_ORDERS)]
    checksum = hashlib.sha256(f"{order_id}{stamp}{CHECKSUM_SECRET}".encode()).hexdigest()
    return {
        "user_id": user_id,
        "unfilled_quantity": 0,
        "app_id": 1234,
        "checksum": checksum,
        "placed_by": user_id,
        "order_id": order_id,
        "exchange_order_id": f"1{sequence % 10**15:015d}",
        "parent_order_id": None,
        "status": "COMPLETE",
        "status_message": None,
        "status_message_raw": None,
        "order_timestamp": stamp,
        "exchange_update_timestamp": stamp,
        "exchange_timestamp": stamp,
        "variety": "regular",
        "exchange": exchange,
        "tradingsymbol": symbol,
        "instrument_token": token,
        "order_type": "MARKET",
        "transaction_type": "BUY",
        "validity": "DAY",
        "product": "CNC",
        "quantity": 1,
        "disclosed_quantity": 0,
        "price": 0,
        "trigger_price": 0,
        "average_price": price,
        "filled_quantity": 1,
        "pending_quantity": 0,
        "cancelled_quantity": 0,
        "market_protection": 0,
        "meta": {},
        "tag": None,
        "guid": f"sim{sequence:06d}",
    }
