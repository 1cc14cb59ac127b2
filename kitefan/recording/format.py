"""The recording's bytes: the file header, the chunks, the records, and the events they hold.

Sans-I/O in the manner of h11: :class:`ChunkBuilder` turns records into a chunk's bytes,
:class:`LogScanner` is fed bytes (any amount at a time) and hands back the header, each whole
chunk, each stretch it had to skip, and where the data stopped. Nothing here opens a file, reads a
clock or starts a thread; the writer and the reader (:mod:`kitefan.recording.writer`,
:mod:`kitefan.recording.reader`) do that around it.

The layout, byte by byte (every integer little-endian, unsigned; CRC-32 is zlib's):

File header, once at offset 0::

    0   8  magic  89 4B 46 52 0D 0A 1A 0A  ("\\x89KFR\\r\\n\\x1a\\n")
    8   2  format version (1)
    10  2  flags (0)
    12  4  M: length of the metadata
    16  M  metadata: a UTF-8 JSON object ("compression": "zstd", "created", "kitefan", "source")
    16+M 4 CRC-32 of bytes 0 .. 16+M

Then chunks, back to back, each independent of every other::

    0   4  chunk magic "KFCK"
    4   4  C: length of the payload
    8   4  R: length of the payload once decompressed
    12  4  records in the chunk
    16  8  receive time of its first record, Unix nanoseconds
    24  8  receive time of its last record, Unix nanoseconds
    32  4  CRC-32 of the payload
    36  4  CRC-32 of bytes 0 .. 36 of this chunk header
    40  C  payload: one zstd frame of R bytes, the records back to back

A record::

    0   1  kind: 1 frame, 2 status, 3 order, 4 error, 5 symbols (readers skip kinds they
           do not know)
    1   1  connection, 0 .. 2 (255: none, an event of the whole feed)
    2   2  K: length of the key
    4   4  B: length of the body
    8   8  time, Unix nanoseconds (a frame's receive time; an event's time)
    16  K  the key's config id, UTF-8 (empty for symbols)
    16+K B body

A frame's body is the frame's bytes exactly as received (the Kite ticker's binary message). The
other bodies are UTF-8 JSON objects: status ``{"state", "message", "at", "gap"?}`` (``state`` a
:class:`~kitefan.events.Status` word; one this version does not know is read back as it is) with
``gap`` ``{"start", "end", "tokens", "reason"}`` (Unix seconds and a list of tokens); order ``{"at",
"data"}`` (the postback); error ``{"at", "text"}`` (exactly what the server sent, or what did not
decode); symbols ``{"<token>": "EXCHANGE:TRADINGSYMBOL", ...}``: the names from then on (the
first chunk of every file has them all, later ones what changed). ``at`` is the event's time as a
float, exact; the record's nanoseconds are the same time rounded, for ordering and seeking.

A reader checks both CRCs: a chunk whose payload does not match is skipped and counted; a chunk
header that does not match, or bytes that are not a chunk, are skipped up to the next chunk magic
whose header checks. At the end of the data, the bytes of a chunk not written whole (the writer
was killed) are where the reading stopped.

Owns: the format's constants, :class:`ChunkBuilder`, :class:`LogScanner`, the records and their
events. Must not import asyncio, os, pathlib, rich or typer (no I/O).
"""

from __future__ import annotations

import importlib
import json
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kitefan.errors import RecordingError
from kitefan.events import ErrorEvent, Event, Gap, OrderEvent, Status, StatusEvent, TickBatch
from kitefan.models import OrderUpdate

__all__ = [
    "CHUNK_HEADER",
    "CHUNK_MAGIC",
    "FILE_MAGIC",
    "KIND_ERROR",
    "KIND_FRAME",
    "KIND_ORDER",
    "KIND_STATUS",
    "KIND_SYMBOLS",
    "NO_CONNECTION",
    "RECORD_HEAD",
    "VERSION",
    "Chunk",
    "ChunkBuilder",
    "Compressor",
    "End",
    "Header",
    "LogScanner",
    "Record",
    "Skipped",
    "decode_header",
    "encode_header",
    "event_record",
    "parse_records",
    "record_event",
    "symbols_body",
    "symbols_of",
    "zstd_compressor",
    "zstd_decompressor",
]

FILE_MAGIC = b"\x89KFR\r\n\x1a\n"
VERSION = 1
CHUNK_MAGIC = b"KFCK"

KIND_FRAME = 1
KIND_STATUS = 2
KIND_ORDER = 3
KIND_ERROR = 4
KIND_SYMBOLS = 5
#: The connection byte of an event of the whole feed (``connection is None``).
NO_CONNECTION = 255

_FILE_HEAD = struct.Struct("<8sHHI")  # magic, version, flags, metadata length
_CHUNK_HEAD = struct.Struct("<4sIIIQQI")  # magic, C, R, records, first ns, last ns, payload CRC
_CRC = struct.Struct("<I")
_RECORD = struct.Struct("<BBHIQ")  # kind, connection, key length, body length, ns

#: Bytes of a chunk's header.
CHUNK_HEADER = _CHUNK_HEAD.size + _CRC.size
#: Bytes of a record's fixed head.
RECORD_HEAD = _RECORD.size
#: A chunk larger than this is not one a kitefan writer wrote (a guard for the reader's memory).
_MAX_CHUNK = 1 << 30

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

Compressor = Callable[[bytes], bytes]


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a runtime dependency; a broken install only
        raise RecordingError(
            "recordings need zstandard: pip install zstandard (or reinstall kitefan)"
        ) from None
    return zstandard


def zstd_compressor(level: int = 3) -> Compressor:
    """A chunk payload's compressor (one zstd frame, its size in the frame header)."""
    return _zstd().ZstdCompressor(level=level, write_content_size=True).compress  # type: ignore[no-any-return]


def zstd_decompressor() -> Callable[[bytes, int], bytes]:
    """A payload's decompressor: ``(payload, raw length) -> raw bytes``."""
    decompress = _zstd().ZstdDecompressor().decompress

    def run(payload: bytes, size: int) -> bytes:
        return decompress(payload, max_output_size=size)  # type: ignore[no-any-return]

    return run


def _compiled_crc32s() -> Callable[[Sequence[bytes]], list[int]] | None:
    try:
        # By name, as kitefan.columnar imports it (the compiled module has no Python source).
        compiled = importlib.import_module("kitefan._records")
    except ImportError:  # not built: zlib, one call per payload
        return None
    return getattr(compiled, "crc32s", None)


_CRC32S = _compiled_crc32s()


def payload_crcs(payloads: Sequence[bytes]) -> list[int]:
    """``zlib.crc32`` of each payload: in one compiled call where kitefan._records is built
    (which holds the GIL for small work and gives it up once for large), else one zlib call
    each (which gives the GIL up and takes it back for every payload over 5 KB)."""
    if _CRC32S is not None:
        return _CRC32S(payloads)
    return [zlib.crc32(p) for p in payloads]


# The file header --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    """The file header: the format version and the metadata the writer put there.

    ``corrupt`` is true when its CRC did not match (the metadata is then empty and the chunks
    are read all the same)."""

    version: int
    metadata: Mapping[str, Any]
    size: int
    corrupt: bool = False


def encode_header(metadata: Mapping[str, Any]) -> bytes:
    """The file header's bytes."""
    meta = _dumps(dict(metadata)).encode()
    head = _FILE_HEAD.pack(FILE_MAGIC, VERSION, 0, len(meta)) + meta
    return head + _CRC.pack(zlib.crc32(head))


def decode_header(data: bytes | bytearray | memoryview) -> Header | None:
    """The header at the start of ``data``, or ``None`` when more bytes are needed.

    Raises:
        RecordingError: the data is not a kitefan recording, or one of a newer version.
    """
    if len(data) < len(FILE_MAGIC):
        if bytes(data) != FILE_MAGIC[: len(data)]:
            raise RecordingError("not a kitefan recording (it does not start with its magic)")
        return None
    if bytes(data[:8]) != FILE_MAGIC:
        raise RecordingError("not a kitefan recording (it does not start with its magic)")
    if len(data) < _FILE_HEAD.size:
        return None
    _, version, _, length = _FILE_HEAD.unpack_from(data)
    if version > VERSION:
        raise RecordingError(
            f"a recording of format version {version}; this kitefan reads version {VERSION} "
            "and older: upgrade kitefan"
        )
    size = _FILE_HEAD.size + length + _CRC.size
    if length > _MAX_CHUNK:
        return Header(version, {}, _FILE_HEAD.size, corrupt=True)
    if len(data) < size:
        return None
    head = bytes(data[: size - _CRC.size])
    (crc,) = _CRC.unpack_from(data, size - _CRC.size)
    if zlib.crc32(head) != crc:
        return Header(version, {}, _FILE_HEAD.size, corrupt=True)
    try:
        metadata = json.loads(head[_FILE_HEAD.size :].decode())
    except (UnicodeDecodeError, ValueError):
        return Header(version, {}, size, corrupt=True)
    if not isinstance(metadata, dict):
        return Header(version, {}, size, corrupt=True)
    return Header(version, metadata, size)


# Records ----------------------------------------------------------------------------------------


class Record(NamedTuple):
    """One record: its kind, key, connection (``None`` for the whole feed), time in Unix
    nanoseconds, and body (a frame's bytes, or an event's JSON)."""

    kind: int
    key: str
    connection: int | None
    ns: int
    body: bytes


def parse_records(raw: bytes, count: int) -> list[Record]:
    """A chunk's decompressed payload as its records.

    Raises:
        ValueError: the payload does not hold ``count`` well-formed records exactly.
    """
    out: list[Record] = []
    append = out.append
    unpack = _RECORD.unpack_from
    head = RECORD_HEAD
    keys: dict[bytes, str] = {}
    pos = 0
    end = len(raw)
    for _ in range(count):
        if pos + head > end:
            raise ValueError(f"a record's head runs past the chunk at {pos}")
        kind, conn, klen, blen, ns = unpack(raw, pos)
        start = pos + head
        body_at = start + klen
        pos = body_at + blen
        if pos > end:
            raise ValueError(f"a record runs past the chunk at {start - head}")
        kb = raw[start:body_at]
        key = keys.get(kb)
        if key is None:
            key = keys[kb] = kb.decode()
        append(Record(kind, key, None if conn == NO_CONNECTION else conn, ns, raw[body_at:pos]))
    if pos != end:
        raise ValueError(f"{end - pos} bytes after the chunk's last record")
    return out


def event_record(event: Event) -> Record:
    """The record of a feed's event."""
    if isinstance(event, TickBatch):
        return Record(
            KIND_FRAME,
            event.key,
            event.connection,
            round(event.received_wall * 1e9),
            event.frame,
        )
    body: dict[str, Any]
    if isinstance(event, StatusEvent):
        kind = KIND_STATUS
        body = {"state": str(event.state), "message": event.message, "at": event.at}
        if (gap := event.gap) is not None:
            body["gap"] = {
                "start": gap.start,
                "end": gap.end,
                "tokens": list(gap.tokens),
                "reason": gap.reason,
            }
    elif isinstance(event, OrderEvent):
        kind = KIND_ORDER
        body = {"at": event.at, "data": dict(event.update.data)}
    else:
        kind = KIND_ERROR
        body = {"at": event.at, "text": event.text}
    encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode(
        errors="surrogatepass"
    )
    return Record(kind, event.key, event.connection, round(event.at * 1e9), encoded)


def record_event(record: Record, received_at: float = 0.0) -> Event | None:
    """A record back as the feed's event: a :class:`TickBatch` (``received_wall`` its receive
    time, ``received_at`` as given), a status, order or error event; ``None`` for symbols and
    kinds this version does not know.

    Raises:
        CodecError: a frame record whose bytes are not a well-formed frame.
        ValueError: an event record whose JSON is not what a kitefan writer writes.
    """
    kind = record.kind
    if kind == KIND_FRAME:
        return TickBatch(
            record.key, record.connection or 0, record.body, received_at, record.ns / 1e9
        )
    if kind not in (KIND_STATUS, KIND_ORDER, KIND_ERROR):
        return None
    try:
        body = json.loads(record.body.decode(errors="surrogatepass"))
        at = float(body["at"])
        if kind == KIND_ORDER:
            return OrderEvent(record.key, record.connection or 0, OrderUpdate(body["data"]), at)
        if kind == KIND_ERROR:
            return ErrorEvent(record.key, record.connection or 0, str(body["text"]), at)
        gap = None
        if (shown := body.get("gap")) is not None:
            gap = Gap(
                float(shown["start"]),
                float(shown["end"]),
                tuple(int(t) for t in shown["tokens"]),
                str(shown["reason"]),
            )
        state = Status.read(str(body["state"]))  # a word this version does not know is kept
        return StatusEvent(record.key, record.connection, state, str(body["message"]), at, gap)
    except (KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"an event record kitefan did not write ({exc})") from None


def symbols_body(names: Mapping[int, str]) -> bytes:
    """The body of a symbols record."""
    return _dumps({str(token): name for token, name in names.items()}).encode()


def symbols_of(record: Record) -> dict[int, str]:
    """The names a symbols record holds (empty if it is not one kitefan wrote)."""
    try:
        names = json.loads(record.body)
        return {int(token): str(name) for token, name in names.items()}
    except (ValueError, AttributeError, UnicodeDecodeError):
        return {}


# Writing chunks ---------------------------------------------------------------------------------


class ChunkBuilder:
    """The records of the chunk being built, and its bytes once sealed.

    ``ticks`` and ``events`` count what it holds (for a writer that must count what it could not
    write)."""

    __slots__ = ("_keys", "events", "first_ns", "last_ns", "raw", "records", "ticks")

    def __init__(self) -> None:
        self.raw = bytearray()
        self.records = 0
        self.ticks = 0
        self.events = 0
        self.first_ns = 0
        self.last_ns = 0
        self._keys: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self.raw)

    def add(self, record: Record, ticks: int = 0) -> None:
        """Append a record (``ticks``: how many ticks it holds, for the counts)."""
        key = self._keys.get(record.key)
        if key is None:
            key = self._keys[record.key] = record.key.encode(errors="surrogatepass")
        if len(key) > 0xFFFF:
            raise ValueError("a key id longer than 65,535 bytes")
        conn = NO_CONNECTION if record.connection is None else record.connection
        raw = self.raw
        raw += _RECORD.pack(record.kind, conn, len(key), len(record.body), record.ns)
        raw += key
        raw += record.body
        if self.records == 0:
            self.first_ns = record.ns
        self.last_ns = max(self.last_ns, record.ns)
        self.records += 1
        if record.kind == KIND_FRAME:
            self.ticks += ticks
        elif record.kind != KIND_SYMBOLS:
            self.events += 1

    def add_all(self, records: Iterable[Record]) -> None:
        for record in records:
            self.add(record)

    def seal(self, compress: Compressor) -> bytes:
        """The chunk's bytes: its header, then its records compressed."""
        return encode_chunk(bytes(self.raw), self.records, self.first_ns, self.last_ns, compress)


def encode_chunk(
    raw: bytes, records: int, first_ns: int, last_ns: int, compress: Compressor
) -> bytes:
    """A chunk of records (``raw``, back to back) as its bytes."""
    payload = compress(raw)
    head = _CHUNK_HEAD.pack(
        CHUNK_MAGIC, len(payload), len(raw), records, first_ns, last_ns, zlib.crc32(payload)
    )
    return head + _CRC.pack(zlib.crc32(head)) + payload


# Reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunk:
    """A whole chunk, checked: where it is in the file, its size on disk, its records."""

    offset: int
    size: int
    first_ns: int
    last_ns: int
    raw_size: int
    records: list[Record] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Skipped:
    """Bytes the reader skipped: a chunk whose checksum did not match, or bytes that are not a
    chunk. ``chunk`` is true when they were one chunk (its header checked, its payload did not)."""

    offset: int
    size: int
    reason: str
    chunk: bool


@dataclass(frozen=True, slots=True)
class End:
    """Where the data ended: ``offset`` is the end of the last whole chunk (or header), and
    ``truncated`` the bytes after it that were not a whole chunk (a writer killed mid-write, or a
    file still being written)."""

    offset: int
    truncated: int


ScanItem = Header | Chunk | Skipped | End


@dataclass(frozen=True, slots=True)
class _Located:
    """A chunk whose header checked and whose bytes are all here, not yet opened."""

    offset: int
    size: int
    first_ns: int
    last_ns: int
    raw_size: int
    count: int
    crc: int
    payload: bytes


class LogScanner:
    """A recording's bytes in, its header, chunks and skipped stretches out.

    Feed it with :meth:`receive_data` as the bytes come (a file read in blocks, or followed as it
    grows); call :meth:`next_item` until it returns ``None`` (more bytes needed); call
    :meth:`end_of_data` when there are no more, and :meth:`next_item` then returns what is left,
    ending with an :class:`End`.
    """

    def __init__(self, decompress: Callable[[bytes, int], bytes] | None = None) -> None:
        self._decompress = decompress or zstd_decompressor()
        self._buf = bytearray()
        self._pos = 0  # in _buf
        self._base = 0  # the file offset of _buf[0]
        self._eof = False
        self._ended = False
        self.header: Header | None = None
        self._skip_from: int | None = None  # file offset where a stretch being skipped began
        self._skip_reason = ""

    @property
    def offset(self) -> int:
        """The file offset the scanner has read up to (the end of what it handed out)."""
        return self._base + self._pos

    def receive_data(self, data: bytes) -> None:
        if self._eof:
            raise RuntimeError("data after end_of_data()")
        if self._pos > (1 << 20) and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._base += self._pos
            self._pos = 0
        self._buf += data

    def end_of_data(self) -> None:
        self._eof = True

    def next_item(self) -> ScanItem | None:
        """The next item, or ``None`` when more data is needed (after :meth:`end_of_data`, the
        last item is an :class:`End` and then ``None``).

        Raises:
            RecordingError: the data is not a kitefan recording, or of a newer version.
        """
        if self._ended:
            return None
        buf = self._buf
        if self.header is None:
            header = decode_header(memoryview(buf)[self._pos :])
            if header is None:
                return self._end() if self._eof else None
            self.header = header
            self._pos += header.size
            if header.corrupt:
                self._skip_from, self._skip_reason = self.offset, "the file header is corrupt"
            return header
        if self._skip_from is not None:
            return self._resync()
        located = self._locate()
        if located is not None:
            return self._open([located])[0]
        if self._skipping():  # the next bytes are not a chunk header
            return self._resync()
        return self._end() if self._eof else None

    def _skipping(self) -> bool:
        return self._skip_from is not None

    def next_items(self, max_raw: int = 1 << 20) -> list[ScanItem]:
        """What :meth:`next_item` would give, one call after another, for every chunk whose bytes
        are all here (until their decompressed sizes reach ``max_raw``), their checksums taken
        in one call (:func:`payload_crcs`). When the next item is not a whole chunk, that one
        item; an empty list when more data is needed.

        Raises:
            RecordingError: as :meth:`next_item`.
        """
        if self._ended:
            return []
        located: list[_Located] = []
        raw = 0
        if self.header is not None and self._skip_from is None:
            while raw < max_raw:
                one = self._locate()
                if one is None:
                    break
                located.append(one)
                raw += one.raw_size
        if located:
            return self._open(located)
        item = self.next_item()
        return [] if item is None else [item]

    def _locate(self) -> _Located | None:
        """The next chunk, taken out of the buffer, when its header checks and all its bytes
        are here; else ``None``, nothing taken (a header that does not check starts a skip)."""
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if available < CHUNK_HEADER:
            return None
        magic, clen, rlen, count, first, last, pcrc = _CHUNK_HEAD.unpack_from(buf, pos)
        (hcrc,) = _CRC.unpack_from(buf, pos + _CHUNK_HEAD.size)
        if (
            magic != CHUNK_MAGIC
            or zlib.crc32(memoryview(buf)[pos : pos + _CHUNK_HEAD.size]) != hcrc
            or clen > _MAX_CHUNK
            or rlen > _MAX_CHUNK
        ):
            self._skip_from, self._skip_reason = self.offset, "not a chunk header"
            return None
        size = CHUNK_HEADER + clen
        if available < size:
            return None
        offset = self.offset
        payload = bytes(buf[pos + CHUNK_HEADER : pos + size])
        self._pos += size
        return _Located(offset, size, first, last, rlen, count, pcrc, payload)

    def _open(self, located: list[_Located]) -> list[ScanItem]:
        """The located chunks, checked, decompressed and read: a :class:`Chunk` each, or a
        :class:`Skipped` where its checksum does not match or its records do not read."""
        crcs = payload_crcs([c.payload for c in located])
        out: list[ScanItem] = []
        for chunk, crc in zip(located, crcs, strict=True):
            if crc != chunk.crc:
                out.append(
                    Skipped(chunk.offset, chunk.size, "its checksum does not match", chunk=True)
                )
                continue
            try:
                raw = self._decompress(chunk.payload, chunk.raw_size)
                if len(raw) != chunk.raw_size:
                    raise ValueError(f"{len(raw)} bytes decompressed, not {chunk.raw_size}")
                records = parse_records(raw, chunk.count)
            except Exception as exc:
                out.append(
                    Skipped(
                        chunk.offset, chunk.size, f"its records do not read ({exc})", chunk=True
                    )
                )
                continue
            out.append(
                Chunk(
                    chunk.offset, chunk.size, chunk.first_ns, chunk.last_ns, chunk.raw_size, records
                )
            )
        return out

    def _resync(self) -> ScanItem | None:
        """Skip to the next chunk magic whose chunk header checks."""
        buf = self._buf
        start = self._skip_from
        assert start is not None
        search = max(self._pos, start - self._base + 1)
        while True:
            found = buf.find(CHUNK_MAGIC, search)
            if found < 0:
                if not self._eof:
                    # Keep the last bytes, which may begin a magic.
                    self._pos = max(self._pos, len(buf) - len(CHUNK_MAGIC) + 1)
                    return None
                self._pos = len(buf)
                break
            if len(buf) - found < CHUNK_HEADER:
                if not self._eof:
                    self._pos = found
                    return None
                self._pos = len(buf)
                break
            head = memoryview(buf)[found : found + _CHUNK_HEAD.size]
            (hcrc,) = _CRC.unpack_from(buf, found + _CHUNK_HEAD.size)
            if zlib.crc32(head) == hcrc:
                self._pos = found
                break
            search = found + 1
        skipped = Skipped(start, self.offset - start, self._skip_reason, chunk=False)
        self._skip_from = None
        if skipped.size == 0:  # pragma: no cover - a stretch always holds its first byte
            return self.next_item()
        return skipped

    def _end(self) -> End:
        self._ended = True
        return End(self.offset, len(self._buf) - self._pos)
