"""Publishing a feed to a Redis stream: one ``XADD`` entry per frame, never holding up the sockets.

:class:`Publisher` is one more consumer of ``feed.events()``. Two tasks, so that Redis being slow
or down never reaches the feed:

* the collector takes everything the feed queued, turns each frame and event into its entry's
  fields (:mod:`kitefan.broker`; a frame's bytes as received, no decode) and appends them to a
  buffer bounded in bytes (``buffer_bytes``). Past it the oldest entries are dropped and counted.
* the sender sends what is buffered, at most ``batch_entries`` at a time, as one pipelined batch
  of ``XADD ... MAXLEN ~ maxlen`` (one round trip per loop turn), and waits for the answer.

Redis refusing or going away: the batch in flight is counted as dropped (some of it may have
reached Redis), one ``warning:`` line says so (``on_warning``, once per outage), and the
connection is tried again with capped exponential backoff (:class:`kitefan.retry.Backoff`) while
the buffer fills and sheds. Publishing resumes by itself once Redis answers again.

The password never appears in a message, a figure or an exception raised from here: the client is
given host, port and credentials (not the URL), and every error text is scrubbed.

Owns: ``Publisher``. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from kitefan.broker import event_fields, frame_fields, json_fields, node_name, symbols_key
from kitefan.errors import BrokerError
from kitefan.events import Event, TickBatch
from kitefan.manager import EventStream
from kitefan.retry import Backoff
from kitefan.settings import PublishConfig
from kitefan.stats import PublishStats

__all__ = ["BUFFER_BYTES", "Publisher", "redis_client", "require_redis", "scrub"]

log = logging.getLogger(__name__)

#: Bytes of entries buffered for Redis before the oldest are dropped.
BUFFER_BYTES = 64 * 1024 * 1024
#: Entries per pipelined batch at most.
BATCH_ENTRIES = 2000


def scrub(text: str, password: str | None) -> str:
    """An error text with the password taken out."""
    if password:
        text = text.replace(password, "…")
    return text


def require_redis() -> None:
    """Check that redis-py is installed.

    Raises:
        BrokerError: it is not, with how to install it.
    """
    import importlib.util

    if importlib.util.find_spec("redis") is None:
        raise BrokerError("Redis needs redis-py: pip install 'kitefan[redis]'")


#: How long a stopped publisher waits for its sender to end.
_SENDER_EXIT_S = 2.0


def _cancelled() -> bool:
    """Whether the running task has been asked to stop (a cancellation pending or swallowed)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def redis_client(config: PublishConfig, *, timeout_s: float = 5.0, single: bool = False) -> Any:
    """A ``redis.asyncio.Redis`` for the config's server, without redis-py's own retries (kitefan
    retries with its backoff, and counts); with ``single``, on one connection, never a pool.

    Raises:
        BrokerError: redis-py is not installed.
    """
    try:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:
        raise BrokerError(
            "publishing to Redis needs redis-py: pip install 'kitefan[redis]'"
        ) from None
    url = config.url
    return Redis(
        host=url.host,
        port=url.port,
        db=url.db,
        username=url.username,
        password=url.password,
        ssl=url.tls,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        client_name="kitefan",
        single_connection_client=single,
    )


class Publisher:
    """Publish a feed's frames and events to a Redis stream.

    Args:
        config: the server, stream, ``maxlen`` and format.
        name_of: a token's display name (the JSON format's ``symbol``).
        symbols: the names to write to the ``<stream>:symbols`` hash (token -> name), at each
            (re)connection and when they change (a config applied to the running feed; looked
            at once a second).
        buffer_bytes: the bound of the buffer.
        batch_entries: entries per pipelined batch at most.
        backoff: delays between connection attempts.
        on_warning: called with the one line that says Redis is unreachable (once per outage);
            without it, the line is logged as a warning.
    """

    def __init__(
        self,
        config: PublishConfig,
        *,
        name_of: Callable[[int], str] = str,
        symbols: Callable[[], Mapping[int, str]] | None = None,
        buffer_bytes: int = BUFFER_BYTES,
        batch_entries: int = BATCH_ENTRIES,
        backoff: Backoff | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        require_redis()
        self.config = config
        self.name_of = name_of
        self.symbols = symbols
        self.buffer_bytes = buffer_bytes
        self.batch_entries = batch_entries
        self.backoff = backoff or Backoff(initial_s=0.2, factor=2.0, max_s=5.0, jitter=0.2)
        self.on_warning = on_warning
        self.node = node_name().encode()
        self.state = "connecting"
        self.published_entries = 0
        self.published_ticks = 0
        self.reconnects = 0
        self.last_error = ""
        self._dropped_ticks = 0
        self._dropped_events = 0
        # (fields, ticks it holds, size in bytes), oldest first.
        self._buffer: deque[tuple[dict[bytes, bytes], int, int]] = deque()
        self._buffered_bytes = 0
        self._in_flight = False  # a batch sent, its answer awaited
        self._ready = asyncio.Event()
        self._stream: EventStream[Event] | None = None
        self._client: Any = None
        self._warned = False
        self._ever_connected = False
        self._names_sent: Mapping[int, str] = {}
        self._names_checked = 0.0

    def __repr__(self) -> str:
        return f"Publisher({self.config.url.shown} {self.config.stream!r}, {self.state})"

    # Figures

    @property
    def dropped_ticks(self) -> int:
        """Ticks that did not reach Redis (the feed's queue for this publisher included)."""
        stream = self._stream
        return self._dropped_ticks + (stream.dropped_ticks if stream is not None else 0)

    @property
    def dropped_events(self) -> int:
        stream = self._stream
        return self._dropped_events + (stream.dropped_events if stream is not None else 0)

    def stats(self) -> PublishStats:
        return PublishStats(
            url=self.config.url.shown,
            stream=self.config.stream,
            state=self.state,
            published_entries=self.published_entries,
            published_ticks=self.published_ticks,
            dropped_ticks=self.dropped_ticks,
            dropped_events=self.dropped_events,
            buffered_entries=len(self._buffer),
            buffered_bytes=self._buffered_bytes,
            reconnects=self.reconnects,
            last_error=self.last_error,
        )

    # Running

    async def run(self, events: EventStream[Event], *, flush_s: float = 1.5) -> None:
        """Publish what ``events`` yields until it ends, then what is buffered, for at most
        ``flush_s`` (what is left then is counted as dropped). Cancelling it stops at once."""
        self._stream = events
        sender = asyncio.get_running_loop().create_task(self._send_loop(), name="kitefan:publish")
        try:
            try:
                async for first in events:
                    self._collect(first)
                    if len(events):
                        for item in events.drain():
                            self._collect(item)
                    self._ready.set()
                    if sender.done():
                        break
            except Exception as exc:  # the feed's failure ends publishing, not the process
                log.debug("publishing stops: %s", exc)
            # Flushed while connected or still connecting (a feed can end before the first
            # connection to Redis is up); not once Redis is known to be down.
            if not sender.done() and self._unsent() and self.state != "down":
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(flush_s):
                        while self._unsent() and self.state != "down" and not sender.done():
                            await self._idle()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                # Bounded: a sender stuck in a client that swallowed its cancellation must not
                # hold up the stream's exit.
                async with asyncio.timeout(_SENDER_EXIT_S):
                    await asyncio.shield(sender)
            self._shed_all()
            await self._disconnect()
            if (
                sender.done()
                and not sender.cancelled()
                and (error := sender.exception()) is not None
            ):
                raise error

    def _unsent(self) -> bool:
        """Whether entries wait in the buffer, or a batch of them is on its way to Redis (the
        flush waits for its answer: cancelled then, it would count as dropped what Redis got)."""
        return bool(self._buffer) or self._in_flight

    def _collect(self, item: Event) -> None:
        node = self.node
        if isinstance(item, TickBatch):
            if self.config.format == "json":
                fields = json_fields(item, node, self.name_of)
            else:
                fields = frame_fields(item, node)
            ticks = item.count
        else:
            fields = event_fields(item, node)
            ticks = -1
        size = sum(len(v) for v in fields.values()) + 64
        buffer = self._buffer
        buffer.append((fields, ticks, size))
        self._buffered_bytes += size
        while self._buffered_bytes > self.buffer_bytes and len(buffer) > 1:
            self._drop(buffer.popleft())

    def _drop(self, entry: tuple[dict[bytes, bytes], int, int]) -> None:
        _, ticks, size = entry
        self._buffered_bytes -= size
        if ticks < 0:
            self._dropped_events += 1
        else:
            self._dropped_ticks += ticks

    def _shed_all(self) -> None:
        while self._buffer:
            self._drop(self._buffer.popleft())

    async def _idle(self) -> None:
        self._ready.clear()
        await self._ready.wait()

    async def _send_loop(self) -> None:
        buffer = self._buffer
        config = self.config
        stream = config.stream
        maxlen = config.maxlen
        while True:
            if not buffer:
                self._ready.clear()
                await self._ready.wait()
                continue
            client = self._client
            if client is None:
                client = await self._connect()
                if client is None:
                    await asyncio.sleep(self.backoff.next_delay())
                    continue
            batch = [buffer.popleft() for _ in range(min(len(buffer), self.batch_entries))]
            for entry in batch:
                self._buffered_bytes -= entry[2]
            pipe = client.pipeline(transaction=False)
            for fields, _, _ in batch:
                pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
            self._in_flight = True
            try:
                await pipe.execute()
            except BaseException as exc:
                self._in_flight = False
                # In flight when Redis failed (or when stopped): some may have reached it.
                for entry in batch:
                    self._buffered_bytes += entry[2]
                    self._drop(entry)
                if not isinstance(exc, Exception) or _cancelled():
                    # redis-py can turn a cancellation into a ConnectionError: a cancelled
                    # sender must end, not wait for the next entry.
                    raise
                await self._lost(exc)
                continue
            self._in_flight = False
            self.published_entries += len(batch)
            self.published_ticks += sum(ticks for _, ticks, _ in batch if ticks > 0)
            self._ready.set()  # wakes a flush waiting for the buffer to empty
            if time.monotonic() - self._names_checked >= 1.0:
                try:
                    await self._send_names(client)
                except Exception as exc:
                    await self._lost(exc)

    async def _connect(self) -> Any:
        client = redis_client(self.config)
        try:
            await client.ping()
            self._names_sent = {}
            await self._send_names(client)
        except Exception as exc:
            await client.aclose()
            await self._lost(exc)
            return None
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self._client = client
        self.state = "connected"
        self._warned = False
        self.backoff.reset()
        log.info("publishing to %s, stream %s", self.config.url.shown, self.config.stream)
        return client

    async def _send_names(self, client: Any) -> None:
        """Write the names that changed since they were last written."""
        self._names_checked = time.monotonic()
        if self.symbols is None:
            return
        names = self.symbols()
        sent = self._names_sent
        changed = {str(t): n for t, n in names.items() if sent.get(t) != n}
        if changed:
            await client.hset(symbols_key(self.config.stream), mapping=changed)
        self._names_sent = dict(names)

    async def _lost(self, exc: BaseException) -> None:
        password = self.config.url.password
        self.last_error = scrub(str(exc) or type(exc).__name__, password)
        self.state = "down"
        self._ready.set()  # wakes a flush waiting on a Redis that is now known to be down
        await self._disconnect()
        if not self._warned:
            self._warned = True
            message = (
                f"cannot publish to Redis at {self.config.url.shown} ({self.last_error}): "
                "dropping and counting entries while retrying; the feed goes on"
            )
            if self.on_warning is not None:
                self.on_warning(message)
            else:
                log.warning("%s", message)

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
