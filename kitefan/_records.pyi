"""The compiled tick-record encoder (kitefan/_records.c); see kitefan.render.records."""

from collections.abc import Callable, Sequence
from typing import Any

def jsonl(
    frame: bytes, head: bytes, name_of: Callable[[int], str] | dict[int, str], /
) -> bytes | None: ...
def csv(
    frame: bytes, head: bytes, name_of: Callable[[int], str] | dict[int, str], /
) -> bytes | None: ...
def fields(
    words: object,
    prices: object,
    orders: object,
    total: int,
    column: int,
    source: object,
    offset: int,
    count: int,
    step: int,
    plan: bytes,
    divisors: object,
    /,
) -> None: ...
def float_repr(x: float, /) -> str: ...
def scan(frame: bytes | bytearray | memoryview, /) -> tuple[int, int] | None: ...
def board_take(
    frame: bytes, batch: object, latest: dict[int, Any], rank: dict[int, Any] | None, sort: int, /
) -> bool: ...
def offset_of(frame: bytes, token: int, /) -> int | None: ...
def crc32s(buffers: Sequence[bytes | bytearray | memoryview], /) -> list[int]: ...
def fold(
    frame: bytes | bytearray | memoryview,
    offset: int,
    count: int,
    step: int,
    words: bytes,
    lane: dict[int, list[object]],
    miss: Callable[[int, int, int, int, int], object],
    whole: bool = False,
    /,
) -> bool: ...
