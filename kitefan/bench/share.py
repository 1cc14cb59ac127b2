"""A ``--share`` takeover: how long the keys of a process killed with SIGKILL stream nowhere.

One ``redis-server`` (loopback, a free port, no persistence) and one simulator (in this process,
so that it counts every key's connections) for the whole run: four keys, two symbols each (two
connections per key by the plan). Each round starts three ``kitefan stream --share --format
none`` processes of that config, waits until every key is held and streams, SIGKILLs the
process holding the first key, and measures from the kill until every key it held has its
planned connections open again with its symbols subscribed, at the simulator, from the others
(ticks follow within one market step, 50 ms). The processes are then stopped (SIGTERM: they
release their leases) before the next round.

The lease time is the tuning knob ``share_lease_s`` (``--seconds``; default 10 s, the default of
the knob), ``close_timeout_s`` is 2 s or a quarter of the lease, whichever is shorter. Besides the
takeover: the handshakes refused with 429 and the most connections of one key open at once,
over the whole run (they show whether two processes ever held one key).

Owns: the share benchmark. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitefan.bench import Figure
from kitefan.bench.fanout import RedisProcess
from kitefan.bench.harness import BenchmarkError, _env
from kitefan.lease import group_id, lease_key

__all__ = ["ShareResult", "run_share_benchmark"]

#: The target of the share issue: the others take a dead process's keys within this.
TARGET_TAKEOVER_S = 15.0
KEYS = ("k1", "k2", "k3", "k4")
PROCESSES = 3
PLANNED_CONNECTIONS = 2


@dataclass(frozen=True)
class ShareResult:
    """Every round's takeover time, and what the simulator counted."""

    lease_s: float
    takeovers_s: list[float]
    refused_429: int
    peak_connections: int

    def figures(self) -> list[Figure]:
        median = statistics.median(self.takeovers_s) if self.takeovers_s else None
        n = len(self.takeovers_s)
        spread = (
            f"{min(self.takeovers_s):.1f}-{max(self.takeovers_s):.1f} s" if self.takeovers_s else ""
        )
        return [
            Figure(
                "share",
                "share takeover after SIGKILL",
                median,
                "s",
                target=f"<= {TARGET_TAKEOVER_S:g}",
                ok=median is not None and max(self.takeovers_s) <= TARGET_TAKEOVER_S,
                samples=n,
                note=f"lease {self.lease_s:g} s, {PROCESSES} processes, 4 keys; kill to "
                f"resubscribed at the simulator; range {spread}",
            ),
            Figure(
                "share",
                "share handshakes refused with 429",
                float(self.refused_429),
                "refusals",
                target="0",
                ok=self.refused_429 == 0,
                samples=n,
            ),
            Figure(
                "share",
                "share most connections of one key at once",
                float(self.peak_connections),
                "connections",
                target=f"<= {PLANNED_CONNECTIONS}",
                ok=self.peak_connections <= PLANNED_CONNECTIONS,
                samples=n,
                note="the plan gives each key 2: never two processes on one key",
            ),
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "lease_s": self.lease_s,
            "takeovers_s": self.takeovers_s,
            "refused_429": self.refused_429,
            "peak_connections": self.peak_connections,
        }


def run_share_benchmark(
    rounds: int = 3, lease_s: float = 10.0, progress: Callable[[str], None] | None = None
) -> ShareResult:
    """Kill the holder of a key ``rounds`` times and time the takeover.

    Raises:
        BenchmarkError: Redis, redis-py or a stream failed.
    """
    import importlib.util

    if importlib.util.find_spec("redis") is None:
        raise BenchmarkError("the share benchmark needs redis-py: pip install -e '.[redis]'")
    return asyncio.run(_run(rounds, lease_s, progress))


def _account_key(key_id: str) -> str:
    return f"bench-share-api-key-{key_id}"


def _write_config(path: Path, url: str, lease_s: float) -> None:
    tokens = [((2000 + i) << 8) | 1 for i in range(2 * len(KEYS))]
    lines = [f'url = "{url}"', 'mode = "quote"', "[tuning]"]
    lines += [f"share_lease_s = {lease_s}", f"close_timeout_s = {min(2.0, lease_s / 4)}"]
    lines += ["backoff_initial_s = 0.05", "backoff_max_s = 0.5"]
    for key_id in KEYS:
        lines += ["[[keys]]", f'id = "{key_id}"', f'api_key = "{_account_key(key_id)}"']
        lines.append(f'access_token = "bench-share-token-{key_id}"')
    lines += ["[symbols]", f"quote = {tokens}"]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


async def _run(rounds: int, lease_s: float, progress: Callable[[str], None] | None) -> ShareResult:
    from redis.asyncio import Redis

    from kitefan.simulator import Account, Simulator

    accounts = [Account(_account_key(k), f"bench-share-token-{k}", label=k) for k in KEYS]
    takeovers: list[float] = []
    with (
        RedisProcess() as redis,
        tempfile.TemporaryDirectory(prefix="kfs-", dir="/tmp") as scratch,
    ):
        client = Redis(host="127.0.0.1", port=redis.port)
        async with Simulator(accounts, port=0, seed=5, rate=20.0, heartbeat_interval_s=0.5) as sim:
            config = Path(scratch) / "share.toml"
            _write_config(config, sim.url, lease_s)
            group = group_id(sim.url, [(k, _account_key(k)) for k in KEYS])
            env = _env()
            env["KITEFAN_RUNTIME_DIR"] = scratch
            url = f"redis://127.0.0.1:{redis.port}/0"
            try:
                for r in range(rounds):
                    took = await _round(sim, client, group, config, url, env, lease_s)
                    takeovers.append(took)
                    if progress is not None:
                        progress(
                            f"share round {r + 1}/{rounds}: takeover after SIGKILL {took:.2f} s"
                        )
            finally:
                await client.aclose()
            peak = max(sim.peak_connections(_account_key(k)) for k in KEYS)
            refused = sim.refusals().get(429, 0)
    return ShareResult(lease_s, takeovers, refused, peak)


def _streaming(sim: Any, keys: list[str]) -> bool:
    for key_id in keys:
        conns = sim.connections(_account_key(key_id))
        if len(conns) != PLANNED_CONNECTIONS or any(len(c.subscriptions) != 1 for c in conns):
            return False
    return True


async def _holders(client: Any, group: str) -> list[str | None]:
    values = await client.mget([lease_key(group, k) for k in KEYS])
    return [None if v is None else v.decode() for v in values]


async def _round(
    sim: Any,
    client: Any,
    group: str,
    config: Path,
    url: str,
    env: dict[str, str],
    lease_s: float,
) -> float:
    argv = [sys.executable, "-m", "kitefan", "stream", "--config", str(config), "--share"]
    argv += ["--publish", url, "--format", "none"]
    processes = [
        await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        for _ in range(PROCESSES)
    ]
    try:
        settle_by = time.monotonic() + 30 + 3 * lease_s
        while True:
            held = await _holders(client, group)
            if None not in held and len(set(held)) == PROCESSES and _streaming(sim, list(KEYS)):
                break
            if time.monotonic() > settle_by or any(p.returncode is not None for p in processes):
                raise BenchmarkError("the --share streams did not settle")
            await asyncio.sleep(0.05)
        victim_node = held[0]
        assert victim_node is not None
        victim = next(p for p in processes if victim_node.endswith(f":{p.pid}"))
        lost = [k for k, n in zip(KEYS, held, strict=True) if n == victim_node]
        killed_at = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        # The kernel closes the victim's sockets: wait for the simulator to see them gone,
        # then for the others to open them again.
        while True:
            if _streaming(sim, lost):
                conns = [c for k in lost for c in sim.connections(_account_key(k))]
                if all(c.opened_at >= time.time() - (time.monotonic() - killed_at) for c in conns):
                    return time.monotonic() - killed_at
            if time.monotonic() - killed_at > 4 * lease_s + 30:
                raise BenchmarkError("the killed stream's keys were not taken over")
            await asyncio.sleep(0.02)
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(20):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
