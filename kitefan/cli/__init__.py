"""The ``kitefan`` command: a thin typer layer that parses, calls the library and renders.

Each command group lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

from kitefan.cli.app import app, main

__all__ = ["app", "main"]
