"""Fixtures for every test.

Each test gets its own directory for the control sockets of running streams
(``KITEFAN_RUNTIME_DIR``), so that a stream running on the machine, or started by another test,
is never found by a test's ``kitefan stats`` or ``kitefan distribute``. The directory is short on
purpose: a Unix socket's path must fit in 107 bytes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, private ``KITEFAN_RUNTIME_DIR`` for this test (removed afterwards)."""
    path = Path(tempfile.mkdtemp(prefix="kf-", dir="/tmp"))
    monkeypatch.setenv("KITEFAN_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)
