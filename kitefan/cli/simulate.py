"""`kitefan simulate` (SKELETON: being written)."""

from __future__ import annotations
