"""``kitefan stream`` in its own process, for the tests of ``stats``, ``distribute`` and metrics.

The simulator runs in the test's process (so tests can count what it received and silence it);
the stream, ``kitefan stats`` and ``kitefan distribute`` run as the user runs them, each in its
own process, finding each other through the control socket in the test's runtime directory
(``XDG_RUNTIME_DIR``). The stream writes JSON lines to a file, read back incrementally.

Every api key and access token here contains ``SENTINEL``: no output, file or answer may. Every
process starts through :mod:`processes`, which checks what it printed for secrets.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import processes
import pytest
from app_configs import config_file
from polling import until
from simulators import KEYS

from kitefan.control import ControlClient
from kitefan.errors import ControlError
from kitefan.simulator import Account, Simulator

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = "SENTINEL"


def account(key_id: str, generation: int = 1) -> Account:
    """The simulator account of a key, with sentinel secrets."""
    return Account(
        f"{SENTINEL}-api-key-{key_id}",
        f"{SENTINEL}-token-{key_id}-{generation:04d}",
        label=key_id,
    )


def sentinel_simulator(
    *,
    seed: int,
    rate: float | None,
    keys: Iterable[str] = KEYS,
    heartbeat_interval_s: float = 0.2,
) -> Simulator:
    """The simulator of the ``keys``' sentinel accounts on 127.0.0.1 and a free port (``rate``
    packets per symbol per second, None for as fast as it can); ``async with`` starts it."""
    return Simulator(
        [account(k) for k in keys],
        seed=seed,
        rate=rate,
        heartbeat_interval_s=heartbeat_interval_s,
    )


def simulator_fixture(*, seed: int, rate: float) -> object:
    """A module's ``simulator`` fixture, a started ``sentinel_simulator`` of the three keys (which
    overrides the two-account one of conftest.py): ``simulator = simulator_fixture(seed=3,
    rate=20.0)``."""

    @pytest.fixture
    async def simulator() -> AsyncIterator[Simulator]:
        async with sentinel_simulator(seed=seed, rate=rate) as sim:
            yield sim

    return simulator


def write_config(
    path: Path,
    url: str,
    *,
    quote: Iterable[int] = (),
    full: Iterable[int] = (),
    keys: Iterable[str] = KEYS,
    token_files: Mapping[str, str] | None = None,
    tuning: Mapping[str, object] | None = None,
    redundancy: int = 1,
) -> Path:
    """A config for the simulator at ``url``; a key in ``token_files`` reads its token there."""
    lines = [f'url = "{url}"', 'mode = "quote"']
    if redundancy != 1:
        lines.append(f"redundancy = {redundancy}")
    if tuning:
        lines.append("[tuning]")
        lines.extend(f"{name} = {json.dumps(value)}" for name, value in tuning.items())
    for key_id in keys:
        lines += ["[[keys]]", f'id = "{key_id}"', f'api_key = "{account(key_id).api_key}"']
        if token_files and key_id in token_files:
            lines.append(f'access_token_file = "{token_files[key_id]}"')
        else:
            lines.append(f'access_token = "{account(key_id).access_token}"')
    lines += ["[symbols]", f"quote = {list(quote)}", f"full = {list(full)}"]
    return config_file(path, "\n".join(lines) + "\n")


def environment(runtime: Path) -> dict[str, str]:
    """The processes' environment: sockets under ``runtime`` (as ``$XDG_RUNTIME_DIR``)."""
    env = {k: v for k, v in os.environ.items() if k != "KITEFAN_RUNTIME_DIR"}
    env.update(XDG_RUNTIME_DIR=str(runtime), PYTHONUNBUFFERED="1", COLUMNS="120")
    return env


async def kitefan(*args: str, env: Mapping[str, str], within: float = 60.0) -> tuple[int, str, str]:
    """Run ``kitefan ARGS`` to the end: its exit code, stdout and stderr."""
    return await processes.run(*processes.kitefan(*args), env=env, cwd=ROOT, within=within)


@dataclass
class StreamProcess:
    """A ``kitefan stream --format jsonl`` process, its output files, and how to reach it."""

    process: processes.Command
    config: Path
    env: dict[str, str]
    stdout: Path
    stderr: Path
    _offset: int = 0
    _records: list[dict[str, Any]] = field(default_factory=list)

    def read_new(self) -> list[dict[str, Any]]:
        """The JSON lines written since the last call (complete lines only)."""
        with self.stdout.open("rb") as file:
            file.seek(self._offset)
            data = file.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        new = [json.loads(line) for line in data[:end].splitlines()]
        self._records.extend(r for r in new if r["type"] != "tick")
        return new

    def statuses(self) -> list[dict[str, Any]]:
        """Every status, error and order record read so far."""
        self.read_new()
        return list(self._records)

    async def client(self) -> ControlClient:
        return await ControlClient.connect(self.config, environ=self.env)

    async def stats(self) -> dict[str, Any]:
        async with await self.client() as client:
            return await client.stats()


@contextlib.asynccontextmanager
async def running_stream(
    config: Path, env: dict[str, str], directory: Path, *args: str
) -> AsyncIterator[StreamProcess]:
    """``kitefan stream --config CONFIG --format jsonl ARGS``, once its control socket answers.

    Leaving stops it with SIGINT (if it still runs) and waits for it.
    """
    stdout, stderr = directory / "stream.jsonl", directory / "stream.err"
    async with processes.started(
        *processes.kitefan("stream", "--config", str(config), "--format", "jsonl", *args),
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=stderr,
    ) as process:
        stream = StreamProcess(process, config, env, stdout, stderr)

        async def answers() -> bool:
            if process.returncode is not None:
                raise AssertionError(f"the stream exited: {stderr.read_text()}")
            try:
                await stream.stats()
            except ControlError:  # not listening yet, or listening before the feed started
                return False
            return True

        try:
            await until(answers)
            yield stream
        finally:
            await process.interrupt()
