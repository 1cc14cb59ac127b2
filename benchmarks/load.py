"""The realistic full load: 27,000 full-mode symbols on 3 keys at one tick a second (CPU share,
resident memory, frame-to-consumer latency).

The same code as ``kitefan bench load``; run from an environment where kitefan is installed
(``pip install -e '.[bench]'``)::

    python benchmarks/load.py [--rounds N] [--seconds S] [--format table|json]

Owns: nothing the package imports.
"""

from __future__ import annotations

import sys

from kitefan.cli import app

__all__ = ["main"]


def main() -> None:
    """``kitefan bench load`` with this script's arguments."""
    app(["bench", "load", *sys.argv[1:]], prog_name="kitefan")


if __name__ == "__main__":
    main()
