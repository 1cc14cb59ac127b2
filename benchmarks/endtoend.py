"""End to end: the simulator at full rate in its own process, then kitefan and the official
client in turn, each counting ticks.

The same code as ``kitefan bench e2e``; run from an environment where kitefan is installed
(``pip install -e '.[bench]'``)::

    python benchmarks/endtoend.py [--rounds N] [--seconds S] [--format table|json]

Owns: nothing the package imports.
"""

from __future__ import annotations

import sys

from kitefan.cli import app

__all__ = ["main"]


def main() -> None:
    """``kitefan bench e2e`` with this script's arguments."""
    app(["bench", "e2e", *sys.argv[1:]], prog_name="kitefan")


if __name__ == "__main__":
    main()
