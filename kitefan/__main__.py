"""``python -m kitefan``: the same as the ``kitefan`` command."""

from __future__ import annotations

from kitefan.cli import main

if __name__ == "__main__":
    main()
