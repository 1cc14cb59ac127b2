"""kitefan: stream Zerodha Kite Connect market data across many API keys.

``from kitefan import decode_frame`` gives the wire decoder: the bytes of one binary WebSocket
message in, a list of :class:`~kitefan.models.Tick` out, each with ``as_dict()`` returning the
official Python client's dict.
"""

from __future__ import annotations

from kitefan.codec import decode_frame, decode_packets, encode_frame
from kitefan.errors import (
    AuthError,
    CodecError,
    ConfigError,
    ControlError,
    FeedError,
    InstrumentsError,
    KitefanError,
    PlanError,
    SlotLimitError,
    SymbolError,
)
from kitefan.models import Mode, PacketKind, Tick

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "CodecError",
    "ConfigError",
    "ControlError",
    "FeedError",
    "InstrumentsError",
    "KitefanError",
    "Mode",
    "PacketKind",
    "PlanError",
    "SlotLimitError",
    "SymbolError",
    "Tick",
    "__version__",
    "decode_frame",
    "decode_packets",
    "encode_frame",
]
