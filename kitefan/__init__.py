"""kitefan: stream Zerodha Kite Connect market data across many API keys.

The front door::

    from kitefan import AppConfig, FeedManager, KitefanError, Mode, Simulator, load_config

``from kitefan import decode_frame`` gives the wire decoder: the bytes of one binary WebSocket
message in, a list of :class:`~kitefan.models.Tick` out, each with ``as_dict()`` returning the
official Python client's dict.

``import kitefan`` stays cheap: it loads the codec, the models, the events and the error tree
(standard library only). The names that need more (the feed and the simulator bring websockets,
the config brings the TOML reader and the instruments dump) are imported on first use of the
name, through the module's ``__getattr__``.

Owns: the package's public names. Must not import websockets, asyncio, rich or typer at import
time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kitefan.codec import decode_frame, decode_packets, encode_frame
from kitefan.errors import (
    AuthError,
    BrokerError,
    CodecError,
    ConfigError,
    ControlError,
    FeedError,
    InstrumentsError,
    KitefanError,
    NoUsableKeyError,
    PlanError,
    RecordingError,
    SlotLimitError,
    StreamNotRunningError,
    SymbolError,
    UnreachableError,
)
from kitefan.events import ErrorEvent, Event, OrderEvent, Status, StatusEvent, TickBatch
from kitefan.models import Mode, PacketKind, Tick

if TYPE_CHECKING:
    from kitefan.loader import config_from_dict, load_config, load_config_text
    from kitefan.manager import FeedManager
    from kitefan.settings import AppConfig, KeyConfig, SymbolSpec, Tuning
    from kitefan.simulator import Account, Simulator
    from kitefan.streams import EventStream

__version__ = "0.1.0"

# Imported when first asked for: name -> the module that defines it.
_LAZY = {
    "AppConfig": "kitefan.settings",
    "KeyConfig": "kitefan.settings",
    "SymbolSpec": "kitefan.settings",
    "Tuning": "kitefan.settings",
    "config_from_dict": "kitefan.loader",
    "load_config": "kitefan.loader",
    "load_config_text": "kitefan.loader",
    "EventStream": "kitefan.streams",
    "FeedManager": "kitefan.manager",
    "Account": "kitefan.simulator",
    "Simulator": "kitefan.simulator",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kitefan' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Account",
    "AppConfig",
    "AuthError",
    "BrokerError",
    "CodecError",
    "ConfigError",
    "ControlError",
    "ErrorEvent",
    "Event",
    "EventStream",
    "FeedError",
    "FeedManager",
    "InstrumentsError",
    "KeyConfig",
    "KitefanError",
    "Mode",
    "NoUsableKeyError",
    "OrderEvent",
    "PacketKind",
    "PlanError",
    "RecordingError",
    "Simulator",
    "SlotLimitError",
    "Status",
    "StatusEvent",
    "StreamNotRunningError",
    "SymbolError",
    "SymbolSpec",
    "Tick",
    "TickBatch",
    "Tuning",
    "UnreachableError",
    "__version__",
    "config_from_dict",
    "decode_frame",
    "decode_packets",
    "encode_frame",
    "load_config",
    "load_config_text",
]
