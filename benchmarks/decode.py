"""Decode throughput: kitefan's decoder and the official client's parser, same mixed frames.

The same code as ``kitefan bench decode``; run from an environment where kitefan is installed
(``pip install -e '.[bench]'``)::

    python benchmarks/decode.py [--rounds N] [--seconds S] [--format table|json]

Owns: nothing the package imports.
"""

from __future__ import annotations

import sys

from kitefan.cli import app

__all__ = ["main"]


def main() -> None:
    """``kitefan bench decode`` with this script's arguments."""
    app(["bench", "decode", *sys.argv[1:]], prog_name="kitefan")


if __name__ == "__main__":
    main()
