"""``kitefan stream --record`` and ``kitefan tail --record`` for real: the recording reads back
as exactly what the stream wrote; a SIGKILL loses at most about a second; a file that stops
growing (a full disk) is one warning, counted drops, and a file that still reads whole;
``kitefan record info`` on it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import processes
import pytest
from redisserver import running_redis
from streams import eventually

from kitefan.events import StatusEvent, TickBatch
from kitefan.recording import Recording
from kitefan.render.records import encode_jsonl

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}


async def kitefan(*args: str, within: float = 60.0) -> tuple[int, str, str]:
    return await processes.run(*processes.kitefan(*args), cwd=ROOT, env=ENV, within=within)


async def test_the_recording_reads_back_as_exactly_what_the_stream_wrote(tmp_path: Path) -> None:
    path = tmp_path / "day.kfr"
    code, streamed, err = await kitefan(
        "stream", "--demo", "--format", "jsonl", "--duration", "3", "--record", str(path)
    )
    assert code == 0, err
    recording = Recording(path)
    events = list(recording.events())
    ticks = sum(len(e) for e in events if isinstance(e, TickBatch))
    assert ticks > 100
    assert any(isinstance(e, StatusEvent) for e in events)
    # Every frame and event, in order, renders as the very lines the stream printed.
    assert encode_jsonl(events, recording.name_of).decode() == streamed
    assert recording.report.chunks >= 3  # sealed every half second
    assert (recording.report.skipped_chunks, recording.report.truncated) == (0, [])
    size = path.stat().st_size
    assert err.rstrip("\n").endswith(
        f"; recorded {ticks:,} ticks to {path} ({size / 1000:,.1f} kB in "
        f"{recording.report.chunks} chunks, 0 ticks dropped)"
    )

    code, shown, info_err = await kitefan("record", "info", str(path), "--format", "json")
    assert code == 0, info_err
    info = json.loads(shown)
    assert info["ticks"] == ticks
    assert info["frames"] == sum(isinstance(e, TickBatch) for e in events)
    assert info["bytes"] == size
    assert sorted(info["keys"]) == ["alpha", "bravo", "charlie"]
    assert info["symbols"] == info["named_symbols"] == 64
    assert (info["skipped_chunks"], info["truncated"]) == (0, [])
    assert info["bytes_per_tick"] == round(size / ticks, 2)


async def test_a_second_stream_appends_and_a_directory_gets_the_days_file(tmp_path: Path) -> None:
    for _ in range(2):
        code, _, err = await kitefan(
            "stream", "--demo", "--format", "none", "--duration", "1.5", "--record", str(tmp_path)
        )
        assert code == 0, err
    (day,) = list(tmp_path.iterdir())  # noqa: ASYNC240 - a test's temporary directory
    assert day.name == time.strftime("%Y-%m-%d", time.gmtime(time.time() + 19800)) + ".kfr"
    recording = Recording(tmp_path)
    opened = [
        e
        for e in recording.events()
        if isinstance(e, StatusEvent)
        and (e.key, e.connection, e.state) == ("alpha", 0, "connected")
    ]
    assert len(recording.report.headers) == 1  # one file, appended to
    assert len(opened) == 2  # by two runs
    assert (recording.report.skipped_chunks, recording.report.truncated) == (0, [])


async def test_a_sigkill_loses_at_most_about_the_last_second(tmp_path: Path) -> None:
    path = tmp_path / "killed.kfr"
    argv = processes.kitefan("stream", "--demo", "--format", "none", "--record", str(path))
    async with processes.started(*argv, cwd=ROOT, env=ENV) as command:

        def chunks() -> int:
            if not path.exists():
                return 0
            return sum(1 for _ in Recording(path).chunks())

        await eventually(lambda: chunks() >= 4)
        killed_at = time.time()
        command.kill()
        await command.wait()
    recording = Recording(path)
    last = max(e.received_wall for e in recording.ticks())
    assert killed_at - last < 1.0, f"the last recorded frame came {killed_at - last:.2f} s before"
    assert recording.report.skipped_chunks == 0


async def test_a_full_disk_is_one_warning_counted_drops_and_a_file_that_reads_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "full.kfr"
    # The file may not grow past 5 kB: the write that would is refused (EFBIG), as on a full disk.
    argv = [
        "prlimit",
        "--fsize=5000",
        *processes.kitefan(
            "stream", "--demo", "--format", "none", "--duration", "3", "--record", str(path)
        ),
    ]
    code, _, err = await processes.run(*argv, cwd=ROOT, env=ENV)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: cannot write the recording {path} (File too large): dropping and counting "
        "ticks while retrying; the feed goes on"
    ]
    recording = Recording(path)
    recorded = sum(len(b) for b in recording.ticks())
    assert (recording.report.skipped_chunks, recording.report.truncated) == (0, [])
    summary = err.splitlines()[-1]
    received = int(summary.split(" ticks from ")[0].rsplit(" ", 1)[1].replace(",", ""))
    dropped = int(summary.split(" ticks dropped)")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert dropped > 0
    assert f"; recorded {recorded:,} ticks to {path}" in summary
    assert recorded + dropped == received


async def test_a_path_that_cannot_be_written_fails_before_connecting(tmp_path: Path) -> None:
    code, out, err = await kitefan(
        "stream", "--demo", "--format", "none", "--record", str(tmp_path / "no" / "such.kfr")
    )
    assert (code, out) == (1, "")
    assert err == (
        f"error: cannot write the recording {tmp_path / 'no' / 'such.kfr'}: "
        "No such file or directory\n"
    )
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    code, _, err = await kitefan("stream", "--demo", "--format", "none", "--record", str(other))
    assert code == 1
    assert err == (
        f"error: {other} exists and is not a kitefan recording (not a kitefan recording (it does "
        "not start with its magic)): give a new file or a directory\n"
    )
    assert other.read_text() == "my notes\n"


async def test_tail_records_what_it_reads_from_redis(tmp_path: Path) -> None:
    path = tmp_path / "tail.kfr"
    async with running_redis() as redis:
        code, streamed, err = await kitefan(
            "stream", "--demo", "--format", "jsonl", "--duration", "2", "--publish", redis.url
        )
        assert code == 0, err
        code, _, tail_err = await kitefan(
            "tail",
            redis.url,
            "--from",
            "start",
            "--format",
            "jsonl",
            "--duration",
            "1.5",
            "--record",
            str(path),
        )
    assert code == 0, tail_err
    recording = Recording(path)
    events = list(recording.events())
    ticks = sum(len(e) for e in events if isinstance(e, TickBatch))
    assert f"; recorded {ticks:,} ticks to {path}" in tail_err
    # The frames as published, with the publisher's receive times (to the microsecond).
    tick_lines = [line for line in streamed.splitlines(keepends=True) if '"type":"tick"' in line]
    batches = [e for e in events if isinstance(e, TickBatch)]
    assert encode_jsonl(batches, recording.name_of).decode() == "".join(tick_lines)
    (header,) = recording.report.headers
    assert header[1].metadata["source"] == f"tail {redis.url} kitefan:frames"


async def test_the_configs_record_path_records_and_record_overrides_it(
    tmp_path: Path, runtime_dir: Path
) -> None:
    from streams import KEYS, account, environment, nse, write_config

    from kitefan.simulator import Simulator

    env = environment(runtime_dir)
    async with Simulator([account(k) for k in KEYS], seed=3, rate=20.0) as sim:
        config = write_config(tmp_path / "kitefan.toml", sim.url, quote=nse(6))
        with config.open("a") as handle:
            handle.write('[record]\npath = "ticks.kfr"\n')  # relative to the config's directory
        configured, given = tmp_path / "ticks.kfr", tmp_path / "given.kfr"
        argv = ("stream", "--config", str(config), "--format", "none", "--duration", "1.5")
        code, _, err = await processes.run(*processes.kitefan(*argv), cwd=ROOT, env=env, within=60)
        assert code == 0, err
        recorded = sum(len(b) for b in Recording(configured).ticks())
        assert f"; recorded {recorded:,} ticks to {configured} (" in err.splitlines()[-1]
        before = configured.stat().st_size
        code, _, err = await processes.run(
            *processes.kitefan(*argv, "--record", str(given)), cwd=ROOT, env=env, within=60
        )
        assert code == 0, err
    assert f" ticks to {given} (" in err.splitlines()[-1]
    assert sum(len(b) for b in Recording(given).ticks()) > 0
    assert configured.stat().st_size == before  # --record took its place


async def test_record_info_reports_the_gaps_of_a_simulator_that_drops_connections(
    tmp_path: Path, runtime_dir: Path
) -> None:
    """``kitefan simulate --drop-every 1`` under a recording stream: every reconnect the stream
    reported is a gap of ``kitefan record info``, with its connection, span, symbols and reason."""
    import asyncio
    import re
    import signal
    from datetime import datetime

    from streams import environment

    env = environment(runtime_dir)
    config = tmp_path / "kitefan.toml"
    keys = (
        '[[keys]]\nid = "one"\napi_key = "one-api-key"\naccess_token = "one-token"\n'
        "[symbols]\nquote = [408065, 884737, 256265]\nfull = [738561]\n"
    )
    config.write_text(keys)  # simulate reads the keys only
    config.chmod(0o600)
    path = tmp_path / "drops.kfr"
    argv = processes.kitefan(
        "simulate", "--config", str(config), "--port", "0", "--drop-every", "1"
    )
    async with processes.started(*argv, cwd=ROOT, env=env) as simulator:
        assert simulator.stdout is not None
        async with asyncio.timeout(20):
            first = (await simulator.stdout.readline()).decode()
        url = re.search(r"ws://127\.0\.0\.1:\d+", first)
        assert url is not None, first
        config.write_text(f'url = "{url.group()}"\nmode = "quote"\n' + keys)
        code, _, err = await processes.run(
            *processes.kitefan(
                "stream", "--config", str(config), "--format", "none", "--duration", "4",
                "--record", str(path),
            ),
            cwd=ROOT,
            env=env,
            within=60,
        )  # fmt: skip
        simulator.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            await simulator.communicate()
    assert code == 0, err
    # What the stream said, as each connection came back: its gap, in the order they came back.
    back = re.findall(
        r"warning: key one, connection (\d): back after ([\d.]+) s; its (\d) symbols? have a gap",
        err,
    )
    reconnects = int(re.search(r", (\d+) reconnects, ", err).group(1))  # type: ignore[union-attr]
    assert len(back) == reconnects >= 2  # a drop a second, for 4 s

    code, shown, info_err = await kitefan("record", "info", str(path), "--format", "json")
    assert code == 0, info_err
    info = json.loads(shown)
    assert info["reconnects"] == reconnects
    carried = {0: 2, 1: 1, 2: 1}  # round-robin over three connections: 2, 1 and 1 symbols
    assert [(g["key"], g["connection"], g["symbols"], g["reason"]) for g in info["gaps"]] == [
        ("one", int(conn), carried[int(conn)], "dropped without a close frame")
        for conn, _, _ in back
    ]
    assert [int(symbols) for _, _, symbols in back] == [g["symbols"] for g in info["gaps"]]
    for gap, (_, seconds, _) in zip(info["gaps"], back, strict=True):
        start, end = (datetime.fromisoformat(gap[k]) for k in ("start", "end"))
        # the times are cut to the millisecond, the seconds rounded from the exact ones
        assert abs(gap["seconds"] - (end - start).total_seconds()) < 0.0015
        assert gap["seconds"] > 0
        assert abs(float(seconds) - gap["seconds"]) <= 0.0501  # the warning's, to 0.1 s

    code, text, info_err = await kitefan("record", "info", str(path))
    assert code == 0, info_err
    lines = text.splitlines()
    at = lines.index(f"gaps       {reconnects} reconnects")
    for line, gap in zip(lines[at + 1 : at + 1 + reconnects], info["gaps"], strict=True):
        lost, end = (datetime.fromisoformat(gap[k]).strftime("%H:%M:%S.%f")[:-3] for k in
                     ("start", "end"))  # fmt: skip
        noun = "symbol" if gap["symbols"] == 1 else "symbols"
        # The text rounds the exact seconds to 0.1, the JSON to 0.001: from the JSON's, a gap
        # of 1.0496 s (1.050) could be either.
        shown = re.fullmatch(r"(.*  )(\d+\.\d) s(  .*)", line)
        assert shown is not None, line
        assert shown[1] + shown[3] == (
            f"  one/{gap['connection']}  {lost} to {end} IST  "
            f"  {gap['symbols']} {noun}  dropped without a close frame"
        )
        assert abs(float(shown[2]) - gap["seconds"]) <= 0.0501
    assert lines[at + 1 + reconnects].startswith("on disk ")
