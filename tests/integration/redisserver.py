"""A real ``redis-server`` on a free loopback port, for the tests of publishing and ``tail``.

Redis cannot pick a free port itself (``--port 0`` turns TCP off), so one is found by binding a
socket, then ``redis-server --port N --bind 127.0.0.1 --save '' --appendonly no`` starts on it,
and :meth:`RedisServer.start` returns once ``PING`` answers. :meth:`stop` kills it (as a crash
would); :meth:`start` again brings it back on the same port, empty. It starts through
:mod:`processes`, like every command of the tests. ``.ci/run`` installs ``redis-server`` where it
is missing; elsewhere the tests that need it are skipped with the reason (in CI they fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import socket
from collections.abc import AsyncIterator
from typing import Any

import processes
import pytest

__all__ = ["RedisServer", "free_port", "running_redis"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1:``port`` (``password`` for ``requirepass``)."""

    def __init__(self, port: int, password: str | None = None) -> None:
        self.port = port
        self.password = password
        self._stack: contextlib.AsyncExitStack | None = None
        self._command: processes.Command | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        """A redis-py asyncio client of this server (bytes replies)."""
        from redis.asyncio import Redis

        return Redis(host="127.0.0.1", port=self.port, password=self.password)

    async def start(self, within: float = 10.0) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        stack = contextlib.AsyncExitStack()
        self._command = await stack.enter_async_context(
            processes.started(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=processes.PIPE)
        )
        self._stack = stack
        client = self.client()
        try:
            async with asyncio.timeout(within):
                while True:
                    try:
                        if await client.ping():
                            return
                    except Exception:  # not listening yet
                        await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        """Kill it (SIGKILL: what a crash looks like to its clients) and wait for it to end."""
        stack, self._stack = self._stack, None
        if stack is not None:
            assert self._command is not None
            self._command.kill()
            await stack.aclose()


@contextlib.asynccontextmanager
async def running_redis(password: str | None = None) -> AsyncIterator[RedisServer]:
    """A started server, stopped at the end."""
    missing = None
    if shutil.which("redis-server") is None:
        missing = "needs redis-server (apt-get install redis-server; .ci/run installs it)"
    elif importlib.util.find_spec("redis") is None:
        missing = "needs redis-py: pip install -e '.[redis]'"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs every test: {missing}")
        pytest.skip(missing)
    server = RedisServer(free_port(), password)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
