"""Every command a test runs goes through here, and what it printed is checked for secrets.

kitefan never shows an api key or an access token except masked. :data:`SECRETS` matches every
api key and access token the tests give it (their simulator accounts, the configs they write, the
demo config). Whatever a command printed on stdout or stderr is checked against them, and a
secret fails the test loudly with a masked excerpt (never the secret itself):

* :func:`run` runs a process to its end; :func:`started` starts one and checks what it printed
  (through :class:`Command`, its pipes, and the files it wrote them to) when it is left;
  :func:`run_sync` is :func:`subprocess.run`;
* :func:`invoke` runs the CLI in-process (typer's ``CliRunner``), checking its stdout, its stderr
  and the traceback of an exception it raised.

``tests/test_processes.py`` checks that no test starts a command any other way.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import IO

from typer.testing import CliRunner, Result

__all__ = [
    "ANCHORS",
    "PIPE",
    "ROOT",
    "SECRETS",
    "Command",
    "assert_no_secret",
    "invoke",
    "kitefan",
    "masked",
    "run",
    "run_sync",
    "started",
]

ROOT = Path(__file__).resolve().parents[1]
PIPE = asyncio.subprocess.PIPE

#: Every api key and access token the tests use, by where they are defined.
SECRETS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern)
    for pattern in (
        # tests/integration/streams.py (every key and token holds it), test_cli_config.py and
        # test_config.py (SENTINELAPIKEY9876, SENTINELTOKEN5432, SENTINELAPIKEY42, ...)
        r"SENTINEL",
        # tests/integration/conftest.py; test_manager.py; test_handover.py
        r"(?:alpha|bravo|charlie)-api-key(?:-\d{4})?",
        r"(?:alpha|bravo|charlie)-(?:access-)?token-\d{4}",
        # tests/integration/test_stream_cli.py
        r"(?:one|two)-api-key",
        r"(?:one|two)-token",
        # tests/integration/test_simulate_cli.py
        r"cli-test-api-key-\d",
        r"cli-test-access-token-\d",
        # tests/integration/test_simulator.py
        r"key\+with/odd=chars&",
        r"token with spaces\?%",
        # tests/interop/test_kiteconnect_interop.py
        r"interop-api-key-\d\d",
        r"interop-access-token-\d\d",
        # tests/test_cli_config.py (keys_toml, ENV); tests/test_config.py
        r"key-\d+-0001",
        r"token-\d+-0000001",
        r"token-(?:one|two)-00000\d",
        r"abcd1234",
        r"efgh5678",
        r"key-aaaa-1111",
        r"(?:first|second)-token-000\d",
        # tests/test_instruments.py
        r"fetchkey1234",
        r"fetchtoken5678",
        # tests/test_subscribe_input.py
        r"input-api-key-[ab]",
        r"input-token-[ab]-0001",
        # kitefan/bench/share.py (kitefan bench share, tests/integration/test_bench_share.py)
        r"bench-share-(?:api-key|token)-k\d",
        # configs/demo.toml (kitefan stream --demo, kitefan simulate --demo, config show)
        r"demo-(?:alpha|bravo|charlie)-key",
        r"demo-(?:alpha|bravo|charlie)-token-\d{4}",
    )
)

# One pattern, so that a match is the leftmost and longest-listed, and matches never overlap.
_ANY = re.compile("|".join(f"(?:{pattern.pattern})" for pattern in SECRETS))

#: Every match of every pattern of SECRETS holds one of these (tests/test_processes.py checks it):
#: an output holding none of them holds no secret, which plain substring searches tell at once.
#: The regular expression, at a few MB/s, would take minutes over a fast stream's output.
ANCHORS: tuple[str, ...] = (
    "SENTINEL",
    "-token",
    "-key",
    "key-",
    "token-",
    "key+with",
    "token with",
    "abcd1234",
    "efgh5678",
    "fetchkey",
    "fetchtoken",
)
_ANCHOR_BYTES = tuple(anchor.encode() for anchor in ANCHORS)
_EXCERPT = 60


def masked(text: str) -> str:
    """``text`` with every secret replaced by ``«secret xy…»`` (its first two characters)."""
    return _ANY.sub(lambda m: f"«secret {m.group()[:2]}…»", text)


def assert_no_secret(text: str | bytes, what: str) -> None:
    """Fail, showing where with a masked excerpt, if ``text`` holds any of :data:`SECRETS`.

    Args:
        text: what a command printed.
        what: which output of which command, for the message (masked too).
    """
    if isinstance(text, bytes):
        if not any(anchor in text for anchor in _ANCHOR_BYTES):
            return
        text = text.decode("utf-8", errors="replace")
    elif not any(anchor in text for anchor in ANCHORS):
        return
    found = [m.start() for m in _ANY.finditer(text)]
    if not found:
        return
    start = found[0]
    # Mask the whole text first, so that no secret shows, not even cut by the excerpt's edges.
    shown = masked(text)
    at = shown.find("«secret ")
    excerpt = shown[max(0, at - _EXCERPT) : at + _EXCERPT]
    raise AssertionError(
        f"{masked(what)} shows {len(found)} secret(s), the first at character {start}: "
        f"…{excerpt!r}…"
    )


def kitefan(*args: str) -> list[str]:
    """The command line of ``python -m kitefan ARGS``."""
    return [sys.executable, "-m", "kitefan", *args]


def _named(argv: Sequence[str]) -> str:
    words = list(argv)
    if words[:3] == [sys.executable, "-m", "kitefan"]:
        words = ["kitefan", *words[3:]]
    elif words and words[0] == sys.executable:
        words = ["python", *words[1:]]
    return "`" + " ".join(words) + "`"


class _Recorded:
    """One pipe of a :class:`Command`: reads as a StreamReader does, and keeps what it read."""

    def __init__(self, reader: asyncio.StreamReader, seen: bytearray) -> None:
        self._reader = reader
        self._seen = seen

    async def readline(self) -> bytes:
        return self._kept(await self._reader.readline())

    async def read(self, n: int = -1) -> bytes:
        return self._kept(await self._reader.read(n))

    async def readexactly(self, n: int) -> bytes:
        return self._kept(await self._reader.readexactly(n))

    def at_eof(self) -> bool:
        return self._reader.at_eof()

    def _kept(self, data: bytes) -> bytes:
        self._seen.extend(data)
        return data


class Command:
    """A started process, used as an ``asyncio.subprocess.Process`` is.

    Its ``stdout`` and ``stderr`` (when piped) keep what is read through them; output it wrote to
    files, and what the test read from a terminal it gave it (:meth:`record`), is checked too.
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        argv: Sequence[str],
        files: Mapping[str, Path],
    ) -> None:
        self._process = process
        self.name = _named(argv)
        self._files = dict(files)
        self._seen: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.stdout = (
            _Recorded(process.stdout, self._seen["stdout"]) if process.stdout is not None else None
        )
        self.stderr = (
            _Recorded(process.stderr, self._seen["stderr"]) if process.stderr is not None else None
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    def send_signal(self, signum: int) -> None:
        self._process.send_signal(signum)

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()

    async def wait(self) -> int:
        return await self._process.wait()

    async def interrupt(self, within: float = 20.0) -> int:
        """Ctrl-C (SIGINT) if it still runs, and its exit code; killed if it has not ended
        ``within`` seconds later."""
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(within):
                return await self._process.wait()
        except TimeoutError:
            self._process.kill()
            return await self._process.wait()

    async def communicate(self) -> tuple[bytes, bytes]:
        """Read both pipes to their end and wait for the process; check what it printed."""
        out, err = await asyncio.gather(_rest(self.stdout), _rest(self.stderr))
        await self._process.wait()
        self.check()
        return out, err

    def record(self, stream: str, data: bytes) -> None:
        """Keep output the test read itself (from a pseudo-terminal), to be checked."""
        self._seen.setdefault(stream, bytearray()).extend(data)

    def check(self) -> None:
        """Fail if anything it printed so far holds a secret."""
        for stream, data in self._seen.items():
            assert_no_secret(bytes(data), f"{stream} of {self.name}")
        for stream, path in self._files.items():
            with suppress(FileNotFoundError):
                assert_no_secret(path.read_bytes(), f"{stream} of {self.name} ({path.name})")


async def _rest(pipe: _Recorded | None) -> bytes:
    return await pipe.read() if pipe is not None else b""


@asynccontextmanager
async def started(
    *argv: str,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    stdin: int | None = None,
    stdout: int | Path | None = PIPE,
    stderr: int | Path | None = PIPE,
) -> AsyncIterator[Command]:
    """Start ``argv``; leaving checks everything it printed, killing it first if it still runs.

    ``stdout`` and ``stderr`` are :data:`PIPE` (read them through the command), a file descriptor
    (a pseudo-terminal: give what is read from it to :meth:`Command.record`), or a path, written
    by the process and checked when it is left.
    """
    files = {
        name: target
        for name, target in (("stdout", stdout), ("stderr", stderr))
        if isinstance(target, Path)
    }
    handles: dict[str, IO[bytes]] = {}
    try:
        for name, path in files.items():
            handles[name] = path.open("wb")
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=stdin,
            stdout=handles.get("stdout", stdout),  # type: ignore[arg-type]  # a path opened as a file handle
            stderr=handles.get("stderr", stderr),  # type: ignore[arg-type]  # a path opened as a file handle
        )
    finally:
        for handle in handles.values():
            handle.close()
    command = Command(process, argv, files)
    try:
        yield command
    finally:
        if process.returncode is None:
            process.kill()
        await command.communicate()


async def run(
    *argv: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT, within: float = 60.0
) -> tuple[int, str, str]:
    """Run ``argv`` to its end: its exit code, stdout and stderr (checked)."""
    async with started(*argv, env=env, cwd=cwd) as command:
        async with asyncio.timeout(within):
            out, err = await command.communicate()
    assert command.returncode is not None
    return command.returncode, out.decode(), err.decode()


def run_sync(
    *argv: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT, within: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """:func:`subprocess.run` of ``argv``, text captured, not raising on failure (checked)."""
    done = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=None if env is None else dict(env),
        timeout=within,
    )
    assert_no_secret(done.stdout, f"stdout of {_named(argv)}")
    assert_no_secret(done.stderr, f"stderr of {_named(argv)}")
    return done


def invoke(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    """``kitefan ARGS`` in this process (typer's ``CliRunner``); its output checked."""
    from kitefan.cli import app

    result = CliRunner().invoke(app, list(args), env=env)
    name = _named(["kitefan", *args])
    assert_no_secret(result.stdout, f"stdout of {name}")
    assert_no_secret(result.stderr, f"stderr of {name}")
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        shown = "".join(traceback.format_exception(*result.exc_info))
        assert_no_secret(shown, f"the traceback of {name}")
    return result
