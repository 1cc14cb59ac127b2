"""Fan-out through Redis: simulator → ``kitefan stream --publish`` → Redis → a ``tail`` consumer,
against what users write today, in the same run.

Each round runs two pipelines in turn, each with a fresh ``redis-server`` (loopback, a free port,
no persistence) and a fresh simulator process at full rate, with the subscriptions of the
end-to-end benchmark (one key, 3 connections × 3000 tokens, two thirds full mode):

* kitefan: a publisher process (``FeedManager`` and :class:`kitefan.publish.Publisher`: one
  ``XADD`` of the frame's bytes per frame, pipelined per loop turn) and a reader process
  (:class:`kitefan.tail.RemoteFeed`, ``XREAD BLOCK`` in batches, every batch decoded:
  ``n += len(batch.ticks)``);
* the baseline: the official client (``kiteconnect`` 5.2.2 ``KiteTicker`` × 3 on one reactor)
  whose ``on_ticks`` does one ``XADD`` per tick (the tick dict as JSON) through redis-py,
  pipelined per batch, and a reader doing ``XREAD BLOCK`` in batches and ``json.loads`` of each
  entry.

Both processes of a pipeline wait for their first ticks, let ``warmup_s`` pass, then count over
``seconds``. Figures: the reader's ticks per second (what got through Redis, end to end), the CPU
seconds per 100,000 ticks of the publisher, of the reader and of ``redis-server`` (``/proc``).

Run as ``python -m kitefan.bench.fanout ROLE SPEC.json`` (ROLE: ``publish``, ``tail``,
``official-publish``, ``official-tail``), this module is one side of a pipeline.

Owns: the fan-out benchmark. Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitefan.bench import Figure
from kitefan.bench.harness import (
    BenchmarkError,
    SimulatorProcess,
    _env,
    client_config,
    client_spec,
    connection_subscriptions,
    cpu_seconds,
    full_rate_symbols,
)
from kitefan.bench.official import run_tickers, stop_tickers, tickers_for

__all__ = ["FanoutResult", "main", "run_fanout_benchmark"]

#: The targets of the Redis fan-out issue, on a 2-core machine.
TARGET_TICKS_PER_S = 200_000
TARGET_RATIO = 10.0

KITEFAN = "kitefan"
OFFICIAL = "kiteconnect on_ticks + XADD per tick"
STREAM = "bench:frames"
#: Entries the stream keeps: enough for a reader a second behind, little memory.
MAXLEN = 20_000


@dataclass(frozen=True)
class FanoutResult:
    """Every round of every pipeline: ``runs[pipeline]`` has one dict per round with
    ``ticks_per_s`` (the reader's), ``published_per_s``, ``publish_cpu_per_100k_s``,
    ``tail_cpu_per_100k_s``, ``redis_cpu_per_100k_s``, ..."""

    runs: dict[str, list[dict[str, Any]]]
    tokens: int
    seconds: float
    warmup_s: float
    skipped: dict[str, str]

    def median(self, pipeline: str, field: str) -> float | None:
        values = [r[field] for r in self.runs.get(pipeline, []) if r.get(field) is not None]
        return statistics.median(values) if values else None

    def ratio(self) -> float | None:
        pairs = zip(self.runs.get(KITEFAN, []), self.runs.get(OFFICIAL, []), strict=False)
        ratios = [a["ticks_per_s"] / b["ticks_per_s"] for a, b in pairs if b.get("ticks_per_s")]
        return statistics.median(ratios) if ratios else None

    def cpu_ratio(self) -> float | None:
        """The baseline's CPU per tick over kitefan's, all three processes, per round."""

        def total(run: dict[str, Any]) -> float | None:
            parts = [run.get(f"{side}_cpu_per_100k_s") for side in ("publish", "tail", "redis")]
            return None if None in parts else sum(p for p in parts if p is not None)

        pairs = zip(self.runs.get(KITEFAN, []), self.runs.get(OFFICIAL, []), strict=False)
        ratios = [b / a for a, b in ((total(x), total(y)) for x, y in pairs) if a and b is not None]
        return statistics.median(ratios) if ratios else None

    def figures(self) -> list[Figure]:
        n = len(self.runs.get(KITEFAN, []))
        rate = self.median(KITEFAN, "ticks_per_s")
        out = [
            Figure(
                "fanout",
                "kitefan ticks/s through Redis",
                rate,
                "ticks/s",
                target=f">= {TARGET_TICKS_PER_S:,}",
                ok=rate is not None and rate >= TARGET_TICKS_PER_S,
                samples=n,
                note="simulator -> stream --publish -> Redis -> tail, decoded; "
                f"published {_rate(self.median(KITEFAN, 'published_per_s'))}; simulator "
                f"{_pct(self.median(KITEFAN, 'simulator_cpu_share'))} of a core",
            ),
        ]
        for side, what in (
            ("publish", "publisher (sockets, decode-free XADD of each frame)"),
            ("tail", "reader (XREAD, decode)"),
            ("redis", "redis-server"),
        ):
            out.append(
                Figure(
                    "fanout",
                    f"kitefan {side} CPU per 100k ticks",
                    self.median(KITEFAN, f"{side}_cpu_per_100k_s"),
                    "s",
                    samples=n,
                    note=what,
                )
            )
        if OFFICIAL in self.skipped:
            out.append(Figure("fanout", "baseline ticks/s", None, "ticks/s", note="not run"))
            return out
        m = len(self.runs.get(OFFICIAL, []))
        ratio = self.ratio()
        out.append(
            Figure(
                "fanout",
                "baseline ticks/s through Redis",
                self.median(OFFICIAL, "ticks_per_s"),
                "ticks/s",
                samples=m,
                note=f"{OFFICIAL}, JSON per entry; published "
                f"{_rate(self.median(OFFICIAL, 'published_per_s'))}",
            )
        )
        for side in ("publish", "tail", "redis"):
            out.append(
                Figure(
                    "fanout",
                    f"baseline {side} CPU per 100k ticks",
                    self.median(OFFICIAL, f"{side}_cpu_per_100k_s"),
                    "s",
                    samples=m,
                )
            )
        out.append(
            Figure(
                "fanout",
                "baseline / kitefan CPU per tick",
                self.cpu_ratio(),
                "x",
                samples=min(n, m),
                note="publisher + reader + redis-server, per-round ratio, median",
            )
        )
        out.append(
            Figure(
                "fanout",
                "kitefan / baseline ticks/s",
                ratio,
                "x",
                target=f">= {TARGET_RATIO:g}x",
                ok=ratio is not None and ratio >= TARGET_RATIO,
                samples=min(n, m),
                note="per-round ratio, median",
            )
        )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "seconds": self.seconds,
            "warmup_s": self.warmup_s,
            "stream_maxlen": MAXLEN,
            "runs": self.runs,
            "skipped": self.skipped,
        }


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"


def _rate(value: float | None) -> str:
    return "?" if value is None else f"{value:,.0f} ticks/s"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """``redis-server`` on 127.0.0.1 and a free port, without persistence."""

    def __init__(self) -> None:
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> RedisProcess:
        server = shutil.which("redis-server")
        if server is None:
            raise BenchmarkError("the fan-out benchmark needs redis-server: apt-get install it")
        command = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no"]
        self._process = subprocess.Popen(  # noqa: S603 (redis-server and fixed arguments)
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.__exit__()
        raise BenchmarkError("redis-server did not answer PING within 10 s")

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()


def run_fanout_benchmark(
    rounds: int = 3,
    seconds: float = 2.0,
    warmup_s: float = 1.5,
    connections: int = 3,
    tokens_per_connection: int = 3000,
    official: bool = True,
    progress: Callable[[str], None] | None = None,
) -> FanoutResult:
    """Run each pipeline once per round, each with a fresh Redis and simulator.

    Raises:
        BenchmarkError: Redis, redis-py, the simulator or a side failed.
    """
    if importlib.util.find_spec("redis") is None:
        raise BenchmarkError("the fan-out benchmark needs redis-py: pip install -e '.[bench]'")
    symbols = full_rate_symbols(connections, tokens_per_connection)
    skipped: dict[str, str] = {}
    if not official:
        skipped[OFFICIAL] = "not asked for"
    elif importlib.util.find_spec("kiteconnect") is None:
        skipped[OFFICIAL] = "kiteconnect is not installed: pip install -e '.[bench]'"
    pipelines = [KITEFAN] if OFFICIAL in skipped else [KITEFAN, OFFICIAL]
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in pipelines}
    for r in range(rounds):
        for pipeline in pipelines:
            with RedisProcess() as redis, SimulatorProcess(["bench"], rate="max") as sim:
                spec = client_spec(
                    sim.url,
                    ["bench"],
                    symbols,
                    seconds=seconds,
                    warmup_s=warmup_s,
                    redis_port=redis.port,
                    stream=STREAM,
                )
                if pipeline == OFFICIAL:
                    spec["connections"] = connection_subscriptions(client_config(spec))
                spec["simulator_pid"] = sim.pid
                run = _pipeline(pipeline, spec, redis.pid, timeout_s=60.0 + warmup_s + seconds)
            runs[pipeline].append(run)
            if progress is not None:
                progress(
                    f"fanout round {r + 1}/{rounds}: {pipeline} {run['ticks_per_s']:,.0f} "
                    f"ticks/s through Redis (published {run['published_per_s']:,.0f}), CPU per "
                    f"100k ticks: publish {_s(run['publish_cpu_per_100k_s'])}, tail "
                    f"{_s(run['tail_cpu_per_100k_s'])}, redis {_s(run['redis_cpu_per_100k_s'])}"
                )
    return FanoutResult(runs, len(symbols), seconds, warmup_s, skipped)


def _s(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f} s"


def _pipeline(
    pipeline: str, spec: dict[str, Any], redis_pid: int, timeout_s: float
) -> dict[str, Any]:
    """Start the reader, then the publisher; read both results and Redis's CPU over the span."""
    prefix = "" if pipeline == KITEFAN else "official-"
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kitefan-bench-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        started: list[subprocess.Popen[str]] = []
        try:
            for role in ("tail", "publish"):
                started.append(
                    subprocess.Popen(  # noqa: S603 (this interpreter, this module, a temp file)
                        [sys.executable, "-m", "kitefan.bench.fanout", prefix + role, str(path)],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                        env=_env(),
                    )
                )
            redis0 = cpu_seconds(redis_pid)
            results = []
            for process in started:
                out, err = process.communicate(timeout=timeout_s)
                lines = out.strip().splitlines()
                if process.returncode != 0 or not lines:
                    last = err.strip().splitlines()[-1:] or ["no output"]
                    raise BenchmarkError(f"fanout {prefix}side failed: {last[0]}")
                result = json.loads(lines[-1])
                if "error" in result:
                    raise BenchmarkError(f"fanout {prefix}side: {result['error']}")
                results.append(result)
            redis1 = cpu_seconds(redis_pid)
        except subprocess.TimeoutExpired:
            raise BenchmarkError(f"a fan-out side did not finish in {timeout_s:g} s") from None
        finally:
            for process in started:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    tail, publish = results
    ticks = tail["ticks"]
    published = publish["ticks"]
    # Redis's CPU over the whole run, per tick it took in (both sides' windows are inside it).
    redis_cpu = None if redis0 is None or redis1 is None else redis1 - redis0
    return {
        "ticks_per_s": tail["ticks"] / tail["seconds"],
        "published_per_s": published / publish["seconds"],
        "publish_cpu_per_100k_s": _per_100k(publish["cpu_s"], published),
        "tail_cpu_per_100k_s": _per_100k(tail["cpu_s"], ticks),
        "redis_cpu_per_100k_s": _per_100k(redis_cpu, publish.get("total_ticks")),
        "publish_dropped_ticks": publish.get("dropped", 0),
        # Over the publisher's window: near 100 %, the simulator could send no faster.
        "simulator_cpu_share": publish.get("simulator_cpu_share"),
        "publish": publish,
        "tail": tail,
    }


def _per_100k(cpu_s: float | None, ticks: int | None) -> float | None:
    if cpu_s is None or not ticks:
        return None
    return cpu_s / ticks * 100_000


# The sides, each in its own process ------------------------------------------------------------


def _window(spec: dict[str, Any]) -> tuple[float, float]:
    return float(spec["warmup_s"]), float(spec["seconds"])


async def _publish(spec: dict[str, Any]) -> dict[str, Any]:
    from kitefan.manager import FeedManager
    from kitefan.publish import Publisher
    from kitefan.settings import PublishConfig, RedisURL

    target = PublishConfig(
        RedisURL("redis", "127.0.0.1", spec["redis_port"]), stream=spec["stream"], maxlen=MAXLEN
    )
    warmup, seconds = _window(spec)
    async with FeedManager(client_config(spec)) as feed:
        publisher = Publisher(target)
        task = asyncio.get_running_loop().create_task(publisher.run(feed.events()))
        async with asyncio.timeout(30):
            while not publisher.published_ticks:  # noqa: ASYNC110 - a counter, no event
                await asyncio.sleep(0.01)
        await asyncio.sleep(warmup)
        sim_pid = spec.get("simulator_pid")
        s0 = cpu_seconds(sim_pid) if sim_pid else None
        t0, c0, p0 = time.perf_counter(), time.process_time(), publisher.published_ticks
        await asyncio.sleep(seconds)
        t1, c1, p1 = time.perf_counter(), time.process_time(), publisher.published_ticks
        s1 = cpu_seconds(sim_pid) if sim_pid else None
        # Keep publishing while the reader finishes its window.
        await asyncio.sleep(1.0)
        total = publisher.published_ticks
        dropped = publisher.dropped_ticks
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return {
        "ticks": p1 - p0,
        "seconds": t1 - t0,
        "cpu_s": c1 - c0,
        "total_ticks": total,
        "dropped": dropped,
        "simulator_cpu_share": None if s0 is None or s1 is None else (s1 - s0) / (t1 - t0),
    }


async def _tail(spec: dict[str, Any]) -> dict[str, Any]:
    from kitefan.tail import RemoteFeed

    warmup, seconds = _window(spec)
    count = 0
    async with RemoteFeed(
        f"redis://127.0.0.1:{spec['redis_port']}",
        stream=spec["stream"],
        start="now",
        on_warning=lambda line: print(line, file=sys.stderr),
    ) as feed:

        async def consume() -> None:
            nonlocal count
            async for batch in feed.ticks():
                count += len(batch.ticks)

        task = asyncio.get_running_loop().create_task(consume())
        try:
            async with asyncio.timeout(40):
                while not count:  # noqa: ASYNC110 - a counter, no event
                    await asyncio.sleep(0.01)
            await asyncio.sleep(warmup)
            t0, c0, n0 = time.perf_counter(), time.process_time(), count
            await asyncio.sleep(seconds)
            t1, c1, n1 = time.perf_counter(), time.process_time(), count
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return {"ticks": n1 - n0, "seconds": t1 - t0, "cpu_s": c1 - c0}


def _official_publish(spec: dict[str, Any]) -> dict[str, Any]:
    """What users write today: ``on_ticks`` XADDs each tick as JSON, pipelined per batch."""
    try:
        from kiteconnect import KiteTicker
    except ImportError:
        return {"error": "kiteconnect is not installed: pip install -e '.[bench]'"}
    import redis

    reactor: Any = importlib.import_module("twisted.internet.reactor")
    client = redis.Redis(host="127.0.0.1", port=spec["redis_port"])
    stream = spec["stream"]
    count = [0]
    result: dict[str, Any] = {"error": "no ticks within 30 s of connecting"}

    def on_ticks(ws: Any, ticks: list[dict[str, Any]]) -> None:
        pipe = client.pipeline(transaction=False)
        for tick in ticks:
            pipe.xadd(
                stream, {"tick": json.dumps(tick, default=str)}, maxlen=MAXLEN, approximate=True
            )
        pipe.execute()
        count[0] += len(ticks)

    tickers = tickers_for(KiteTicker, spec, on_ticks)

    def stop() -> None:
        stop_tickers(reactor, tickers)

    def finish(n0: int, t0: float, c0: float) -> None:
        nonlocal result
        result = {
            "ticks": count[0] - n0,
            "seconds": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
        }
        reactor.callLater(1.0, done)

    def done() -> None:
        result["total_ticks"] = count[0]
        stop()

    def start() -> None:
        reactor.callLater(
            spec["seconds"], finish, count[0], time.perf_counter(), time.process_time()
        )

    run_tickers(reactor, tickers, count, spec["warmup_s"], start, stop)
    return result


def _official_tail(spec: dict[str, Any]) -> dict[str, Any]:
    """What users write today to read it: XREAD BLOCK in batches, ``json.loads`` per entry."""
    import redis

    client: Any = redis.Redis(host="127.0.0.1", port=spec["redis_port"])
    stream = spec["stream"]
    warmup, seconds = _window(spec)
    last: Any = b"$"
    count = 0
    deadline = time.monotonic() + 40
    started: float | None = None
    window: tuple[float, float, int] | None = None
    while True:
        reply = client.xread({stream: last}, count=1000, block=500)
        for _, entries in reply or ():
            for entry_id, fields in entries:
                json.loads(fields[b"tick"])
                count += 1
                last = entry_id
        now = time.perf_counter()
        if not count:
            if time.monotonic() > deadline:
                return {"error": "no entries within 40 s"}
            continue
        if started is None:
            started = now
        elif window is None and now - started >= warmup:
            window = (now, time.process_time(), count)
        elif window is not None and now - window[0] >= seconds:
            t0, c0, n0 = window
            return {"ticks": count - n0, "seconds": now - t0, "cpu_s": time.process_time() - c0}


def main() -> None:
    """One side: ``python -m kitefan.bench.fanout ROLE SPEC.json``; prints one JSON line."""
    role, path = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    result: dict[str, Any]
    try:
        if role == "publish":
            result = asyncio.run(_publish(spec))
        elif role == "tail":
            result = asyncio.run(_tail(spec))
        elif role == "official-publish":
            result = _official_publish(spec)
        elif role == "official-tail":
            result = _official_tail(spec)
        else:
            result = {"error": f"unknown role {role!r}"}
    except TimeoutError:
        result = {"error": f"{role}: no ticks in time"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
