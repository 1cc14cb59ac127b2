"""What the benchmarks share: the simulator in its own process, child processes, and readings.

* :class:`SimulatorProcess` starts ``python -m kitefan simulate --port 0`` with a throw-away config
  of fake keys, reads its URL from the first line of its stdout, and stops it with SIGTERM.
* :func:`run_child` runs one measuring client in a fresh interpreter (``python -m
  kitefan.bench.<module> SPEC``) and returns the JSON object it prints last: a fresh process per
  client keeps one benchmark's memory and CPU out of another's figures.
* :func:`client_spec` and :func:`client_config`: what a measuring client streams (fake keys, the
  URL, the symbols), as JSON and as kitefan's config; :func:`connection_subscriptions`: the same
  placement, per connection, for a baseline client.
* :func:`cpu_seconds` (any process, from ``/proc``), :func:`memory_kb` (this process, from
  ``/proc/self/status``, with ``resource`` as the fallback), :func:`measured_run` (what an
  end-to-end run reports) and :func:`percentile`.

Both processes get ``PYTHONPATH`` pointing at this copy of kitefan, so a checkout works as well as
an installed package. The keys are fake (``bench-…``) and never printed.

Owns: the process harness, client specs and the readings. Must not import asyncio, websockets,
rich or typer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kitefan.errors import KitefanError
from kitefan.models import Mode
from kitefan.planner import KeyCapacity, plan
from kitefan.settings import AppConfig, Credential, KeyConfig, Strategy, SymbolSpec

__all__ = [
    "BenchmarkError",
    "SimulatorProcess",
    "bench_key",
    "client_config",
    "client_spec",
    "connection_subscriptions",
    "cpu_seconds",
    "full_rate_symbols",
    "measured_run",
    "memory_kb",
    "percentile",
    "realistic_tokens",
    "run_child",
    "start_ticker",
    "stop_process",
]

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


class BenchmarkError(KitefanError):
    """A benchmark could not run (the simulator or a client failed); the message says which."""


def bench_key(name: str) -> tuple[str, str]:
    """A fake api key and access token for a benchmark key named ``name``."""
    return f"bench-{name}-api-key", f"bench-{name}-access-token"


def realistic_tokens(count: int, start: int = 0) -> list[int]:
    """Distinct tokens spread like a real watchlist: NSE and BSE equities, NFO and BFO
    contracts, MCX, and a few indices (``exchange_token << 8 | segment``)."""
    segments = (1, 2, 1, 2, 4, 1, 2, 5, 7, 2, 1, 2, 1, 2, 9, 1, 2, 1, 2, 2)
    return [((100_000 + start + i) << 8) | segments[i % len(segments)] for i in range(count)]


def full_rate_symbols(connections: int, per_connection: int) -> list[tuple[int, Mode]]:
    """The symbols of the full-rate benchmarks (end to end, fan-out): two thirds full mode, one
    third quote, ``per_connection`` on each of ``connections``."""
    tokens = realistic_tokens(connections * per_connection)
    return [(t, Mode.QUOTE if i % 3 == 1 else Mode.FULL) for i, t in enumerate(tokens)]


def client_spec(
    url: str, keys: Sequence[str], symbols: Sequence[tuple[int, Mode]], **extra: Any
) -> dict[str, Any]:
    """What a measuring client needs, as JSON: the URL, the fake keys, the symbols, and more."""
    return {
        "url": url,
        "keys": [[name, *bench_key(name)] for name in keys],
        "symbols": [[token, mode.value] for token, mode in symbols],
        **extra,
    }


def client_config(spec: dict[str, Any]) -> AppConfig:
    """The config a kitefan client streams with, from :func:`client_spec` (Kite's limits)."""
    return AppConfig(
        source="kitefan bench",
        url=spec["url"],
        strategy=Strategy.ROUND_ROBIN,
        mode=Mode.QUOTE,
        max_connections_per_key=3,
        max_symbols_per_connection=3000,
        keys=tuple(KeyConfig(k, Credential(api_key, token)) for k, api_key, token in spec["keys"]),
        symbols=tuple(SymbolSpec(token, str(token), Mode(mode)) for token, mode in spec["symbols"]),
        redundancy=int(spec.get("redundancy", 1)),
    )


def connection_subscriptions(config: AppConfig) -> list[dict[str, list[int]]]:
    """Each connection's tokens by mode, as kitefan's planner places them (for a baseline client
    that must subscribe exactly the same tokens on each connection)."""
    placed = plan(
        config.symbols,
        [KeyCapacity(k.id, config.max_connections_per_key) for k in config.keys],
        strategy=config.strategy,
        max_symbols_per_connection=config.max_symbols_per_connection,
    )
    out = []
    for key_plan in placed.keys:
        for slot in key_plan.connections:
            by_mode: dict[str, list[int]] = {mode.value: [] for mode in Mode}
            for spec in slot.symbols:
                by_mode[spec.mode.value].append(spec.token)
            out.append(by_mode)
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(_PACKAGE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far, from ``/proc`` (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kb() -> tuple[int, int]:
    """This process's resident memory now and at its peak, in kB (``VmRSS``, ``VmHWM``).

    Off Linux, both are ``ru_maxrss`` (the peak; kB on Linux, bytes on macOS).
    """
    now = peak = 0
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    now = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1])
    except OSError:
        pass
    if not now or not peak:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            maxrss //= 1024
        now = now or maxrss
        peak = peak or maxrss
    return now, peak


def measured_run(
    ticks: int, wall_s: float, cpu_s: float, sim_pid: int | None, sim_cpu_s: float | None
) -> dict[str, Any]:
    """What one end-to-end client run reports (the kitefan and the official client alike)."""
    sim_share = None
    if sim_pid is not None and sim_cpu_s is not None:
        end = cpu_seconds(sim_pid)
        if end is not None:
            sim_share = (end - sim_cpu_s) / wall_s
    return {
        "ticks": ticks,
        "seconds": wall_s,
        "ticks_per_s": ticks / wall_s,
        "cpu_s": cpu_s,
        "cpu_share": cpu_s / wall_s,
        "cpu_per_100k_s": cpu_s / ticks * 100_000 if ticks else None,
        "simulator_cpu_share": sim_share,
    }


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` (0–1) of already sorted values (nearest rank)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def start_ticker(command: list[str], what: str) -> tuple[subprocess.Popen[str], str]:
    """Start a ``kitefan simulate`` or ``kitefan replay`` process; return it and the ``ws://``
    URL it prints first.

    Raises:
        BenchmarkError: its first line is not a URL (the process is stopped).
    """
    # The command is this interpreter and fixed arguments, never input from elsewhere.
    process = subprocess.Popen(  # noqa: S603
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env()
    )
    first = process.stdout.readline().strip() if process.stdout is not None else ""
    if not first.startswith("ws://"):
        stop_process(process)
        raise BenchmarkError(f"{what} did not start (its first line: {first!r})")
    return process, first


def stop_process(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL after 10 s; its stdout closed."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


class SimulatorProcess:
    """``kitefan simulate`` in its own process, accepting the fake keys ``keys``.

    Args:
        keys: the names of the keys to accept (see :func:`bench_key`).
        rate: the ``--rate`` argument (``"max"`` or packets per instrument per second).
        max_connections_per_key: the simulator's limit (Kite's is 3).
    """

    def __init__(
        self, keys: Sequence[str], *, rate: str = "max", max_connections_per_key: int = 3
    ) -> None:
        self.keys = tuple(keys)
        self.rate = rate
        self.max_connections_per_key = max_connections_per_key
        self.url = ""
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BenchmarkError("the simulator is not running")
        return self._process.pid

    def __enter__(self) -> Self:
        self._dir = tempfile.TemporaryDirectory(prefix="kitefan-bench-")
        config = Path(self._dir.name) / "simulator.toml"
        lines = []
        for name in self.keys:
            api_key, access_token = bench_key(name)
            lines += [
                "[[keys]]",
                f'id = "{name}"',
                f'api_key = "{api_key}"',
                f'access_token = "{access_token}"',
                "",
            ]
        config.write_text("\n".join(lines), encoding="utf-8")
        command = [sys.executable, "-m", "kitefan", "simulate", "--config", str(config)]
        command += ["--host", "127.0.0.1", "--port", "0", "--rate", self.rate]
        command += ["--max-connections-per-key", str(self.max_connections_per_key)]
        self._process, self.url = start_ticker(command, "the simulator")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def run_child(module: str, spec: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
    """Run ``python -m <module> SPEC.json`` and return the JSON object it prints last.

    Raises:
        BenchmarkError: the child failed, timed out, or printed no JSON object.
    """
    with tempfile.TemporaryDirectory(prefix="kitefan-bench-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        started = time.perf_counter()
        try:
            done = subprocess.run(  # noqa: S603 (this interpreter, a kitefan module, a temp file)
                [sys.executable, "-m", module, str(path)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BenchmarkError(f"{module} did not finish in {timeout_s:g} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise BenchmarkError(
            f"{module} failed after {time.perf_counter() - started:.1f} s "
            f"(exit {done.returncode}): {tail[0]}"
        )
    result = json.loads(lines[-1])
    if not isinstance(result, dict):
        raise BenchmarkError(f"{module} printed {lines[-1]!r}, not a JSON object")
    if "error" in result:
        raise BenchmarkError(f"{module}: {result['error']}")
    return result
