"""Live ``kitefan distribute`` and SIGHUP as users run them: the stream in its own process, the
command in another, the simulator (in the test's process) counting every request it receives.

Issue 5's "Done when": adding 500 symbols and removing 500 in the config, then ``kitefan
distribute``, changes exactly those on the running stream (the simulator counts the subscribe,
unsubscribe and mode messages), and the untouched symbols show no gap. A token rotated in its
file brings a key back from ``auth_failed``; SIGHUP does what ``distribute`` does.
"""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from polling import eventually, until
from simulators import KEYS, nse, sim_until
from streams import (
    SENTINEL,
    StreamProcess,
    account,
    environment,
    kitefan,
    running_stream,
    simulator_fixture,
    write_config,
)

from kitefan.models import Mode
from kitefan.simulator import RequestCounts, Simulator

pytestmark = pytest.mark.integration

BATCH = 200


simulator = simulator_fixture(seed=5, rate=2.0)


def subscribed(sim: Simulator, key_id: str | None = None) -> set[int]:
    api_key = account(key_id).api_key if key_id else None
    return {t for conn in sim.connections(api_key) for t in conn.subscriptions}


def delta(after: RequestCounts, before: RequestCounts) -> dict[str, int]:
    return {
        name: getattr(after, name) - getattr(before, name)
        for name in (
            "subscribe_messages",
            "subscribe_tokens",
            "unsubscribe_messages",
            "unsubscribe_tokens",
            "mode_messages",
            "mode_tokens",
            "invalid_messages",
            "limit_errors",
        )
    }


async def ticked_after(
    stream: StreamProcess, marker: Callable[[dict[str, Any]], bool], tokens: set[int]
) -> None:
    """Read the stream's output until every token ticks after the first record ``marker``
    matches (the records come in the order the stream handled them)."""
    missing = set(tokens)
    seen_marker = False

    async def done() -> bool:
        nonlocal seen_marker
        for record in stream.read_new():
            if not seen_marker:
                seen_marker = marker(record)
            elif record["type"] == "tick":
                missing.discard(record["instrument_token"])
        return seen_marker and not missing

    await until(done)


def connection_reconnects(document: dict[str, Any]) -> dict[tuple[str, int], int]:
    return {
        (key["id"], conn["index"]): conn["reconnects"]
        for key in document["keys"]
        for conn in key["connections"]
    }


async def test_adding_500_and_removing_500_changes_exactly_those_and_nothing_else(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    tokens = nse(3000)
    tuning = {"subscribe_batch": BATCH}
    config = write_config(tmp_path / "kitefan.toml", simulator.url, quote=tokens, tuning=tuning)
    async with running_stream(config, env, tmp_path) as stream:
        await sim_until(simulator, lambda: subscribed(simulator) == set(tokens), within=20.0)

        async def all_ticking() -> bool:
            document = await stream.stats()
            return document["totals"]["symbols"] == 3000 and all(
                key["never_ticked"] == 0 for key in document["keys"]
            )

        await until(all_ticking)
        views = {view.id: view for view in simulator.connections()}
        assert len(views) == 9
        before = {i: (v.subscriptions, v.requests.copy()) for i, v in views.items()}
        total_before = simulator.requests.copy()
        reconnects = connection_reconnects(await stream.stats())

        removed = tokens[::6][:500]  # from every connection
        added = nse(500, start=20_000)
        kept = [t for t in tokens if t not in set(removed)]
        write_config(config, simulator.url, quote=kept + added, tuning=tuning)

        # --dry-run against the running stream: the change, and nothing sent.
        code, out, err = await kitefan(
            "distribute", "--dry-run", "--config", str(config), "--format", "json", env=env
        )
        assert (code, err) == (0, "")
        preview = json.loads(out)
        assert (preview["applied"], preview["subscribe"], preview["unsubscribe"]) == (
            False,
            500,
            500,
        )
        assert (preview["mode_changes"], preview["moved"], preview["tokens"]) == (0, [], [])
        assert {s["instrument_token"] for s in preview["added"]} == set(added)
        assert {s["instrument_token"] for s in preview["removed"]} == set(removed)
        assert simulator.requests == total_before
        code, out, err = await kitefan("distribute", "--dry-run", "--config", str(config), env=env)
        assert (code, err) == (0, "")
        assert out.startswith(
            f"dry run against the running stream of {config.resolve()} "
            f"(pid {stream.process.pid}): nothing is changed\n"
            "500 added, 500 removed, 0 moved, 0 mode changes (500 subscribes, 500 unsubscribes)\n"
        )
        assert simulator.requests == total_before

        # Applied: exactly those subscribes, unsubscribes and mode messages, on the same sockets.
        code, out, err = await kitefan("distribute", "--config", str(config), env=env)
        assert (code, err) == (0, "")
        assert out.startswith(
            f"applied {config.resolve()} to its running stream (pid {stream.process.pid})\n"
            "500 added, 500 removed, 0 moved, 0 mode changes (500 subscribes, 500 unsubscribes)\n"
        )
        await sim_until(
            simulator,
            lambda: (
                subscribed(simulator) == set(kept) | set(added)
                and simulator.requests.mode_tokens - total_before.mode_tokens == 500
            ),
            within=20.0,
        )
        assert {view.id for view in simulator.connections()} == set(before)
        for view in simulator.connections():
            subscriptions, requests = before[view.id]
            now = view.subscriptions
            new_here = [t for t in now if t not in subscriptions]
            gone_here = [t for t in subscriptions if t not in now]
            assert set(new_here) <= set(added)
            assert set(gone_here) <= set(removed)
            # Every kept symbol is where it was, in its mode.
            assert {t: m for t, m in now.items() if t not in set(added)} == {
                t: m for t, m in subscriptions.items() if t not in set(removed)
            }
            assert set(now.values()) == {Mode.QUOTE}
            assert delta(view.requests, requests) == {
                "subscribe_messages": math.ceil(len(new_here) / BATCH),
                "subscribe_tokens": len(new_here),
                "unsubscribe_messages": math.ceil(len(gone_here) / BATCH),
                "unsubscribe_tokens": len(gone_here),
                "mode_messages": math.ceil(len(new_here) / BATCH),
                "mode_tokens": len(new_here),
                "invalid_messages": 0,
                "limit_errors": 0,
            }
        totals = delta(simulator.requests, total_before)
        assert (totals["subscribe_tokens"], totals["unsubscribe_tokens"]) == (500, 500)
        assert totals["mode_tokens"] == 500

        # No gap for the untouched symbols: they tick on after the change, no connection was
        # lost, no gap was reported.
        await ticked_after(
            stream,
            lambda r: r["type"] == "status" and r["state"] == "config_applied",
            set(kept) | set(added),
        )
        assert connection_reconnects(await stream.stats()) == reconnects
        statuses = stream.statuses()
        assert not [s for s in statuses if "gap" in s or s.get("state") == "reconnecting"]
        applied = [s for s in statuses if s.get("state") == "config_applied"]
        assert [s["message"] for s in applied] == [
            "kitefan distribute: 500 added, 500 removed, 0 moved, 0 mode changes "
            "(500 subscribes, 500 unsubscribes)"
        ]


async def test_a_rotated_token_brings_a_key_back_and_sighup_applies_like_distribute(
    simulator: Simulator, tmp_path: Path, runtime_dir: Path
) -> None:
    env = environment(runtime_dir)
    tokens = nse(90)
    token_file = tmp_path / "bravo.token"
    token_file.write_text(f"{SENTINEL}-token-bravo-yesterday\n")
    token_file.chmod(0o600)
    files = {"bravo": "bravo.token"}
    config = write_config(tmp_path / "kitefan.toml", simulator.url, quote=tokens, token_files=files)
    async with running_stream(config, env, tmp_path) as stream:
        # Bravo's token is refused: its symbols fail over to the other keys, and keep ticking.
        async def states(wanted: dict[str, str]) -> bool:
            document = await stream.stats()
            return {k["id"]: k["state"] for k in document["keys"]} == wanted and all(
                k["never_ticked"] == 0 for k in document["keys"]
            )

        failed = {"alpha": "connected", "bravo": "auth_failed", "charlie": "connected"}
        await until(lambda: states(failed))
        await sim_until(simulator, lambda: subscribed(simulator) == set(tokens), within=20.0)
        assert not subscribed(simulator, "bravo")
        refusals = simulator.refusals().get(403, 0)

        # A fresh token in its file, then `kitefan distribute`: bravo is back, with its symbols.
        token_file.write_text(f"{account('bravo').access_token}\n")
        code, out, err = await kitefan("distribute", "--config", str(config), env=env)
        assert (code, err) == (0, "")
        assert "; new access token for bravo\n" in out
        assert out.endswith("new access token for: bravo\n")
        await until(lambda: states(dict.fromkeys(KEYS, "connected")))
        await sim_until(simulator, lambda: len(subscribed(simulator, "bravo")) == 30, within=20.0)
        assert subscribed(simulator) == set(tokens)
        assert simulator.refusals().get(403, 0) == refusals  # retried once, and accepted
        back = [s for s in stream.statuses() if s.get("key") == "bravo"]
        assert back[-1]["state"] == "connected"
        assert "token accepted again" in [s["message"] for s in back]

        # SIGHUP: the same as distribute. An edit adds 30 symbols in full mode ...
        added = nse(30, start=7000)
        write_config(config, simulator.url, quote=tokens, full=added, token_files=files)
        stream.process.send_signal(signal.SIGHUP)
        await sim_until(
            simulator,
            lambda: (
                all(
                    conn.subscriptions.get(t) is Mode.FULL
                    for conn in simulator.connections()
                    for t in added
                    if t in conn.subscriptions
                )
                and subscribed(simulator) == set(tokens) | set(added)
            ),
            within=20.0,
        )

        def applied() -> list[str]:
            return [s["message"] for s in stream.statuses() if s.get("state") == "config_applied"]

        await eventually(lambda: len(applied()) == 2, every=0.05)
        assert applied()[-1] == (
            "SIGHUP: 30 added, 0 removed, 0 moved, 0 mode changes (30 subscribes, 0 unsubscribes)"
        )
        # ... and a broken edit is refused, said so, and changes nothing.
        config.write_text(config.read_text() + "[broken\n")
        stream.process.send_signal(signal.SIGHUP)

        def rejected() -> list[str]:
            return [s["message"] for s in stream.statuses() if s.get("state") == "config_rejected"]

        await eventually(lambda: bool(rejected()), every=0.05)
        assert rejected() == [
            f"SIGHUP: not applied: {config.resolve()}: line 18, column 8: invalid TOML: "
            "expected ']' at the end of a table declaration"
        ]
        assert subscribed(simulator) == set(tokens) | set(added)
        assert stream.process.returncode is None
        code, out, err = await kitefan("distribute", "--config", str(config), env=env)
        assert (code, out) == (3, "")
        assert err.startswith(f"error: {config.resolve()}: line 18, column 8: invalid TOML")
    assert SENTINEL not in stream.stdout.read_text() + stream.stderr.read_text()
