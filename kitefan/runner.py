"""Running a feed the way ``kitefan stream`` does: optionally against the in-process demo
simulator, until a duration passes or a signal arrives.

Owns: ``running_feed`` (the feed, and the demo simulator with its faults), ``StopSignal``
(duration, SIGINT, SIGTERM), ``stream_records`` (a feed's events written as records until a stop,
then a prompt, exactly counted end), ``Outcome``, ``pump``, ``switching_every`` (a worker
thread's Python that hands the GIL back to the loop sooner). Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kitefan.events import Event
from kitefan.manager import EventStream, FeedManager
from kitefan.output import Encoder, RecordOutput, write_records
from kitefan.settings import AppConfig
from kitefan.stats import FeedStats

if TYPE_CHECKING:
    from kitefan.recording import RecordStats

__all__ = [
    "Outcome",
    "StopSignal",
    "pump",
    "running_feed",
    "stream_records",
    "switching_every",
    "until_stopped",
]

#: What the demo's refused key says to do: nothing, the demo renews the token it expired.
DEMO_ADVICE = "the demo expired it to show a failover, and supplies a fresh one in 15 s"

#: How long after a stop the records still queued may take to reach the reader.
STOP_GRACE_S = 1.5


@contextlib.contextmanager
def switching_every(seconds: float) -> Iterator[None]:
    """Within: the interpreter's switch interval is ``seconds`` (then as it was before).

    For a worker thread that runs milliseconds of Python (the dashboard's layout and drawing):
    the event loop, woken meanwhile, waits for the GIL until the worker gives it up, which a
    thread running Python does only when asked, after the switch interval (5 ms by default).
    So every loop wake-up during a draw was up to 5 ms late. The interval is process-wide: set
    it only for such a span, not for the run (set for the run, at 1 ms, the loop was preempted as
    often by the worker, and the dashboard's loop lag was worse).
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@contextlib.asynccontextmanager
async def running_feed(
    config: AppConfig,
    *,
    demo: bool = False,
    demo_faults: bool = True,
    seed: int = 0,
    shared: bool = False,
) -> AsyncIterator[FeedManager]:
    """A started :class:`FeedManager`; with ``demo``, against the simulator on a free loopback
    port, with a fault now and then (a token expiring, a dropped connection) to ride out; with
    ``shared``, holding no key (``--share`` takes them: :mod:`kitefan.share`)."""
    async with contextlib.AsyncExitStack() as stack:
        if demo:
            from kitefan.demo import demo_simulator, run_demo_faults

            sim = await stack.enter_async_context(demo_simulator(config, seed=seed))
            config = replace(config, url=sim.url)
            feed = await stack.enter_async_context(
                FeedManager(config, connect_deadline_s=None, token_advice=DEMO_ADVICE)
            )
            if demo_faults:
                task = asyncio.get_running_loop().create_task(run_demo_faults(sim, feed))
                stack.push_async_callback(_cancel, task)
        else:
            feed = FeedManager(config, connect_deadline_s=None)
            if shared:
                await feed.hold_keys(())
            feed = await stack.enter_async_context(feed)
        yield feed


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class StopSignal:
    """Set when the duration has passed, or on SIGINT / SIGTERM (Ctrl-C, ``kill``).

    Use as a context manager: the signal handlers are installed on entry and removed on exit.
    """

    def __init__(self, duration_s: float | None = None, *, deferred: bool = False) -> None:
        self.duration_s = duration_s
        self._deferred = deferred
        self.reason = ""
        self._event = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._installed: list[signal.Signals] = []

    def __enter__(self) -> StopSignal:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.set, sig.name)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
                continue
            self._installed.append(sig)
        if self.duration_s is not None and not self._deferred:
            self.start_timer()
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        if self._timer is not None:
            self._timer.cancel()

    def start_timer(self) -> None:
        """Start counting the duration now (at once on entry, unless made ``deferred``: then
        when the streaming starts, so that ``--duration`` is the streaming time)."""
        if self.duration_s is not None and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.duration_s, self.set, "duration")

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> str:
        await self._event.wait()
        return self.reason


async def pump(
    stream: EventStream[Event], handle: Callable[[list[Event]], Awaitable[None]]
) -> None:
    """Hand everything queued to ``handle``, batch after batch, until the stream ends.

    ``handle`` may be slow (a write to a slow pipe): while it runs, the sockets keep being
    read into the stream's bounded queue, which drops and counts what does not fit.
    """
    async for first in stream:
        items = [first]
        items.extend(stream.drain())
        await handle(items)


async def until_stopped(stop: StopSignal, *work: Awaitable[None]) -> None:
    """Wait for the stop signal while the work runs; the work's first failure is raised."""
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(w) for w in work]
    tasks.append(asyncio.ensure_future(stop.wait()))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a stream of records ended, every tick accounted for.

    ``received == written + dropped``: ``dropped`` counts what a full queue shed, what was still
    queued at the end, and what the reader did not take by the end of the grace after the stop.
    ``dropped_events`` counts orders and error texts a full queue shed (status events never are).
    ``seconds`` is the streaming time: from the feed's start to the stop; ``stats`` the feed's
    figures at the stop (before its connections closed); ``recording`` the recorder's, with
    ``--record``.
    """

    stats: FeedStats
    reason: str
    seconds: float
    received: int
    written: int
    dropped: int
    dropped_events: int
    recording: RecordStats | None = None


async def stream_records(
    feed: FeedManager,
    events: EventStream[Event],
    output: RecordOutput,
    encode: Encoder,
    stop: StopSignal,
    *,
    started_at: float,
    in_thread: bool = False,
    observe: Callable[[Sequence[Event]], None] | None = None,
    grace_s: float = STOP_GRACE_S,
) -> Outcome:
    """Write the feed's events as records until the stop signal (or the reader goes away).

    At the stop the feed closes its connections (what they still receive is queued), the
    writer goes on with what is queued until ``grace_s`` has passed, and what could not be
    written by then is counted as dropped. So the return is prompt even when the reader has
    stopped reading.

    Args:
        started_at: ``loop.time()`` when the feed started (for the streaming time).
        in_thread, observe: as :func:`~kitefan.output.write_records` takes them.
    """
    loop = asyncio.get_running_loop()
    writer = loop.create_task(
        write_records(events, encode, output, in_thread=in_thread, observe=observe)
    )
    waiter = loop.create_task(stop.wait())
    try:
        await asyncio.wait({writer, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    _raise_failure(writer)
    stopped_at = loop.time()
    stats = feed.stats()
    reason = stop.reason if stop.is_set() else "the reader closed the output"
    deadline = stopped_at + grace_s
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline):
            await feed.close()
    if not writer.done():
        _, pending = await asyncio.wait({writer}, timeout=max(0.0, deadline - loop.time()))
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    else:
        _raise_failure(writer)
    await output.finish(deadline)
    events.close()
    if output.failure is not None:
        raise output.failure
    return Outcome(
        stats=stats,
        reason=reason,
        seconds=stopped_at - started_at,
        received=events.received_ticks,
        written=output.written_ticks,
        dropped=events.dropped_ticks + output.unwritten_ticks,
        dropped_events=events.dropped_events,
    )


def _raise_failure(task: asyncio.Task[None]) -> None:
    if task.done() and not task.cancelled():
        error = task.exception()
        if error is not None:
            raise error
