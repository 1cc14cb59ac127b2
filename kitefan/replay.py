"""Serving a recording as a Kite ticker: what ``kitefan replay`` reads before the simulator serves.

:func:`open_replay` reads a recording (:class:`~kitefan.recording.Recording`: a file, or a
directory of one file per day) once to index the frames of the window (how many, the span, the
best mode of each token), then gives the :class:`~kitefan.simulator.recorded.Replay` the
simulator serves (``Simulator(..., replay=...)``), whose every pass reads the recording again, a
chunk at a time: a day is never held in memory. Only frames are served; the recorded status,
order and error events are not.

Owns: :func:`open_replay`, :func:`recorded_frames`, :class:`OpenedReplay`. Must not import rich or
typer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kitefan.recording import Recording
from kitefan.recording.format import KIND_FRAME
from kitefan.simulator.recorded import RecordedFrame, Replay, Window, index_frames

__all__ = ["OpenedReplay", "open_replay", "recorded_frames"]


def recorded_frames(recording: Recording) -> Iterator[RecordedFrame]:
    """One pass over a recording's frames, in the order written, each with its key and
    connection as its origin."""
    for record in recording.records():
        if record.kind == KIND_FRAME:
            yield RecordedFrame(record.ns, record.body, (record.key, record.connection))


@dataclass(frozen=True, slots=True)
class OpenedReplay:
    """A recording ready to serve.

    Attributes:
        replay: what the simulator serves.
        recording: the recording, with what its indexing pass read (``recording.report``:
            chunks skipped, files cut short).
    """

    replay: Replay
    recording: Recording


def open_replay(
    path: str | Path,
    *,
    speed: float | None = 1.0,
    loop: bool = False,
    window: Window | None = None,
) -> OpenedReplay:
    """Read a recording once, and make it a replay.

    Args:
        path: a recording file, or a directory of them.
        speed: times the recorded pace; ``None`` for as fast as the clients read.
        loop: start again from the first frame after the last.
        window: the span of the IST day to serve (``None``: all of it).

    Raises:
        RecordingError: the path does not exist or holds no recording.
        ValueError: ``speed`` is not more than 0.
    """
    # The replay's loop gives the GIL up at every socket write: zstd can run in the reading
    # thread without the loop waiting on it.
    recording = Recording(path, decompress_ahead=True)
    index = index_frames(recorded_frames(recording), window)
    replay = Replay(
        lambda: recorded_frames(recording), index, speed=speed, loop=loop, window=window
    )
    return OpenedReplay(replay, recording)
