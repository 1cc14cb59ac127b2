"""Records throughput: frames to JSON lines and CSV, kitefan and the official parser + json.dumps.

The same code as ``kitefan bench records``; run from an environment where kitefan is installed
(``pip install -e '.[bench]'``)::

    python benchmarks/records.py [--rounds N] [--seconds S] [--format table|json]

Owns: nothing the package imports.
"""

from __future__ import annotations

import sys

from kitefan.cli import app

__all__ = ["main"]


def main() -> None:
    """``kitefan bench records`` with this script's arguments."""
    app(["bench", "records", *sys.argv[1:]], prog_name="kitefan")


if __name__ == "__main__":
    main()
