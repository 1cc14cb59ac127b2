"""Columnar throughput: tick batches to Arrow tables and numpy arrays, beside decode + as_dict().

The same code as ``kitefan bench columnar``; run from an environment where kitefan is installed
with pyarrow (``pip install -e '.[parquet]'``)::

    python benchmarks/columnar.py [--rounds N] [--seconds S] [--format table|json]

Owns: nothing the package imports.
"""

from __future__ import annotations

import sys

from kitefan.cli import app

__all__ = ["main"]


def main() -> None:
    """``kitefan bench columnar`` with this script's arguments."""
    app(["bench", "columnar", *sys.argv[1:]], prog_name="kitefan")


if __name__ == "__main__":
    main()
