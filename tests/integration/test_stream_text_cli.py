"""``kitefan stream`` in its own process against server texts that would drive a terminal: the
JSON lines keep the exact text, stderr (the log, with ``--debug``) never carries a control
character, and the stream goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from polling import eventually, until
from simulators import KEYS, nse
from streams import account, environment, running_stream, simulator_fixture, write_config

from kitefan.codec import error_message, notice_message
from kitefan.simulator import Simulator

pytestmark = pytest.mark.integration

ERROR = "\x1b[2Jthe screen is cleared"
NOTICE = "\x1b]0;pwned\x07markets\r\nopen\x9b31m"


simulator = simulator_fixture(seed=5, rate=20.0)


async def every_key_ticking(stream: Any) -> bool:
    document = await stream.stats()
    return all(key["ticks"] > 0 for key in document["keys"])


async def test_server_text_is_exact_in_json_lines_and_stripped_on_stderr(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    config = write_config(tmp_path / "kitefan.toml", simulator.url, quote=nse(9))
    alpha = account("alpha").api_key
    async with running_stream(config, env, tmp_path, "--debug") as stream:
        await until(lambda: every_key_ticking(stream))
        sent = await simulator.send_text(error_message(ERROR), alpha)
        assert sent >= 1
        assert await simulator.send_text(notice_message(NOTICE), alpha) == sent

        def texts() -> list[tuple[str, str, str]]:
            return sorted(
                (r["key"], r["type"], r["message"])
                for r in stream.statuses()
                if r["type"] == "error" or r.get("state") == "message"
            )

        await eventually(lambda: len(texts()) == 2 * sent, every=0.05)
        assert texts() == [("alpha", "error", ERROR)] * sent + [("alpha", "status", NOTICE)] * sent
        # The stream goes on: every key keeps ticking.
        before = {k["id"]: k["ticks"] for k in (await stream.stats())["keys"]}

        async def ticking_on() -> bool:
            now = {k["id"]: k["ticks"] for k in (await stream.stats())["keys"]}
            return all(now[key] > before[key] for key in KEYS)

        await until(ticking_on)
        counts = {
            k["id"]: (k["server_errors"], k["decode_errors"])
            for k in (await stream.stats())["keys"]
        }
        assert counts == {"alpha": (sent, 0), "bravo": (0, 0), "charlie": (0, 0)}
    assert stream.process.returncode == 0
    raw = stream.stdout.read_bytes().decode()
    errors = stream.stderr.read_text()
    # The JSON escapes what a terminal obeys; a JSON reader gets the exact text back.
    assert not {c for c in raw if ord(c) < 0x20 and c != "\n"}
    assert "\x9b" not in raw
    assert raw.count('"message":"\\u001b[2Jthe screen is cleared"') == sent
    assert raw.count('"message":"\\u001b]0;pwned\\u0007markets\\r\\nopen\\u009b31m"') == sent
    # The log on stderr (--debug) shows the notice, without a control character.
    assert errors.count(" message: ]0;pwnedmarkets  open31m\n") == sent
    assert not {c for c in errors if ord(c) < 0x20 and c != "\n"}
    assert "\x9b" not in errors
