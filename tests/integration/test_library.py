"""The library as a quant developer meets it: the front door, the simulator from a config, the
feed's figures and names, its lack of callbacks, and an unreachable server.

Against the real simulator on loopback; waits are on conditions, each under a timeout.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import socket
import sys
from dataclasses import replace

import processes
import pytest

import kitefan
import kitefan.errors
from kitefan import (
    AppConfig,
    Event,
    EventStream,
    FeedManager,
    KitefanError,
    Mode,
    Simulator,
    Tick,
    TickBatch,
    UnreachableError,
    load_config,
)
from kitefan.config import Tuning

pytestmark = pytest.mark.integration

DEMO = processes.ROOT / "configs" / "demo.toml"
FAST = Tuning(
    connect_timeout_s=2.0,
    liveness_timeout_s=2.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    close_timeout_s=1.0,
)
APOLLO = "NSE:APOLLOHOSP"  # in the demo's instruments dump, not in its config


def demo_config() -> AppConfig:
    return replace(load_config(DEMO), tuning=FAST)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def drained(stream: EventStream[TickBatch] | EventStream[Event]) -> None:
    """Read a stream to its end."""
    async for _ in stream:
        pass


# The front door ----------------------------------------------------------------------------


def test_the_front_door_names_the_library_and_every_error() -> None:
    from kitefan.config import AppConfig as ConfigAppConfig, load_config as config_load
    from kitefan.events import TickBatch as EventsTickBatch
    from kitefan.manager import FeedManager as ManagerFeedManager
    from kitefan.models import Mode as ModelsMode, Tick as ModelsTick
    from kitefan.simulator import Simulator as SimSimulator

    assert (FeedManager, load_config, AppConfig, TickBatch, Tick, Mode, Simulator) == (
        ManagerFeedManager,
        config_load,
        ConfigAppConfig,
        EventsTickBatch,
        ModelsTick,
        ModelsMode,
        SimSimulator,
    )
    for name in kitefan.errors.__all__:
        assert getattr(kitefan, name) is getattr(kitefan.errors, name), name
        assert name in kitefan.__all__
        assert issubclass(getattr(kitefan, name), KitefanError)
    assert sorted(kitefan.__all__) == sorted(dir(kitefan))
    with pytest.raises(AttributeError, match=r"^module 'kitefan' has no attribute 'Nope'$"):
        _ = kitefan.Nope


def test_import_kitefan_loads_neither_websockets_nor_the_config() -> None:
    probe = (
        "import sys, kitefan\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'kitefan', 'websockets', 'asyncio', 'tomllib', 'numpy'}))\n"
        "kitefan.FeedManager\n"
        "print('websockets' in sys.modules, 'kitefan.settings' in sys.modules)\n"
    )
    done = processes.run_sync(sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    # The compiled extension (no Python imports of its own) where it is built: scan_frame
    # counts a frame's packets in it.
    compiled = ["kitefan._records"] if importlib.util.find_spec("kitefan._records") else []
    loaded = ["kitefan", *compiled, "kitefan.codec", "kitefan.errors", "kitefan.events"]
    assert done.stdout.splitlines() == [
        str([*loaded, "kitefan.models", "kitefan.packets"]),
        "True True",
    ]


# The simulator from a config, names, figures -----------------------------------------------


async def test_the_simulator_takes_a_configs_keys_and_a_feed_streams_it_by_name() -> None:
    config = demo_config()
    async with (
        Simulator.from_config(config, port=0, seed=2, rate=20.0, heartbeat_interval_s=0.2) as sim,
        FeedManager(replace(config, url=sim.url)) as feed,
    ):
        ticks = feed.ticks()
        async with asyncio.timeout(15):
            diff = feed.subscribe([APOLLO], mode="full")
            assert [s.name for c in diff.changes for s in c.subscribe] == [APOLLO]
            token = next(s.token for c in diff.changes for s in c.subscribe)
            async for batch in ticks:
                if any(t.instrument_token == token and t.mode is Mode.FULL for t in batch.ticks):
                    break
        # Every key connected, each labelled by its config id.
        assert {view.label for view in sim.connections()} == {"alpha", "bravo", "charlie"}
        assert sim.refusals() == {}


def test_the_simulator_needs_keys() -> None:
    config = replace(demo_config(), keys=())
    with pytest.raises(ValueError, match=r"^the config has no \[\[keys\]\]: the simulator needs"):
        Simulator.from_config(config)


async def test_the_first_stats_already_have_a_rate_and_keys_are_named_as_in_the_plan() -> None:
    config = demo_config()
    async with (
        Simulator.from_config(config, port=0, rate=20.0, heartbeat_interval_s=0.2) as sim,
        FeedManager(replace(config, url=sim.url)) as feed,
    ):
        received = 0
        async with asyncio.timeout(15):
            async for batch in feed.ticks():
                received += len(batch)
                if received >= 200:
                    break
        first = feed.stats()  # never asked before: the feed sampled its counts itself
        assert first.totals.ticks_per_s > 0
        assert [k.key_id for k in first.keys] == [k.key_id for k in feed.plan.keys]
        assert [k.key_id for k in first.keys] == ["alpha", "bravo", "charlie"]
        assert first.as_dict()["keys"][0]["id"] == "alpha"  # the JSON keeps its field name
        with pytest.warns(DeprecationWarning, match=r"^KeyStats.id is deprecated: use KeyStats"):
            assert first.keys[0].id == "alpha"


# No callbacks ------------------------------------------------------------------------------


async def test_setting_an_official_callback_on_the_feed_raises_and_ticks_still_flow() -> None:
    config = demo_config()
    async with (
        Simulator.from_config(config, port=0, rate=20.0, heartbeat_interval_s=0.2) as sim,
        FeedManager(replace(config, url=sim.url)) as feed,
    ):
        with pytest.raises(AttributeError) as raised:
            feed.on_ticks = lambda ws, ticks: None
        assert str(raised.value) == (
            "FeedManager has no on_ticks callback: iterate feed.ticks() or feed.events() "
            "instead (kitefan.compat.KiteTicker takes the official client's callbacks)"
        )
        assert not hasattr(feed, "on_connect")
        hooks = {"on_state", "on_refused", "on_opened", "on_order", "on_server_text"}
        assert hooks & set(dir(feed)) == set()
        assert "handing_over" not in dir(feed)
        async with asyncio.timeout(15), feed.ticks() as ticks:
            batch = await anext(ticks)
        assert len(batch) > 0


# An unreachable server ---------------------------------------------------------------------


async def test_no_connection_within_the_deadline_ends_every_stream_with_a_typed_error() -> None:
    url = f"ws://127.0.0.1:{closed_port()}"
    config = replace(demo_config(), url=url)
    async with FeedManager(config, connect_deadline_s=0.5) as feed:
        ticks, events = feed.ticks(), feed.events()
        with pytest.raises(UnreachableError) as raised:
            await asyncio.wait_for(drained(ticks), 10)
        error = raised.value
        assert re.match(r"(alpha|bravo|charlie)#[012] connecting: attempt failed: ", error.last)
        assert str(error) == (
            f"no connection to {url} opened in 0.5 s (last: {error.last}); "
            "check the url, the network and that the server is up"
        )
        with pytest.raises(UnreachableError):  # events() ends too, after its status events
            await asyncio.wait_for(drained(events), 5)
        with pytest.raises(UnreachableError):  # and a stream asked for afterwards at once
            await anext(feed.ticks())


async def test_a_feed_that_connected_is_not_ended_by_the_deadline() -> None:
    config = demo_config()
    async with (
        Simulator.from_config(config, port=0, rate=20.0, heartbeat_interval_s=0.2) as sim,
        FeedManager(replace(config, url=sim.url), connect_deadline_s=0.3) as feed,
    ):
        ticks = feed.ticks()
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(15):
            async for _ in ticks:
                if loop.time() - started > 0.6:  # twice the deadline, still streaming
                    break
        await sim.drop_connections()
        async with asyncio.timeout(15):
            await anext(ticks)  # a reconnect is not a first connection: no deadline


def test_the_deadline_must_be_positive_or_none() -> None:
    with pytest.raises(ValueError, match=r"^connect_deadline_s must be more than 0, not 0$"):
        FeedManager(demo_config(), connect_deadline_s=0)
