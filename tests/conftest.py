"""Fixtures and hooks for every test.

Running streams register a control socket per config in ``KITEFAN_RUNTIME_DIR``. The test session
gets a directory of its own (set before any test module is imported, so that environments copied
at import time carry it), and each test a fresh one, so that no test ever finds a stream running on
the machine or left by another test. The directories are short on purpose: a Unix socket's path
must fit in 107 bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_DIR = pytest.StashKey[str]()


def _short_dir() -> str:
    return tempfile.mkdtemp(prefix="kf-", dir="/tmp")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SESSION_DIR] = os.environ["KITEFAN_RUNTIME_DIR"] = _short_dir()


def pytest_unconfigure(config: pytest.Config) -> None:
    path = config.stash.get(_SESSION_DIR, None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, private ``KITEFAN_RUNTIME_DIR`` for this test (removed afterwards)."""
    path = Path(_short_dir())
    monkeypatch.setenv("KITEFAN_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)
