"""The control channel's protocol (version 1), sans-I/O: lines of bytes in, typed documents out.

What ``kitefan stream`` serves on its control socket and ``kitefan stats`` / ``kitefan distribute``
ask (:mod:`kitefan.control` is the driver of both ends: the socket, the server's dispatch, the
client's connection). Newline-delimited JSON, one request and one response per line, as many as
the client likes on one connection:

* a request is ``{"v":1,"op":OP}`` (``never_ticked`` adds ``"key"``: a key id or null), at most
  :data:`REQUEST_LIMIT` bytes with its newline;
* a response is ``{"v":1,"ok":true,"result":RESULT}`` or ``{"v":1,"ok":false,"error":{"kind":
  KIND,"message":MESSAGE,...}}``.

The ops and their results:

* ``hello``: :class:`HelloDocument` (the stream's pid, config, version, protocol, start time,
  metrics URL, whether it runs with ``--share``);
* ``stats``: :data:`StatsDocument`, :meth:`kitefan.stats.FeedStats.as_dict` (what ``kitefan stats
  --format json`` prints), with ``share`` (the group, every member's last snapshot) for a
  ``--share`` stream;
* ``never_ticked``: :class:`NeverTickedDocument`, the subscribed symbols that have not ticked
  since subscribed, of one key or all, with where they stream;
* ``preview``: re-read the config file and answer the change applying it would make
  (:class:`kitefan.change.ChangeDocument`, ``"applied": false``), changing nothing;
* ``apply``: re-read the config file and apply it (``"applied": true``). SIGHUP does the same.

A line that is not a request (not UTF-8 JSON, not an object, no ``"op"``, another version, an
unknown op, a bad argument, too long) is answered with one ``control`` error saying what is wrong
(:func:`decode_request` raises :class:`ProtocolError` with that line). Errors keep their kind
(:class:`ErrorKind`) so that the client raises the same error, with the same exit code, as a
local command would (:func:`error_document`, :func:`error_of`). On the client's side a result is
checked by its reader (:func:`read_hello`, :func:`read_never_ticked`, :func:`read_change`): a
stream of another kitefan that answers something else is a :class:`ProtocolError`, not a crash.
No secret crosses the channel: a client never sends a config, and an error that is not kitefan's
own crosses as its type only.

Every line is written compactly (``separators=(",", ":")``, UTF-8, no ASCII escaping) and ends
with one ``\\n``.

Pure: bytes and values in, bytes and values out. Owns: the protocol's version and limits, the
request and response types and documents, their encoding and decoding, the error kinds and
their mapping to kitefan's errors. Must not import asyncio, socket, websockets, rich or typer,
or do any I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final, NotRequired, TypedDict, cast

from kitefan.change import ChangeDocument, ConfigChange
from kitefan.errors import ConfigError, ControlError, FeedError, KitefanError, PlanError

__all__ = [
    "PROTOCOL_VERSION",
    "REQUEST_LIMIT",
    "Apply",
    "ChangeDocument",
    "ErrorDocument",
    "ErrorKind",
    "Failure",
    "Hello",
    "HelloDocument",
    "NeverTicked",
    "NeverTickedDocument",
    "NeverTickedSymbol",
    "Ok",
    "Op",
    "Preview",
    "ProtocolError",
    "Request",
    "Response",
    "Stats",
    "StatsDocument",
    "decode_request",
    "decode_response",
    "encode_failure",
    "encode_request",
    "encode_result",
    "error_document",
    "error_of",
    "failure",
    "read_change",
    "read_hello",
    "read_never_ticked",
]

#: The version of the protocol; a request of another version is refused.
PROTOCOL_VERSION: Final = 1
#: The longest request line the server reads, its newline included; a longer one is refused.
REQUEST_LIMIT: Final = 64 * 1024


class Op(StrEnum):
    """What a request asks."""

    HELLO = "hello"
    STATS = "stats"
    NEVER_TICKED = "never_ticked"
    PREVIEW = "preview"
    APPLY = "apply"


class ErrorKind(StrEnum):
    """Which error a response carries: the client raises the same one (:func:`error_of`).

    ``config`` is a :class:`~kitefan.errors.ConfigError` (with its ``source`` and ``problems``),
    ``plan`` a :class:`~kitefan.errors.PlanError` (``reason``, ``asked``, ``fits``, ``hint``),
    ``feed`` a :class:`~kitefan.errors.FeedError`, ``control`` any other kitefan error (a request
    not understood, a stream still starting), ``internal`` an error that is not kitefan's (only
    its type crosses the channel: its text could say anything).
    """

    CONFIG = "config"
    PLAN = "plan"
    FEED = "feed"
    CONTROL = "control"
    INTERNAL = "internal"


class ProtocolError(ControlError):
    """A line that is not what the protocol says; the message is the one line that says why."""


# The requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Ask who the stream is: answered with a :class:`HelloDocument`."""

    op: ClassVar[Op] = Op.HELLO


@dataclass(frozen=True, slots=True)
class Stats:
    """Ask for the stream's stats: answered with a :data:`StatsDocument`."""

    op: ClassVar[Op] = Op.STATS


@dataclass(frozen=True, slots=True)
class NeverTicked:
    """Ask for the symbols of ``key`` (``None``: of every key) that have not ticked since
    subscribed: answered with a :class:`NeverTickedDocument`."""

    key: str | None = None
    op: ClassVar[Op] = Op.NEVER_TICKED


@dataclass(frozen=True, slots=True)
class Preview:
    """Ask what applying the config file would change: answered with a
    :class:`~kitefan.change.ChangeDocument` (``applied`` false)."""

    op: ClassVar[Op] = Op.PREVIEW


@dataclass(frozen=True, slots=True)
class Apply:
    """Ask the stream to re-read its config file and apply it: answered with a
    :class:`~kitefan.change.ChangeDocument` (``applied`` true)."""

    op: ClassVar[Op] = Op.APPLY


Request = Hello | Stats | NeverTicked | Preview | Apply

_OPS = f"{', '.join(list(Op)[:-1])} or {list(Op)[-1]}"  # hello, stats, ... or apply
_SIMPLE: dict[str, Request] = {
    Op.HELLO: Hello(),
    Op.STATS: Stats(),
    Op.PREVIEW: Preview(),
    Op.APPLY: Apply(),
}


# The documents --------------------------------------------------------------------------------


class HelloDocument(TypedDict):
    """The result of ``hello``."""

    pid: int
    config: str  #: the config file the stream runs, resolved
    version: str  #: kitefan's version
    protocol: int  #: :data:`PROTOCOL_VERSION`
    started_at: float  #: Unix seconds
    metrics: str | None  #: the metrics URL, if the stream serves metrics
    shared: bool  #: whether it runs with ``--share``


class NeverTickedSymbol(TypedDict):
    """A subscribed symbol that has not ticked since subscribed, and where it streams
    (``connection`` -1: on no connection of the plan)."""

    instrument_token: int
    symbol: str
    mode: str
    key: str
    connection: int


class NeverTickedDocument(TypedDict):
    """The result of ``never_ticked``."""

    symbols: list[NeverTickedSymbol]


#: The result of ``stats``: :meth:`kitefan.stats.FeedStats.as_dict`, with ``share`` for a
#: ``--share`` stream. Its shape is :mod:`kitefan.stats`'s, not this module's.
StatsDocument = dict[str, Any]


class ErrorDocument(TypedDict):
    """The error of a failed response (the extra fields rebuild a config or plan error)."""

    kind: str  #: an :class:`ErrorKind`; another word reads as ``control``
    message: str
    source: NotRequired[str]
    problems: NotRequired[list[str]]
    reason: NotRequired[str]
    asked: NotRequired[int]
    fits: NotRequired[int]
    hint: NotRequired[str]


# The responses --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ok:
    """A response with a result (the document of the op asked)."""

    result: Any


@dataclass(frozen=True, slots=True)
class Failure:
    """A response with an error."""

    error: ErrorDocument

    def exception(self) -> KitefanError:
        """The error to raise on the client's side (:func:`error_of`)."""
        return error_of(self.error)


Response = Ok | Failure


# Encoding -------------------------------------------------------------------------------------


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def encode_request(request: Request) -> bytes:
    """One request line: ``{"v":1,"op":"hello"}\\n`` (``never_ticked`` with its ``"key"``)."""
    document: dict[str, Any] = {"v": PROTOCOL_VERSION, "op": str(request.op)}
    if isinstance(request, NeverTicked):
        document["key"] = request.key
    return _line(document)


def encode_result(result: Any) -> bytes:
    """A response line with a result: ``{"v":1,"ok":true,"result":...}\\n``."""
    return _line({"v": PROTOCOL_VERSION, "ok": True, "result": result})


def encode_failure(error: ErrorDocument) -> bytes:
    """A response line with an error: ``{"v":1,"ok":false,"error":{...}}\\n``."""
    return _line({"v": PROTOCOL_VERSION, "ok": False, "error": error})


def failure(kind: ErrorKind, message: str) -> ErrorDocument:
    """An error document of only a kind and a message."""
    return {"kind": str(kind), "message": message}


# Decoding -------------------------------------------------------------------------------------


def decode_request(line: bytes) -> Request:
    """The request a line carries (with or without its newline).

    Raises:
        ProtocolError: the line is not a request of this protocol; its message is the one line
            the server answers with (kind ``control``).
    """
    if len(line) > REQUEST_LIMIT:
        raise ProtocolError("request too long")
    try:
        document = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProtocolError("a request is one JSON object per line") from None
    if not isinstance(document, dict) or not isinstance(document.get("op"), str):
        raise ProtocolError('a request needs an "op"')
    version = document.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        shown = "none" if "v" not in document else json.dumps(version, ensure_ascii=False)
        if len(shown) > 40:
            shown = shown[:39] + "…"
        raise ProtocolError(
            f"this stream speaks control protocol {PROTOCOL_VERSION}, the request "
            f"{shown}: use the same kitefan version for both"
        )
    op = document["op"]
    if op == Op.NEVER_TICKED:
        key = document.get("key")
        if key is not None and not isinstance(key, str):
            raise ProtocolError('"key" is a key id or null')
        return NeverTicked(key)
    request = _SIMPLE.get(op)
    if request is None:
        raise ProtocolError(f"unknown op {op!r}: {_OPS}")
    return request


def decode_response(line: bytes) -> Response:
    """The response a line carries.

    Raises:
        ProtocolError: the line is not a response of this protocol (``answered garbage``).
    """
    try:
        document = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProtocolError("answered garbage") from None
    if not isinstance(document, dict):
        raise ProtocolError("answered garbage")
    if document.get("ok") is True:
        return Ok(document.get("result"))
    error = document.get("error")
    if not isinstance(error, dict):
        error = {}
    kind, message = error.get("kind"), error.get("message")
    read = dict(error)
    read["kind"] = kind if isinstance(kind, str) else str(ErrorKind.CONTROL)
    read["message"] = message if isinstance(message, str) else "the stream refused the request"
    return Failure(cast(ErrorDocument, read))


# Reading results ------------------------------------------------------------------------------


def read_hello(result: Any) -> HelloDocument:
    """A ``hello`` result, checked (``metrics`` and ``shared`` default to none and false).

    Raises:
        ProtocolError: it is not a hello document.
    """
    if not isinstance(result, dict):
        raise ProtocolError("answered a hello that is not an object")
    for name, kind in _HELLO_FIELDS:
        if not isinstance(result.get(name), kind) or isinstance(result.get(name), bool):
            raise ProtocolError(f'answered a hello without a "{name}"')
    metrics, shared = result.get("metrics"), result.get("shared", False)
    return {
        "pid": result["pid"],
        "config": result["config"],
        "version": result["version"],
        "protocol": result["protocol"],
        "started_at": float(result["started_at"]),
        "metrics": metrics if isinstance(metrics, str) else None,
        "shared": shared is True,
    }


_HELLO_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("pid", int),
    ("config", str),
    ("version", str),
    ("protocol", int),
    ("started_at", (int, float)),
)


def read_never_ticked(result: Any) -> list[NeverTickedSymbol]:
    """A ``never_ticked`` result's symbols, checked.

    Raises:
        ProtocolError: it is not a never_ticked document.
    """
    symbols = result.get("symbols") if isinstance(result, dict) else None
    if not isinstance(symbols, list):
        raise ProtocolError('answered a never_ticked result without "symbols"')
    read: list[NeverTickedSymbol] = []
    for symbol in symbols:
        try:
            read.append(
                {
                    "instrument_token": _int(symbol["instrument_token"]),
                    "symbol": _str(symbol["symbol"]),
                    "mode": _str(symbol["mode"]),
                    "key": _str(symbol["key"]),
                    "connection": _int(symbol["connection"]),
                }
            )
        except (KeyError, TypeError, ValueError):
            raise ProtocolError("answered a never_ticked symbol that is not one") from None
    return read


def read_change(result: Any) -> ConfigChange:
    """A ``preview`` or ``apply`` result as the change it says.

    Raises:
        ProtocolError: it is not a change document.
    """
    try:
        return ConfigChange.from_dict(result)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ProtocolError("answered a change that is not one") from None


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(value)
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


# Errors ---------------------------------------------------------------------------------------


def error_document(exc: BaseException) -> ErrorDocument:
    """A library error as the channel carries it (its own message holds no secret); any other
    error by its type only."""
    match exc:
        case ConfigError():
            return {
                "kind": str(ErrorKind.CONFIG),
                "message": str(exc),
                "source": exc.source,
                "problems": exc.problems,
            }
        case PlanError():
            return {
                "kind": str(ErrorKind.PLAN),
                "message": str(exc),
                "reason": exc.reason,
                "asked": exc.asked,
                "fits": exc.fits,
                "hint": exc.hint,
            }
        case FeedError():
            return failure(ErrorKind.FEED, str(exc))
        case KitefanError():
            return failure(ErrorKind.CONTROL, str(exc))
        case _:
            return failure(
                ErrorKind.INTERNAL,
                f"internal error in the stream ({type(exc).__name__}); "
                "run it with --debug to see it",
            )


def error_of(document: Mapping[str, Any]) -> KitefanError:
    """The error a response carries, to raise on the client's side: a config or plan error
    rebuilt from its fields (a control error if they are missing), a feed error, else a control
    error with the message."""
    kind = document.get("kind")
    message = str(document.get("message", "the stream refused the request"))
    try:
        if kind == ErrorKind.CONFIG:
            return ConfigError(str(document["source"]), [str(p) for p in document["problems"]])
        if kind == ErrorKind.PLAN:
            return PlanError(
                str(document["reason"]),
                asked=int(document["asked"]),
                fits=int(document["fits"]),
                hint=str(document["hint"]),
            )
    except (KeyError, TypeError, ValueError):
        pass
    if kind == ErrorKind.FEED:
        return FeedError(message)
    return ControlError(message)
