"""The ``kitefan`` command: a thin typer layer that parses, calls the library and renders.

Each command group lives in its own module and registers itself on :data:`app`
(:mod:`kitefan.cli.app`); importing this package imports every command module, so ``app`` has
all its commands whichever way it is reached (the console script ``kitefan.cli:main``,
``python -m kitefan``, or ``from kitefan.cli.app import app``). A new command module is added to
the list below.
"""

from __future__ import annotations

# Register the commands (each module adds its own to ``app``).
from kitefan.cli import (
    bench as _bench,
    candles as _candles,
    configure as _configure,
    distribute as _distribute,
    export as _export,
    record as _record,
    replay as _replay,
    simulate as _simulate,
    stats as _stats,
    stream as _stream,
    tail as _tail,
)
from kitefan.cli.app import app, main

del (
    _bench,
    _candles,
    _configure,
    _distribute,
    _export,
    _record,
    _replay,
    _simulate,
    _stats,
    _stream,
    _tail,
)

__all__ = ["app", "main"]
