"""The control channel of a running stream: how ``kitefan stats`` and ``kitefan distribute``
reach the ``kitefan stream`` of the same config, on the same machine, as the same user.

Where it lives. One Unix domain socket per config file, named after the file's stem and a hash of
its resolved absolute path (``kitefan-3f2a…9c.sock``), so ``--config X`` finds the stream of X with
no other flag. The directory is ``$KITEFAN_RUNTIME_DIR`` if set, else ``$XDG_RUNTIME_DIR/kitefan``
(when ``XDG_RUNTIME_DIR`` is an existing directory), else ``/tmp/kitefan-<uid>``; a stream
registers in the first, a client looks in each (a stream started under systemd without
``XDG_RUNTIME_DIR`` is found from a login shell that has it). The directory is created 0700 and
must belong to the user; the socket is 0600. No TCP port is opened.

What kitefan did not make, it does not change: a directory already there that others may enter
(``/tmp``, mode 1777; or 0755) is refused, not chmodded, and so is anything but a socket at the
socket's path: a file or a directory is left alone, a symlink is never followed (it could lead
to another config's stream), each with a line saying what to move or remove.

Rates. While it serves a feed, the server takes a stats snapshot every second, so that the rates
(ticks/s, over the stats' sliding window) are ready when a client asks once.

Liveness. A socket whose connection is refused belongs to a stream that died without cleaning
up: the client reports it gone and removes it (a socket, nothing else). A stream starting while
another stream of the same config answers on the socket refuses to start: two streams of one
config would fight over the keys' connection slots (Kite answers the fourth with HTTP 429).
The exception is ``kitefan stream --share`` (:mod:`kitefan.share`), whose processes share the
keys through Redis leases: each registers a socket of its own, ``<the config's name>.<pid>.sock``
beside the config's, and refuses to start only beside a stream of the config that does not
share (and a stream that does not share refuses beside any). A client takes the config's socket,
else the first shared one that answers: any process of the group shows the whole group.

Protocol (version 1). Newline-delimited JSON over the socket, one request and one response per
line, as many as the client likes on one connection; :mod:`kitefan.control_protocol` says it all
(the requests, the documents, the errors and their kinds) and encodes and decodes every line.
This module carries it over the socket: the server decodes a request, carries it out on the
feed and writes the response; the client writes a request and decodes the response.

No secret crosses the channel: a client never sends a config, only asks the stream to re-read its
own file (with its own environment); answers carry stats, symbol names, modes and key ids, and
errors as one line each.

Owns: ``ControlServer`` (the stream's side, SIGHUP included), ``ControlClient``, the socket's
place (``control_dirs``, ``socket_name``). Must not import rich or typer; must not encode or
decode a line itself (that is :mod:`kitefan.control_protocol`'s).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import glob
import hashlib
import logging
import os
import re
import signal
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from kitefan import __version__
from kitefan.change import ChangeDocument, ConfigChange
from kitefan.control_protocol import (
    PROTOCOL_VERSION,
    REQUEST_LIMIT,
    Apply,
    ErrorKind,
    Failure,
    Hello,
    HelloDocument,
    NeverTicked,
    NeverTickedDocument,
    NeverTickedSymbol,
    Ok,
    Preview,
    ProtocolError,
    Request,
    Stats,
    StatsDocument,
    decode_request,
    decode_response,
    encode_failure,
    encode_request,
    encode_result,
    error_document,
    failure,
    read_change,
    read_hello,
    read_never_ticked,
)
from kitefan.errors import ControlError, KitefanError, StreamNotRunningError
from kitefan.events import Status
from kitefan.manager import FeedManager
from kitefan.settings import AppConfig

__all__ = [
    "PROTOCOL_VERSION",
    "RUNTIME_DIR_ENV",
    "ControlClient",
    "ControlServer",
    "Reload",
    "control_dirs",
    "socket_name",
]

log = logging.getLogger(__name__)

#: The environment variable naming the socket directory (overrides the XDG and /tmp rule).
RUNTIME_DIR_ENV = "KITEFAN_RUNTIME_DIR"

#: Given the config the stream runs with, the edited config to apply (re-read from its file).
Reload = Callable[[AppConfig], AppConfig]

_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, NUL included
_RESPONSE_LIMIT = 256 * 1024 * 1024
_SAMPLE_INTERVAL_S = 1.0
_STEM = re.compile(r"[^A-Za-z0-9_.-]+")
_T = TypeVar("_T")


# Where ------------------------------------------------------------------------------------------


def control_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The socket directories, in order: a stream registers in the first; clients try each.

    ``$KITEFAN_RUNTIME_DIR`` alone if set; else ``$XDG_RUNTIME_DIR/kitefan`` (if that variable
    names an existing directory) then ``/tmp/kitefan-<uid>``.
    """
    env = os.environ if environ is None else environ
    override = env.get(RUNTIME_DIR_ENV)
    if override:
        return [Path(override)]
    dirs = []
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        dirs.append(Path(runtime) / "kitefan")
    dirs.append(Path("/tmp") / f"kitefan-{os.getuid()}")  # noqa: S108 - checked: ours and 0700
    return dirs


def socket_name(config_path: Path, pid: int | None = None) -> str:
    """The socket's file name for a config: its stem and a hash of its resolved absolute path;
    with ``pid``, the socket of that one process's stream of it (a demo's, or a ``--share``
    process's: ``….<pid>.sock``)."""
    resolved = config_path.resolve()
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:16]
    stem = _STEM.sub("_", resolved.stem)[:24] or "config"
    return f"{stem}-{digest}.sock" if pid is None else f"{stem}-{digest}.{pid}.sock"


def shared_socket_name(config_path: Path, pid: int) -> str:
    """The socket's file name for one ``--share`` process of a config."""
    return socket_name(config_path, pid)


def _sockets_of(directory: Path, name: str) -> list[Path]:
    """The config's socket in ``directory``, then its per-process ones (by name)."""
    stem = name.removesuffix(".sock")
    return [directory / name, *sorted(directory.glob(f"{glob.escape(stem)}.*.sock"))]


def _pid_of(path: Path) -> int | None:
    """The pid in a per-process socket's name (``….<pid>.sock``), or None."""
    parts = path.name.split(".")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def _private_dir(path: Path, *, create: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Check (and with ``create``, make, mode 0700) a directory only this user can enter.

    A directory that is there already is never changed: kitefan did not make it, and its mode
    is its owner's choice (``/tmp`` given as the directory must stay open to everyone).

    Returns:
        Whether the directory exists.

    Raises:
        ControlError: it is not a directory, belongs to someone else, or others may enter it.
    """
    if create:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700, parents=True)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    env = os.environ if environ is None else environ
    given = env.get(RUNTIME_DIR_ENV) and Path(env[RUNTIME_DIR_ENV]) == path
    if given:
        name, fix = f"{RUNTIME_DIR_ENV}={path}", "point it at"
    else:
        name, fix = str(path), f"remove it, or set {RUNTIME_DIR_ENV} to"
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ControlError(f"{name} is not a directory of yours: {fix} a private directory")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        shared = mode & (stat.S_ISVTX | stat.S_IWOTH)
        raise ControlError(
            f"{name} is not kitefan's own directory (mode {mode:04o}, "
            f"{'shared' if shared else 'open to others'}): {fix} a private directory, "
            "e.g. $XDG_RUNTIME_DIR/kitefan"
        )
    return True


def _socket_at(path: Path) -> bool:
    """Whether a socket is at ``path`` (False: nothing is). The path itself is looked at, never
    a link's target: a link there could lead to another config's stream.

    Raises:
        ControlError: something else is there (a link, a file, a directory): left alone.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISSOCK(info.st_mode):
        return True
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(path)
        dangling = "" if os.path.exists(path) else ", which does not exist"
        raise ControlError(
            f"the control socket path {path} is a symlink (to {target}{dangling}): remove it; "
            "kitefan makes its own socket there and follows no link"
        )
    what = "a directory" if stat.S_ISDIR(info.st_mode) else "a file"
    raise ControlError(
        f"the control socket path {path} is {what}, not a socket: move it away; kitefan removes "
        "only sockets"
    )


def _remove_socket(path: Path) -> None:
    """Remove a dead stream's socket; anything else there is left alone."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


def _check_length(path: Path) -> None:
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise ControlError(
            f"the control socket path {path} is too long for a Unix socket "
            f"({len(os.fsencode(path))} bytes, at most {_MAX_SOCKET_PATH}): set "
            f"{RUNTIME_DIR_ENV} to a shorter directory"
        )


# The stream's side ------------------------------------------------------------------------------


class ControlServer:
    """The stream's end of the control channel, and its SIGHUP handler.

    Entering claims the config's socket (refusing if a stream of this config answers on it) and
    starts listening; :meth:`attach` hands it the running feed. Leaving stops listening, removes
    the socket and the SIGHUP handler. Requests that arrive before :meth:`attach` are answered
    with "starting".

    Args:
        config_path: the config file the stream runs (the socket is named after it).
        environ: where the directory rule reads its variables (default: ``os.environ``).
        own: a socket of this process's own (named after the config and the pid), for a stream
            that shares nothing with another of the same config (a demo, with its simulator):
            several run at once, and none refuses to start.
        shared: a ``--share`` process's socket (named with the pid, too): it starts beside the
            other ``--share`` processes of the config, and refuses to start beside a plain one.
    """

    def __init__(
        self,
        config_path: Path,
        *,
        environ: Mapping[str, str] | None = None,
        own: bool = False,
        shared: bool = False,
    ) -> None:
        self.config_path = config_path.resolve()
        self.shared = shared
        self._environ = environ
        self._dirs = control_dirs(environ)
        self._own = own
        pid = os.getpid() if own or shared else None
        self.path = self._dirs[0] / socket_name(config_path, pid)
        self._share: Callable[[], Awaitable[Any]] | None = None
        self._server: asyncio.Server | None = None
        self._inode: int | None = None
        self._feed: FeedManager | None = None
        self._reload: Reload | None = None
        self._metrics: str | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sighup = False
        self._started_at = time.time()

    def __repr__(self) -> str:
        return f"ControlServer({self.path})"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Claim the socket and listen.

        Raises:
            ControlError: a stream of this config is already running, or the socket cannot be
                made (a directory that is not the user's or that others may enter, a path too
                long, something other than a socket at its path).
        """
        _private_dir(self._dirs[0], create=True, environ=self._environ)
        _check_length(self.path)
        name = socket_name(self.config_path)
        for directory in [] if self._own else _usable_dirs(self._dirs, self._environ)[0]:
            for candidate in _sockets_of(directory, name):
                if not _socket_at(candidate):
                    continue
                answer = await _probe(candidate)
                if answer is not None and not (self.shared and answer.get("shared") is True):
                    pid = answer.get("pid")
                    raise self._already_running(
                        pid if isinstance(pid, int) and pid else None, answer.get("shared") is True
                    )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(self.path))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise self._already_running(None) from None
            raise ControlError(
                f"cannot make the control socket {self.path}: {exc.strerror}"
            ) from None
        try:
            os.chmod(self.path, 0o600)
            sock.listen(64)
            self._inode = os.lstat(self.path).st_ino
            self._server = await asyncio.start_unix_server(
                self._serve_client, sock=sock, limit=REQUEST_LIMIT
            )
        except BaseException:
            sock.close()
            self._unlink()
            raise
        log.info("control socket at %s", self.path)

    def attach(
        self,
        feed: FeedManager,
        reload: Reload,
        *,
        metrics_url: str | None = None,
        share: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        """Serve this feed; ``reload`` re-reads the config file for ``preview``, ``apply`` and
        SIGHUP; ``share`` gives the group's document of a ``--share`` stream. Installs the
        SIGHUP handler (where the platform has one)."""
        self._feed = feed
        self._share = share
        self._reload = reload
        self._metrics = metrics_url
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._sighup = True
        self._spawn(self._sample(feed))

    async def close(self) -> None:
        """Stop listening, end every client's connection, remove the socket and SIGHUP handler."""
        if self._sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        server = self._server
        self._server = None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        self._unlink()

    async def reload(self, *, apply: bool, source: str) -> ConfigChange:
        """Re-read the config file, and apply it (``apply``) or say what applying would change.

        An applied change, or a refused one, is also announced on the feed's event streams
        (status ``config_applied`` or ``config_rejected``, key ``*``).

        Raises:
            ConfigError: the edited config is invalid.
            PlanError: its symbols do not fit (nothing was changed).
            FeedError: it changes what a running stream cannot take (keys, url, limits,
                strategy), or there is no feed yet.
        """
        feed, reload = self._feed, self._reload
        if feed is None or reload is None:
            raise ControlError("the stream is starting: try again in a moment")
        async with self._lock:
            before = feed.config
            try:
                after = await asyncio.to_thread(reload, before)
                diff = feed.apply_config(after) if apply else feed.preview_config(after)
            except KitefanError as exc:
                if apply:
                    message = f"{source}: not applied: {exc}"
                    log.warning("%s", message)
                    feed.announce(Status.CONFIG_REJECTED, message)
                raise
            notes = []
            if after.tuning != before.tuning:
                notes.append("[tuning] changes take effect when the stream is started again")
            change = ConfigChange.from_diff(
                diff,
                before,
                after,
                config=str(self.config_path),
                applied=apply,
                warnings=notes,
            )
            if apply:
                feed.announce(Status.CONFIG_APPLIED, f"{source}: {change.summary()}")
            return change

    # Internals

    def _already_running(self, pid: int | None, shared: bool = False) -> ControlError:
        which = f" (pid {pid})" if pid else ""
        if shared or self.shared:
            what = "with --share" if shared else "without --share"
            return ControlError(
                f"a stream of {self.config_path} is already running {what}{which}: streams of "
                "one config share its keys only if every one of them runs with --share; stop it "
                "first, or start this one the same way"
            )
        return ControlError(
            f"a stream of {self.config_path} is already running{which}: two streams of one "
            "config would fight over its keys' connections; stop it first, or change it with "
            "`kitefan distribute`"
        )

    def _unlink(self) -> None:
        """Remove the socket, if the file there is still ours."""
        if self._inode is None:
            return
        try:
            if os.lstat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass
        self._inode = None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_sighup(self) -> None:
        self._spawn(self._reload_on_signal())

    async def _sample(self, feed: FeedManager) -> None:
        """Take a snapshot every second, so that rates (ticks/s) cover the last few seconds
        when a client asks, rather than starting from its first question."""
        while True:
            feed.stats()
            await asyncio.sleep(_SAMPLE_INTERVAL_S)

    async def _reload_on_signal(self) -> None:
        with contextlib.suppress(KitefanError):  # announced by reload()
            await self.reload(apply=True, source="SIGHUP")

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # past REQUEST_LIMIT: the rest of the line cannot be found
                    writer.write(encode_failure(failure(ErrorKind.CONTROL, "request too long")))
                    await writer.drain()
                    return
                if not line:
                    return
                writer.write(await self._respond(line))
                await writer.drain()
        except ConnectionError:
            return
        except asyncio.CancelledError:
            # The server is closing with this client connected. Ending here, rather than
            # re-raising, keeps Python 3.11's start_server from reporting the cancelled handler
            # as an error with a traceback (its callback asks a cancelled task for its
            # exception); nothing waits on this task's result.
            return
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, line: bytes) -> bytes:
        """The response line to a request line."""
        try:
            request = decode_request(line)
        except ProtocolError as exc:
            return encode_failure(failure(ErrorKind.CONTROL, str(exc)))
        try:
            result = await self._dispatch(request)
        except Exception as exc:
            if not isinstance(exc, KitefanError):
                log.exception("control request %r failed", str(request.op))
            return encode_failure(error_document(exc))
        return encode_result(result)

    def hello(self) -> HelloDocument:
        """Who this stream is (the ``hello`` result)."""
        return {
            "pid": os.getpid(),
            "config": str(self.config_path),
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "started_at": self._started_at,
            "metrics": self._metrics,
            "shared": self.shared,
        }

    async def _dispatch(
        self, request: Request
    ) -> HelloDocument | StatsDocument | NeverTickedDocument | ChangeDocument:
        if isinstance(request, Hello):
            return self.hello()
        feed = self._feed
        if feed is None:
            raise ControlError("the stream is starting: try again in a moment")
        match request:
            case Stats():
                document = feed.stats().as_dict()
                if self._share is not None:
                    document["share"] = await self._share()
                return document
            case NeverTicked(key=key):
                if key is not None:
                    feed.key_stats(key)  # an unknown key raises FeedError, naming the keys
                current = feed.plan
                symbols: list[NeverTickedSymbol] = []
                for key_id in [key] if key is not None else feed.keys():
                    for spec in feed.never_ticked(key_id):
                        slot = current.where(spec.token) or (key_id, -1)
                        symbols.append(
                            {
                                "instrument_token": spec.token,
                                "symbol": spec.name,
                                "mode": spec.mode.value,
                                "key": slot[0],
                                "connection": slot[1],
                            }
                        )
                return {"symbols": symbols}
            case Preview():
                change = await self.reload(apply=False, source="kitefan distribute --dry-run")
                return change.as_dict()
            case Apply():
                change = await self.reload(apply=True, source="kitefan distribute")
                return change.as_dict()


async def _probe(path: Path) -> dict[str, Any] | None:
    """Whether a stream answers on the socket at ``path``: its ``hello`` (``{}`` if it did not
    say), or None.

    A socket left by a stream that died (connection refused) is removed.
    """
    try:
        reader, writer = await asyncio.open_unix_connection(os.fspath(path))
    except FileNotFoundError:
        return None
    except ConnectionRefusedError:
        _remove_socket(path)
        return None
    try:
        writer.write(encode_request(Hello()))
        async with asyncio.timeout(2.0):
            await writer.drain()
            answer = decode_response(await reader.readline())
        hello = answer.result if isinstance(answer, Ok) else None
        return hello if isinstance(hello, dict) else {}
    except (OSError, TimeoutError, ValueError, ProtocolError):  # an answer, if not a hello
        return {}
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# The client's side ------------------------------------------------------------------------------


def _usable_dirs(
    dirs: list[Path], environ: Mapping[str, str] | None = None
) -> tuple[list[Path], ControlError | None]:
    """The directories that exist and are the user's; and the first refusal of one that is not
    (a directory someone else made at our path, or open to others, is passed over, not
    trusted)."""
    usable = []
    refused = None
    for directory in dirs:
        try:
            if _private_dir(directory, create=False, environ=environ):
                usable.append(directory)
        except ControlError as exc:
            refused = refused or exc
    return usable, refused


def _candidates(
    config_path: Path, environ: Mapping[str, str] | None, pid: int | None = None
) -> tuple[str, list[Path], ControlError | None]:
    """The config's resolved path, where its sockets may be (the config's, then those of each
    process's own, or only that of ``pid``), and a directory refused."""
    name = socket_name(config_path)
    own = socket_name(config_path, pid) if pid is not None else None
    usable, refused = _usable_dirs(control_dirs(environ), environ)
    found: list[Path] = []
    for directory in usable:
        if own is not None:
            found += [directory / own, directory / name]
        else:
            found += _sockets_of(directory, name)
    return str(config_path.resolve()), found, refused


class ControlClient:
    """A connection to the running stream of a config.

    ``async with await ControlClient.connect(path) as client: await client.stats()``.

    Args:
        reader: the connection's reader.
        writer: the connection's writer.
        path: the socket connected to.
        config: the config file (resolved) whose stream this is.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        path: Path,
        config: str,
    ) -> None:
        self.path = path
        self.config = config
        self._reader = reader
        self._writer = writer

    def __repr__(self) -> str:
        return f"ControlClient({self.path})"

    @classmethod
    async def connect(
        cls,
        config_path: Path,
        *,
        start: str = "",
        environ: Mapping[str, str] | None = None,
        pid: int | None = None,
    ) -> ControlClient:
        """Connect to the running stream of ``config_path`` (of process ``pid``, when given:
        several streams of one config run at once only as demos, each with its own socket, or
        as the ``--share`` processes of one group, any of which answers for the group).

        Args:
            config_path: the config file the stream was started with (any path to the same
                file works).
            start: the command that starts one, for the message when none runs.
            environ: where the directory rule reads its variables (default: ``os.environ``).
            pid: the process whose stream to connect to.

        Raises:
            StreamNotRunningError: none runs (``gone`` if one died without cleaning up; its
                socket is removed).
            ControlError: several that are not one ``--share`` group run and no ``pid`` says
                which (the message lists their pids), or none runs as ``pid``; none was found,
                and a socket directory is not the user's or others may enter it (it was passed
                over); or something other than a socket (a file, a symlink) is at the socket's
                path.
        """
        resolved, candidates, refused = _candidates(config_path, environ, pid)
        gone = False
        found: list[ControlClient] = []
        for path in candidates:
            if not _socket_at(path):
                continue
            try:
                reader, writer = await asyncio.open_unix_connection(
                    os.fspath(path), limit=_RESPONSE_LIMIT
                )
            except FileNotFoundError:
                continue
            except ConnectionRefusedError:
                gone = True
                _remove_socket(path)
                continue
            except OSError as exc:
                raise ControlError(f"cannot reach the stream at {path}: {exc.strerror}") from None
            client = cls(reader, writer, path=path, config=resolved)
            if pid is not None and _pid_of(path) != pid and (await client.hello())["pid"] != pid:
                await client.close()
                continue
            found.append(client)
        if len(found) == 1:
            return found[0]
        if found and all([(await client.hello()).get("shared") is True for client in found]):
            # The members of one --share group: any of them answers for the whole group.
            for client in found[1:]:
                await client.close()
            return found[0]
        if found:
            pids = []
            for client in found:
                pids.append(_pid_of(client.path) or int((await client.hello())["pid"]))
                await client.close()
            raise ControlError(
                f"{len(found)} streams of {resolved} are running (pids "
                f"{', '.join(map(str, sorted(pids)))}): pick one with --pid PID"
            )
        if pid is not None:
            raise ControlError(f"no stream of {resolved} runs as pid {pid}")
        if refused is not None and not gone:
            raise refused
        raise StreamNotRunningError(resolved, gone=gone, start=start)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def request(self, request: Request, *, timeout_s: float = 10.0) -> Any:
        """Send one request and return its result (the op's document).

        Raises:
            ConfigError, PlanError, FeedError: the stream refused, for that reason.
            ControlError: no answer within ``timeout_s``, the stream went away, answered
                something that is not a response, or refused the request.
        """
        try:
            self._writer.write(encode_request(request))
            async with asyncio.timeout(timeout_s):
                await self._writer.drain()
                line = await self._reader.readline()
        except TimeoutError:
            raise ControlError(
                f"the stream of {self.config} did not answer within {timeout_s:g} s"
            ) from None
        except (ConnectionError, ValueError):
            line = b""
        if not line:
            raise ControlError(f"the stream of {self.config} stopped") from None
        try:
            answer = decode_response(line)
        except ProtocolError as exc:
            raise ControlError(f"the stream of {self.config} {exc}") from None
        if isinstance(answer, Failure):
            raise answer.exception()
        return answer.result

    async def hello(self) -> HelloDocument:
        """The stream's pid, config, version, protocol, start time, metrics URL and whether it
        runs with ``--share``."""
        return self._read(read_hello, await self.request(Hello()))

    async def stats(self) -> StatsDocument:
        """The stream's stats (:meth:`kitefan.stats.FeedStats.as_dict`)."""
        result: StatsDocument = await self.request(Stats())
        return result

    async def never_ticked(self, key: str | None = None) -> list[NeverTickedSymbol]:
        """Subscribed symbols that have not ticked since subscribed, of one key or all."""
        return self._read(read_never_ticked, await self.request(NeverTicked(key)))

    async def preview(self, *, timeout_s: float = 120.0) -> ConfigChange:
        """What applying the config file (as it is now) would change; nothing is changed."""
        return self._read(read_change, await self.request(Preview(), timeout_s=timeout_s))

    async def apply(self, *, timeout_s: float = 120.0) -> ConfigChange:
        """Have the stream re-read its config file and apply it; what changed."""
        return self._read(read_change, await self.request(Apply(), timeout_s=timeout_s))

    def _read(self, read: Callable[[Any], _T], result: Any) -> _T:
        """A result, checked by the protocol's reader of it."""
        try:
            return read(result)
        except ProtocolError as exc:
            raise ControlError(f"the stream of {self.config} {exc}") from None
