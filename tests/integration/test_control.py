"""The control channel in one process: the socket's place and permissions, the protocol, liveness,
errors that keep their kind, and no secret on the wire; the feed and the simulator are real.

The two-process cases (``kitefan stream`` in its own process) are in test_stats_cli.py and
test_distribute_cli.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from processes import invoke
from simulators import KEYS, nse, sim_until
from streams import SENTINEL, account, simulator_fixture, write_config

from kitefan.config import load_config
from kitefan.control import (
    ControlClient,
    ControlServer,
    _usable_dirs,
    control_dirs,
    socket_name,
)
from kitefan.errors import ConfigError, ControlError, FeedError, PlanError, StreamNotRunningError
from kitefan.events import Event, StatusEvent
from kitefan.manager import EventStream, FeedManager
from kitefan.models import Mode
from kitefan.simulator import Simulator

pytestmark = pytest.mark.integration


simulator = simulator_fixture(seed=9, rate=20.0)


@asynccontextmanager
async def controlled(config: Path) -> AsyncIterator[tuple[FeedManager, ControlServer]]:
    """A feed of the config file, and its control server, re-reading the file on apply."""
    async with ControlServer(config) as server, FeedManager(load_config(config)) as feed:
        server.attach(feed, lambda running: load_config(config))
        yield feed, server


async def raw(path: Path, *lines: bytes) -> list[bytes]:
    """Send lines to a socket as they are; the answers as they came."""
    reader, writer = await asyncio.open_unix_connection(os.fspath(path), limit=2**24)
    answers = []
    try:
        for line in lines:
            writer.write(line)
            await writer.drain()
            async with asyncio.timeout(10):
                answers.append(await reader.readline())
    finally:
        writer.close()
        await writer.wait_closed()
    return answers


async def next_status(events: EventStream[Event], state: str) -> StatusEvent:
    async with asyncio.timeout(10):
        async for event in events:
            if isinstance(event, StatusEvent) and event.state == state:
                return event
    raise AssertionError("the stream ended")


# Where ------------------------------------------------------------------------------------------


def test_the_directory_rule(tmp_path: Path) -> None:
    fallback = Path(f"/tmp/kitefan-{os.getuid()}")
    assert control_dirs({}) == [fallback]
    assert control_dirs({"XDG_RUNTIME_DIR": str(tmp_path)}) == [tmp_path / "kitefan", fallback]
    # Not a directory, or not absolute: ignored, as the XDG spec says.
    assert control_dirs({"XDG_RUNTIME_DIR": str(tmp_path / "missing")}) == [fallback]
    assert control_dirs({"XDG_RUNTIME_DIR": "relative"}) == [fallback]
    assert control_dirs({"KITEFAN_RUNTIME_DIR": "/x", "XDG_RUNTIME_DIR": str(tmp_path)}) == [
        Path("/x")
    ]


def test_the_socket_is_named_after_the_resolved_config_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "my config.toml"
    config.write_text("")
    (tmp_path / "link.toml").symlink_to(config)
    monkeypatch.chdir(tmp_path)
    name = socket_name(config)
    assert name.startswith("my_config-") and name.endswith(".sock")
    assert len(name) == len("my_config-") + 16 + len(".sock")
    assert socket_name(Path("my config.toml")) == name
    assert socket_name(tmp_path / "link.toml") == name
    assert socket_name(tmp_path / "other.toml") != name


async def test_the_socket_is_private_and_removed_on_exit(tmp_path: Path, runtime_dir: Path) -> None:
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    async with ControlServer(config) as server:
        assert server.path == runtime_dir / socket_name(config)
        assert stat.S_IMODE(os.stat(runtime_dir).st_mode) == 0o700
        info = os.stat(server.path)
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert info.st_uid == os.getuid()
        async with await ControlClient.connect(config) as client:
            hello = await client.hello()
            assert hello["pid"] == os.getpid()
            assert hello["config"] == str(config.resolve())
            assert (hello["protocol"], hello["metrics"]) == (1, None)
            # Listening before the feed starts: asked for stats, it says so.
            with pytest.raises(
                ControlError, match=r"^the stream is starting: try again in a moment$"
            ):
                await client.stats()
    assert os.listdir(runtime_dir) == []


async def test_a_directory_that_is_not_one_is_refused(tmp_path: Path, runtime_dir: Path) -> None:
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    os.rmdir(runtime_dir)
    os.close(os.open(runtime_dir, os.O_CREAT | os.O_WRONLY, 0o600))  # a file in its place
    with pytest.raises(ControlError) as caught:
        await ControlServer(config).start()
    assert str(caught.value) == (
        f"KITEFAN_RUNTIME_DIR={runtime_dir} is not a directory of yours: point it at a private "
        "directory"
    )
    os.unlink(runtime_dir)
    os.mkdir(runtime_dir)


async def test_a_directory_that_is_not_the_users_is_passed_over_by_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    os.mkdir(mine, 0o700)
    os.close(os.open(theirs, os.O_CREAT | os.O_WRONLY, 0o600))
    refusal = (
        f"{theirs} is not a directory of yours: remove it, or set KITEFAN_RUNTIME_DIR to a "
        "private directory"
    )
    usable, refused = _usable_dirs([theirs, mine, tmp_path / "missing"], {})
    assert usable == [mine]
    assert str(refused) == refusal
    # Found nowhere else, the client says why rather than "no running stream".
    monkeypatch.setenv("KITEFAN_RUNTIME_DIR", str(theirs))
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    with pytest.raises(ControlError) as caught:
        await ControlClient.connect(config)
    assert str(caught.value) == (
        f"KITEFAN_RUNTIME_DIR={theirs} is not a directory of yours: point it at a private directory"
    )


@pytest.mark.parametrize(("mode", "why"), [(0o1777, "shared"), (0o755, "open to others")])
async def test_a_directory_others_may_enter_is_refused_and_left_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int, why: str
) -> None:
    """``KITEFAN_RUNTIME_DIR=/tmp`` run as root was chmodded 0700, locking every other user out.
    A directory of the user's own, mode 1777, is the same case without root."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    monkeypatch.setenv("KITEFAN_RUNTIME_DIR", str(shared))
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    refusal = (
        f"KITEFAN_RUNTIME_DIR={shared} is not kitefan's own directory (mode {mode:04o}, {why}): "
        "point it at a private directory, e.g. $XDG_RUNTIME_DIR/kitefan"
    )
    with pytest.raises(ControlError) as caught:
        await ControlServer(config).start()
    assert str(caught.value) == refusal
    with pytest.raises(ControlError) as caught:
        await ControlClient.connect(config)
    assert str(caught.value) == refusal
    assert stat.S_IMODE(os.stat(shared).st_mode) == mode
    assert os.listdir(shared) == []
    # Not named by the variable (the XDG or /tmp default): the same, saying what to do there.
    assert str(_usable_dirs([shared], {})[1]) == (
        f"{shared} is not kitefan's own directory (mode {mode:04o}, {why}): remove it, or set "
        "KITEFAN_RUNTIME_DIR to a private directory, e.g. $XDG_RUNTIME_DIR/kitefan"
    )
    # A directory kitefan makes is its own: 0700, its parents made as needed.
    own = tmp_path / "run" / "kitefan"
    monkeypatch.setenv("KITEFAN_RUNTIME_DIR", str(own))
    async with ControlServer(config):
        assert stat.S_IMODE(os.stat(own).st_mode) == 0o700


async def test_a_socket_path_too_long_is_said_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 100)
    monkeypatch.setenv("KITEFAN_RUNTIME_DIR", str(deep))
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    with pytest.raises(
        ControlError, match=r"is too long for a Unix socket \(\d+ bytes, at most 107\)"
    ):
        await ControlServer(config).start()


# Liveness ---------------------------------------------------------------------------------------


async def test_a_second_server_for_the_same_config_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    async with ControlServer(config):
        with pytest.raises(ControlError) as caught:
            await ControlServer(tmp_path / "." / "kitefan.toml").start()
    assert str(caught.value) == (
        f"a stream of {config.resolve()} is already running (pid {os.getpid()}): two streams "
        "of one config would fight over its keys' connections; stop it first, or change it "
        "with `kitefan distribute`"
    )


async def test_something_answering_garbage_on_the_socket_still_counts_as_a_stream(
    tmp_path: Path, runtime_dir: Path
) -> None:
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    asked: list[bytes] = []

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.readline())
        writer.write(b"\xffnot a response\n")
        await writer.drain()
        writer.close()

    squatter = await asyncio.start_unix_server(
        garbage, path=os.fspath(runtime_dir / socket_name(config))
    )
    async with squatter:
        with pytest.raises(ControlError) as caught:
            await ControlServer(config).start()
    assert asked == [b'{"v":1,"op":"hello"}\n']
    assert str(caught.value) == (
        f"a stream of {config.resolve()} is already running: two streams of one config would "
        "fight over its keys' connections; stop it first, or change it with `kitefan distribute`"
    )


async def test_a_shared_stream_registers_beside_the_config_and_refuses_only_a_plain_one(
    tmp_path: Path, runtime_dir: Path
) -> None:
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    stem = socket_name(config).removesuffix(".sock")
    async with ControlServer(config, shared=True) as shared:
        assert shared.path == runtime_dir / f"{stem}.{os.getpid()}.sock"
        with pytest.raises(ControlError) as caught:
            await ControlServer(config).start()
        assert str(caught.value) == (
            f"a stream of {config.resolve()} is already running with --share (pid "
            f"{os.getpid()}): streams of one config share its keys only if every one of them "
            "runs with --share; stop it first, or start this one the same way"
        )
        async with await ControlClient.connect(config) as client:
            hello = await client.hello()
        assert (hello["shared"], client.path) == (True, shared.path)
    async with ControlServer(config):
        with pytest.raises(ControlError) as caught:
            await ControlServer(config, shared=True).start()
        assert str(caught.value) == (
            f"a stream of {config.resolve()} is already running without --share (pid "
            f"{os.getpid()}): streams of one config share its keys only if every one of them "
            "runs with --share; stop it first, or start this one the same way"
        )


async def test_a_socket_left_by_a_dead_stream_is_gone_and_removed(
    tmp_path: Path, runtime_dir: Path
) -> None:
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    path = runtime_dir / socket_name(config)
    with pytest.raises(StreamNotRunningError) as caught:
        await ControlClient.connect(config)
    assert not caught.value.gone
    # What a killed stream leaves: a bound socket file nobody listens on.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(path))
    dead.close()
    with pytest.raises(StreamNotRunningError) as caught:
        await ControlClient.connect(config, start="kitefan stream --demo")
    assert caught.value.gone
    assert str(caught.value) == (
        f"the stream of {config.resolve()} is gone (it ended without cleaning up): "
        "start one with `kitefan stream --demo`"
    )
    assert not path.exists()
    # A new stream takes the place of a dead one.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(path))
    dead.close()
    async with ControlServer(config), await ControlClient.connect(config) as client:
        assert (await client.hello())["pid"] == os.getpid()


# What is at the socket's path ------------------------------------------------------------------


async def test_a_file_at_the_socket_path_is_left_alone_and_refused(
    tmp_path: Path, runtime_dir: Path
) -> None:
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    path = runtime_dir / socket_name(config)
    path.write_text("someone's notes\n")
    refusal = (
        f"the control socket path {path} is a file, not a socket: move it away; kitefan removes "
        "only sockets"
    )
    with pytest.raises(ControlError) as caught:
        await ControlServer(config).start()
    assert str(caught.value) == refusal
    with pytest.raises(ControlError) as caught:
        await ControlClient.connect(config)
    assert str(caught.value) == refusal
    assert path.read_text() == "someone's notes\n"
    path.unlink()
    path.mkdir()
    with pytest.raises(ControlError, match=r" is a directory, not a socket: move it away; "):
        await ControlServer(config).start()
    assert path.is_dir()


async def test_a_dangling_symlink_at_the_socket_path_says_what_to_remove(
    tmp_path: Path, runtime_dir: Path
) -> None:
    """It gave "already running" (bind() does not follow it, the probe did)."""
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    path = runtime_dir / socket_name(config)
    target = tmp_path / "gone.sock"
    path.symlink_to(target)
    refusal = (
        f"the control socket path {path} is a symlink (to {target}, which does not exist): "
        "remove it; kitefan makes its own socket there and follows no link"
    )
    with pytest.raises(ControlError) as caught:
        await ControlServer(config).start()
    assert str(caught.value) == refusal
    with pytest.raises(ControlError) as caught:
        await ControlClient.connect(config)
    assert str(caught.value) == refusal
    assert path.is_symlink()


async def test_a_symlink_to_another_streams_socket_reaches_neither(
    tmp_path: Path, runtime_dir: Path
) -> None:
    """It made ``stream`` refuse citing the other stream's pid, and ``stats`` show the other
    stream."""
    mine = write_config(tmp_path / "mine.toml", "ws://127.0.0.1:1", quote=nse(3))
    theirs = write_config(tmp_path / "theirs.toml", "ws://127.0.0.1:1", quote=nse(3))
    path = runtime_dir / socket_name(mine)
    async with ControlServer(theirs) as other:
        path.symlink_to(other.path)
        refusal = (
            f"the control socket path {path} is a symlink (to {other.path}): remove it; kitefan "
            "makes its own socket there and follows no link"
        )
        with pytest.raises(ControlError) as caught:
            await ControlServer(mine).start()
        assert str(caught.value) == refusal
        with pytest.raises(ControlError) as caught:
            await ControlClient.connect(mine)
        assert str(caught.value) == refusal
        code, out, err = await asyncio.to_thread(run_cli, "stats", "--config", str(mine))
        assert (code, out, err) == (1, "", f"error: {refusal}\n")
        # The other stream is untouched, and still found by its own config.
        async with await ControlClient.connect(theirs) as client:
            assert (await client.hello())["config"] == str(theirs.resolve())
    assert path.is_symlink()


# The protocol -----------------------------------------------------------------------------------


async def test_requests_that_are_not_understood_are_refused_one_line_each(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "kitefan.toml", simulator.url, quote=nse(6))
    async with controlled(config) as (_, server):
        answers = await raw(
            server.path,
            b"not json\n",
            b'{"v": 1}\n',
            b'{"v": 2, "op": "stats"}\n',
            b'{"v": 1, "op": "reboot"}\n',
            b'{"v": 1, "op": "never_ticked", "key": "nobody"}\n',
            b'{"v": 1, "op": "never_ticked", "key": 3}\n',
            b'{"v": 1, "op": "stats"}\n',
        )
        too_long = await raw(server.path, b'{"v": 1, "op": "' + b"x" * 70_000 + b'"}\n')
    errors = [json.loads(a)["error"] for a in answers[:-1]]
    assert errors == [
        {"kind": "control", "message": "a request is one JSON object per line"},
        {"kind": "control", "message": 'a request needs an "op"'},
        {
            "kind": "control",
            "message": "this stream speaks control protocol 1, the request 2: use the same "
            "kitefan version for both",
        },
        {
            "kind": "control",
            "message": "unknown op 'reboot': hello, stats, never_ticked, preview or apply",
        },
        {
            "kind": "feed",
            "message": "no key 'nobody' in the config; the keys are alpha, bravo, charlie",
        },
        {"kind": "control", "message": '"key" is a key id or null'},
    ]
    stats = json.loads(answers[-1])
    assert (stats["v"], stats["ok"]) == (1, True)
    assert [k["id"] for k in stats["result"]["keys"]] == list(KEYS)
    assert json.loads(too_long[0])["error"] == {"kind": "control", "message": "request too long"}


async def test_never_ticked_lists_the_silent_symbols_where_they_stream(
    simulator: Simulator, tmp_path: Path
) -> None:
    tokens = nse(9)
    config = write_config(
        tmp_path / "kitefan.toml", simulator.url, quote=tokens, tuning={"liveness_timeout_s": 60}
    )
    simulator.set_silent(True, api_key=account("bravo").api_key)
    async with controlled(config) as (feed, _):
        await sim_until(simulator, lambda: len(simulator.connections()) == 9)
        client = await ControlClient.connect(config)
        async with client:

            async def alpha_and_charlie_ticked() -> bool:
                document = await client.stats()
                return [k["never_ticked"] for k in document["keys"]] == [0, 3, 0]

            async with asyncio.timeout(10):
                while not await alpha_and_charlie_ticked():  # noqa: ASYNC110 - counters
                    await asyncio.sleep(0.02)
            silent = await client.never_ticked()
            assert silent == await client.never_ticked("bravo")
            assert await client.never_ticked("alpha") == []
    bravo = [t for t in tokens if feed.plan.where(t)[0] == "bravo"]  # type: ignore[index]  # a planned token: where() is not None
    assert [s["instrument_token"] for s in silent] == bravo
    assert silent[0] == {
        "instrument_token": bravo[0],
        "symbol": str(bravo[0]),
        "mode": "quote",
        "key": "bravo",
        "connection": 0,
    }
    assert [s["connection"] for s in silent] == [0, 1, 2]


# Applying ---------------------------------------------------------------------------------------


async def test_refused_edits_keep_their_kind_and_change_nothing(
    simulator: Simulator, tmp_path: Path
) -> None:
    tokens = nse(30)
    config = write_config(tmp_path / "kitefan.toml", simulator.url, quote=tokens)
    good = config.read_text()
    async with controlled(config) as (feed, _):
        events = feed.events()
        await sim_until(simulator, lambda: simulator.requests.mode_tokens == 30)
        client = await ControlClient.connect(config)
        async with client:
            requests = simulator.requests.copy()
            # Keys added: the running stream cannot take it.
            write_config(config, simulator.url, quote=tokens, keys=(*KEYS, "delta"))
            with pytest.raises(FeedError) as feed_error:
                await client.apply()
            assert str(feed_error.value) == (
                "the edited config adds, removes or reorders keys: restart the stream for that"
            )
            rejected = await next_status(events, "config_rejected")
            assert rejected.key == "*"
            assert rejected.message == f"kitefan distribute: not applied: {feed_error.value}"
            # Invalid: the same error, with the same message, as loading it here.
            config.write_text(good.replace('mode = "quote"', 'mode = "fast"'))
            with pytest.raises(ConfigError) as config_error:
                load_config(config)
            with pytest.raises(ConfigError) as remote:
                await client.preview()
            assert str(remote.value) == str(config_error.value)
            assert remote.value.problems == config_error.value.problems
            # Over capacity: a plan error, with its numbers.
            write_config(config, simulator.url, quote=nse(27_001))
            with pytest.raises(PlanError) as plan_error:
                await client.apply()
            assert (plan_error.value.asked, plan_error.value.fits) == (27_001, 27_000)
            assert simulator.requests == requests
            assert feed.stats().totals.symbols == 30
        # A preview refused is not announced; only applying is.
        assert [e.state for e in events.drain() if isinstance(e, StatusEvent)] == [
            "config_rejected"
        ]


def run_cli(*args: str) -> tuple[int, str, str]:
    result = invoke(*args, env={"COLUMNS": "120"})
    return result.exit_code, result.stdout, result.stderr


async def test_mode_changes_are_mode_messages_on_the_same_connections(
    simulator: Simulator, tmp_path: Path
) -> None:
    tokens = nse(300)
    tuning = {"subscribe_batch": 40}
    config = write_config(tmp_path / "kitefan.toml", simulator.url, quote=tokens, tuning=tuning)
    async with controlled(config):
        await sim_until(
            simulator, lambda: sum(len(c.subscriptions) for c in simulator.connections()) == 300
        )
        views = simulator.connections()
        before = {v.id: (v.subscriptions, v.requests.copy()) for v in views}
        changed = tokens[:150]
        write_config(config, simulator.url, quote=tokens[150:], full=changed, tuning=tuning)
        # The CLI runs its own event loop: in a thread, while this one serves the stream.
        code, out, err = await asyncio.to_thread(run_cli, "distribute", "--config", str(config))
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[1] == (
            "0 added, 0 removed, 0 moved, 150 mode changes (0 subscribes, 0 unsubscribes)"
        )
        assert "mode changed (150): " in out
        await sim_until(
            simulator,
            lambda: all(
                c.subscriptions[t] is Mode.FULL
                for c in simulator.connections()
                for t in changed
                if t in c.subscriptions
            ),
        )
        assert {v.id for v in simulator.connections()} == set(before)
        for view in simulator.connections():
            subscriptions, requests = before[view.id]
            here = [t for t in subscriptions if t in set(changed)]
            assert view.subscriptions.keys() == subscriptions.keys()
            now = view.requests
            assert (
                now.mode_messages - requests.mode_messages,
                now.mode_tokens - requests.mode_tokens,
                now.subscribe_messages - requests.subscribe_messages,
                now.unsubscribe_messages - requests.unsubscribe_messages,
            ) == (-(-len(here) // 40), len(here), 0, 0)
        # Refusals through the CLI: exit codes as for a local command.
        write_config(config, simulator.url, quote=tokens, keys=KEYS[:2])
        code, out, err = await asyncio.to_thread(run_cli, "distribute", "--config", str(config))
        assert (code, out) == (1, "")
        assert err == (
            "error: the edited config adds, removes or reorders keys: restart the stream for that\n"
        )
        write_config(config, simulator.url, quote=nse(27_001))
        code, out, err = await asyncio.to_thread(
            run_cli, "distribute", "--dry-run", "--config", str(config)
        )
        assert (code, out) == (3, "")
        assert err.startswith("error: over capacity: 27001 symbols asked, 27000 fit")


async def test_no_secret_crosses_the_channel_or_lands_in_its_directory(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    tokens = nse(12)
    config = write_config(tmp_path / "kitefan.toml", simulator.url, quote=tokens)
    async with controlled(config) as (_, server):
        await sim_until(simulator, lambda: len(simulator.connections()) == 9)
        requests = [
            b'{"v":1,"op":"hello"}\n',
            b'{"v":1,"op":"stats"}\n',
            b'{"v":1,"op":"never_ticked","key":null}\n',
            b'{"v":1,"op":"preview"}\n',
        ]
        answers = await raw(server.path, *requests)
        # A new token (a change that names the key, never the token) and a refused edit.
        text = config.read_text().replace("token-bravo-0001", "token-bravo-0002")
        config.write_text(text)
        simulator.set_token(account("bravo").api_key, account("bravo", 2).access_token)
        answers += await raw(server.path, b'{"v":1,"op":"apply"}\n')
        assert json.loads(answers[-1])["result"]["tokens"] == ["bravo"]
        config.write_text(text.replace('id = "charlie"', 'id = "delta"'))
        answers += await raw(server.path, b'{"v":1,"op":"preview"}\n', b'{"v":1,"op":"apply"}\n')
        assert [json.loads(a)["ok"] for a in answers] == [True] * 5 + [False] * 2
        listing = os.listdir(runtime_dir)
    for answer in answers:
        assert SENTINEL.encode() not in answer
    assert SENTINEL not in " ".join(listing)
