"""``kitefan stats`` and ``stream --metrics`` as users run them: the stream in its own process,
``kitefan stats`` from another, the metrics endpoint scraped over HTTP.

Issue 5's "Done when": with ``kitefan stream --config X`` running, ``kitefan stats --config X
--format json`` shows every key with ticks rising; ``--watch`` refreshes; SIGKILL makes ``stats``
say the stream is gone; the metrics agree with ``stats``.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import resource
import signal
import stat
from pathlib import Path
from typing import Any

import processes
import pytest
from polling import until
from prometheus_client.parser import text_string_to_metric_families
from simulators import KEYS, nse
from streams import (
    ROOT,
    SENTINEL,
    environment,
    kitefan,
    running_stream,
    simulator_fixture,
    write_config,
)

from kitefan.control import socket_name
from kitefan.simulator import Simulator

pytestmark = pytest.mark.integration


simulator = simulator_fixture(seed=3, rate=20.0)


def config_for(sim: Simulator, directory: Path, **tuning: object) -> Path:
    return write_config(
        directory / "kitefan.toml",
        sim.url,
        quote=nse(30),
        full=nse(6, start=5000),
        tuning=tuning or None,
    )


async def every_key_ticking(stream: Any) -> bool:
    document = await stream.stats()
    return all(key["ticks"] > 0 and key["never_ticked"] == 0 for key in document["keys"])


async def test_stats_json_from_another_process_shows_every_key_with_ticks_rising(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    config = config_for(simulator, tmp_path)
    async with running_stream(config, env, tmp_path) as stream:
        await until(lambda: every_key_ticking(stream))
        code, out, err = await kitefan(
            "stats", "--config", str(config), "--format", "json", env=env
        )
        assert (code, err) == (0, "")
        code, again, err = await kitefan(
            "stats", "--config", str(config), "--format", "json", env=env
        )
        assert (code, err) == (0, "")
        # The socket: private directory, private socket, named after the config's path.
        directory = runtime_dir / "kitefan"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        socket = directory / socket_name(config)
        assert stat.S_ISSOCK(socket.stat().st_mode)
        assert stat.S_IMODE(socket.stat().st_mode) == 0o600
        assert [p.name for p in directory.iterdir()] == [socket.name]
    assert len(out.splitlines()) == 1
    first, second = json.loads(out), json.loads(again)
    # The documented shape: keys with their connections, totals, updated_at.
    assert {"keys", "totals", "updated_at"} <= set(first)
    assert [key["id"] for key in first["keys"]] == list(KEYS)
    for key in first["keys"]:
        assert {"id", "state", "symbols", "ticks", "connections"} <= set(key)
        assert key["state"] == "connected"
        assert key["symbols"] == 12
        assert key["ticks_per_s"] > 0  # sampled every second by the stream, ready when asked
        assert [c["index"] for c in key["connections"]] == [0, 1, 2]
        for conn in key["connections"]:
            assert {"index", "state", "symbols", "ticks"} <= set(conn)
            assert conn["state"] == "connected"
        assert key["ticks"] == sum(c["ticks"] for c in key["connections"])
    assert first["totals"]["symbols"] == 36
    assert first["totals"]["ticks"] == sum(k["ticks"] for k in first["keys"])
    # Rising, key by key, between the two calls.
    for before, after in zip(first["keys"], second["keys"], strict=True):
        assert after["ticks"] > before["ticks"]
    assert second["updated_at"] > first["updated_at"]
    # Full-mode symbols carry the exchange delay (whole seconds).
    delays = [c["exchange_delay_p50_s"] for k in first["keys"] for c in k["connections"]]
    assert any(isinstance(d, int) for d in delays)
    assert SENTINEL not in out + again


async def test_a_stream_stopping_with_a_client_connected_says_only_its_summary(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    config = config_for(simulator, tmp_path)
    async with running_stream(config, env, tmp_path) as stream:
        client = await stream.client()
        try:
            assert (await client.hello())["config"] == str(config)
            assert await stream.process.interrupt() == 0
        finally:
            await client.close()
    err = stream.stderr.read_text()
    assert err.startswith("kitefan: interrupted after ") and err.count("\n") == 1, err


async def test_watch_refreshes_json_lines_and_a_terminal_in_place(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    config = config_for(simulator, tmp_path)
    async with running_stream(config, env, tmp_path) as stream:
        await until(lambda: every_key_ticking(stream))
        code, out, err = await kitefan(
            "stats",
            "--config",
            str(config),
            "--format",
            "json",
            "--watch",
            "--interval",
            "0.3",
            "--count",
            "2",
            env=env,
        )
        screen = await in_terminal(
            "stats",
            "--config",
            str(config),
            "--watch",
            "--interval",
            "0.3",
            "--count",
            "3",
            env=env,
        )
    assert (code, err) == (0, "")
    first, second = (json.loads(line) for line in out.splitlines())
    assert second["totals"]["ticks"] > first["totals"]["ticks"]
    # On a terminal: drawn three times (and once more as Live leaves it on screen), each redraw
    # going back up over the last one.
    text = re.sub(r"\x1b\[[0-9;]*m", "", screen)  # colours and styles
    assert text.count("kitefan stream of") == text.count("health") == 4
    assert text.count("\x1b[2K\x1b[1A") > 3 * 40  # erase the line, go up: redrawn in place
    assert SENTINEL not in screen


async def in_terminal(*args: str, env: dict[str, str]) -> str:
    """Run ``kitefan ARGS`` on a pseudo-terminal (80×60); everything it drew."""
    controller, terminal = pty.openpty()
    os.set_blocking(controller, False)
    chunks: list[bytes] = []
    async with processes.started(
        *processes.kitefan(*args),
        cwd=ROOT,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "60"},
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    ) as process:
        os.close(terminal)
        readable = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(controller, readable.set)
        try:
            async with asyncio.timeout(30):
                while True:
                    await readable.wait()
                    readable.clear()
                    try:
                        chunk = os.read(controller, 65536)
                    except BlockingIOError:
                        continue
                    except OSError:  # EIO: the other side is closed, the process has exited
                        break
                    if not chunk:
                        break
                    chunks.append(chunk)
                    process.record("terminal", chunk)
                assert await process.wait() == 0
        finally:
            loop.remove_reader(controller)
            os.close(controller)
    return b"".join(chunks).decode()


async def test_watch_into_a_reader_that_leaves_ends_cleanly_in_both_formats(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    config = config_for(simulator, tmp_path)
    async with running_stream(config, env, tmp_path) as stream:
        for fmt, first in (("table", "kitefan stream of "), ("json", '{"keys":')):
            # `kitefan stats --watch | head -1`, as a shell runs it, with the exit code of stats.
            watch = " ".join(processes.kitefan("stats", "--config", str(config), "--watch"))
            code, out, err = await processes.run(
                "bash",
                "-c",
                f"set -o pipefail; {watch} --format {fmt} --interval 0.1 | head -1",
                env=env,
                cwd=ROOT,
            )
            assert (code, err) == (0, ""), fmt
            assert out.startswith(first) and out.count("\n") == 1, out
        assert stream.process.returncode is None


async def test_a_stream_killed_with_sigkill_is_reported_gone_then_can_start_again(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    config = config_for(simulator, tmp_path)
    resolved = config.resolve()
    socket = runtime_dir / "kitefan" / socket_name(config)
    async with running_stream(config, env, tmp_path) as stream:
        stream.process.send_signal(signal.SIGKILL)
        await stream.process.wait()
        assert socket.exists()  # it had no chance to clean up
        code, out, err = await kitefan("stats", "--config", str(config), env=env)
        assert (code, out) == (1, "")
        assert err == (
            f"error: the stream of {resolved} is gone (it ended without cleaning up): "
            f"start one with `kitefan stream --config {resolved}`\n"
        )
        assert not socket.exists()
        code, out, err = await kitefan("stats", "--config", str(config), env=env)
        assert (code, out) == (1, "")
        assert err == (
            f"error: no running stream for {resolved}: "
            f"start one with `kitefan stream --config {resolved}`\n"
        )
    # Once gone, its config can stream again.
    async with running_stream(config, env, tmp_path) as stream:
        await until(lambda: every_key_ticking(stream))


async def test_a_second_stream_of_the_same_config_is_refused_before_it_connects(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    config = config_for(simulator, tmp_path)
    async with running_stream(config, env, tmp_path) as stream:
        await until(lambda: every_key_ticking(stream))
        opened = simulator.counters.connections_opened
        code, out, err = await kitefan(
            "stream", "--config", str(config), "--format", "jsonl", "--duration", "5", env=env
        )
        assert simulator.counters.connections_opened == opened
    assert (code, out) == (1, "")
    assert err == (
        f"error: a stream of {config.resolve()} is already running (pid {stream.process.pid}): "
        "two streams of one config would fight over its keys' connections; stop it first, or "
        "change it with `kitefan distribute`\n"
    )


async def test_no_stream_is_one_line_saying_how_to_start_one(
    tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    config = write_config(tmp_path / "kitefan.toml", "ws://127.0.0.1:1", quote=nse(3))
    code, out, err = await kitefan("stats", "--config", str(config), env=env)
    assert (code, out) == (1, "")
    assert err == (
        f"error: no running stream for {config.resolve()}: "
        f"start one with `kitefan stream --config {config.resolve()}`\n"
    )
    code, out, err = await kitefan("stats", "--demo", "--format", "json", env=env)
    assert (code, out) == (1, "")
    assert err.endswith(": start one with `kitefan stream --demo`\n")
    assert len(err.splitlines()) == 1


# Metrics ---------------------------------------------------------------------------------


async def scrape(url: str) -> str:
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(10):
        response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK\r\n")
    return body


async def test_the_metrics_scraped_agree_with_stats_exactly(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    # A long liveness timeout: the simulator is silenced below, and the stream must not notice.
    config = config_for(simulator, tmp_path, liveness_timeout_s=60.0)
    async with running_stream(config, env, tmp_path, "--metrics", "127.0.0.1:0") as stream:
        async with await stream.client() as client:
            url = (await client.hello())["metrics"]
            assert url is not None
        assert url.startswith("http://127.0.0.1:")
        assert f"kitefan: metrics at {url}\n" in stream.stderr.read_text()
        await until(lambda: every_key_ticking(stream))
        # Stop the traffic, and wait until the stream has read every frame the simulator sent:
        # from then on its counters stand still, and two readings must agree exactly.
        simulator.set_silent(True)

        async def everything_read() -> bool:
            c = simulator.counters
            sent = c.frames_sent + c.heartbeats_sent + c.texts_sent + c.malformed_sent
            return bool((await stream.stats())["totals"]["frames"] == sent)

        await until(everything_read)
        text = await scrape(url)
        code, out, err = await kitefan(
            "stats", "--config", str(config), "--format", "json", env=env
        )
    assert (code, err) == (0, "")
    document = json.loads(out)
    got = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def at(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    counters = {
        "kitefan_ticks_total": "ticks",
        "kitefan_frames_total": "frames",
        "kitefan_bytes_total": "bytes",
        "kitefan_heartbeats_total": "heartbeats",
        "kitefan_reconnects_total": "reconnects",
        "kitefan_dropped_ticks_total": "drops",
        "kitefan_decode_errors_total": "decode_errors",
        "kitefan_skipped_packets_total": "skipped_packets",
        "kitefan_server_errors_total": "server_errors",
        "kitefan_internal_errors_total": "internal_errors",
        "kitefan_never_ticked_symbols": "never_ticked",
    }
    compared = 0
    for key in document["keys"]:
        assert at("kitefan_key_state", key=key["id"], state=key["state"]) == 1
        assert at("kitefan_order_updates_total", key=key["id"]) == key["orders"]
        for conn in key["connections"]:
            labels = {"key": key["id"], "connection": str(conn["index"])}
            for name, field in counters.items():
                assert at(name, **labels) == conn[field], (name, labels)
                compared += 1
            for mode, count in conn["symbols_by_mode"].items():
                assert at("kitefan_symbols", **labels, mode=mode) == count
            assert at("kitefan_connection_up", **labels) == (conn["state"] == "connected")
    assert compared == 9 * len(counters)
    assert (
        sum(v for (n, _), v in got.items() if n == "kitefan_ticks_total")
        == (document["totals"]["ticks"])
    )
    assert document["totals"]["ticks"] > 0
    assert SENTINEL not in text


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
async def test_idle_connections_to_the_metrics_port_cannot_starve_the_feeds_reconnects(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    """The issue's case: idle connections to the metrics port under a descriptor limit made the
    feed's reconnects fail ("Too many open files"). The port now holds at most 16 of them."""
    env = environment(runtime_dir)
    config = config_for(simulator, tmp_path)
    async with running_stream(config, env, tmp_path, "--metrics", "127.0.0.1:0") as stream:
        async with await stream.client() as client:
            url = (await client.hello())["metrics"]
            assert url is not None
        await until(lambda: every_key_ticking(stream))
        pid = stream.process.pid
        # Room for the 16 the port keeps and the moment it takes to refuse a flood (64 at the
        # peak), not for 150 idle connections (which would all have been kept).
        _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        limit = len(os.listdir(f"/proc/{pid}/fd")) + 96
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
        host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
        idle = [await asyncio.open_connection(host, int(port)) for _ in range(150)]
        answers = [asyncio.ensure_future(reader.read()) for reader, _ in idle]
        try:
            # Every connection of the feed lost at once, while they come: each must reconnect.
            assert await simulator.drop_connections() == 9

            async def all_reconnected() -> bool:
                document = await stream.stats()
                conns = [c for key in document["keys"] for c in key["connections"]]
                return [(c["state"], c["reconnects"]) for c in conns] == [("connected", 1)] * 9

            await until(all_reconnected)
        finally:
            for _, writer in idle:
                writer.close()
            await asyncio.gather(*answers, return_exceptions=True)
        messages = " ".join(str(record.get("message", "")) for record in stream.statuses())
    assert "Too many open files" not in messages
    # The port itself never ran out either: none of the 150 was cut without its answer.
    assert all(isinstance(a.result(), bytes) for a in answers)
    assert "Too many open files" not in stream.stderr.read_text()


async def test_a_recording_stream_shows_its_recorder_in_stats_and_metrics(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    from kitefan.recording import Recording

    env = environment(runtime_dir)
    config = config_for(simulator, tmp_path, liveness_timeout_s=60.0)
    path = tmp_path / "day.kfr"
    args = ("--record", str(path), "--metrics", "127.0.0.1:0")
    async with running_stream(config, env, tmp_path, *args) as stream:
        async with await stream.client() as client:
            url = (await client.hello())["metrics"]
            assert url is not None
        await until(lambda: every_key_ticking(stream))
        simulator.set_silent(True)

        async def everything_on_disk() -> bool:
            # every tick the feed read is recorded, and every chunk of them written whole
            document = await stream.stats()
            record = document["record"]
            if record["ticks"] != document["totals"]["ticks"] or not path.exists():
                return False
            return bool(sum(len(b) for b in Recording(path).ticks()) == record["ticks"])

        await until(everything_on_disk)
        text = await scrape(url)
        code, out, err = await kitefan(
            "stats", "--config", str(config), "--format", "json", env=env
        )
        # Into a pipe, with no COLUMNS: lines whole, however long (the recording's path makes
        # its line longer than a terminal); COLUMNS still sets a width.
        unset = {k: v for k, v in env.items() if k != "COLUMNS"}
        view_code, view, view_err = await kitefan("stats", "--config", str(config), env=unset)
        narrow_code, narrow, narrow_err = await kitefan(
            "stats", "--config", str(config), env={**unset, "COLUMNS": "80"}
        )
    assert (code, err, view_code, view_err, narrow_code, narrow_err) == (0, "", 0, "", 0, "")
    record = json.loads(out)["record"]
    recording = Recording(path)
    frames = sum(1 for _ in recording.ticks())
    assert record == {
        "path": str(path),
        "files": 1,
        "chunks": recording.report.chunks,
        "bytes_written": path.stat().st_size,
        "frames": frames,
        "ticks": record["ticks"],
        "events": record["events"],
        "dropped_ticks": 0,
        "dropped_events": 0,
        "write_errors": 0,
        "last_error": "",
    }
    assert record["ticks"] > 0 and record["events"] > 0
    got = {
        (sample.name, tuple(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("kitefan_record_")
    }
    label = (("path", str(path)),)
    assert got == {
        ("kitefan_record_ticks_total", label): record["ticks"],
        ("kitefan_record_frames_total", label): frames,
        ("kitefan_record_bytes_total", label): record["bytes_written"],
        ("kitefan_record_chunks_total", label): record["chunks"],
        ("kitefan_record_dropped_ticks_total", label): 0,
        ("kitefan_record_dropped_events_total", label): 0,
        ("kitefan_record_write_errors_total", label): 0,
    }
    line = (
        f"recording to {path}: {record['ticks']:,} ticks in {frames:,} frames, "
        f"{record['bytes_written'] / 1000:,.1f} kB in {record['chunks']:,} chunks, 0 ticks dropped"
    )
    assert line in [row.strip() for row in view.splitlines()]
    assert line not in [row.strip() for row in narrow.splitlines()]
    assert line in " ".join(narrow.split())
    # The one-table layout of a wide screen, and the two tables of 80 columns.
    assert ["traffic"] not in [row.split() for row in view.splitlines()]
    assert ["traffic"] in [row.split() for row in narrow.splitlines()]
