"""Recordings: an append-only log of everything a feed received, kept to be read, replayed and
exported.

A recording is a file of independent zstd chunks, each holding records: every frame's bytes as
received with its key, connection and receive time in nanoseconds, and the status, order and
error events. ``kitefan stream --record PATH`` and ``kitefan tail ... --record PATH`` write it
(:class:`Recorder`); :class:`Recording` reads it back as the same
:class:`~kitefan.events.TickBatch` and event objects the feed gives, or as raw records:

* :mod:`kitefan.recording.format`: the bytes (pure, sans-I/O), documented byte by byte;
* :mod:`kitefan.recording.writer`: :class:`Recorder`;
* :mod:`kitefan.recording.reader`: :class:`Recording`.

Owns: the package's public names. Must not import rich or typer.
"""

from __future__ import annotations

from kitefan.recording.format import Chunk, Record, Skipped
from kitefan.recording.reader import SUFFIX, FileEnd, ReadReport, Recording, recording_files
from kitefan.recording.writer import Recorder, RecordStats

__all__ = [
    "SUFFIX",
    "Chunk",
    "FileEnd",
    "ReadReport",
    "Record",
    "RecordStats",
    "Recorder",
    "Recording",
    "Skipped",
    "recording_files",
]
