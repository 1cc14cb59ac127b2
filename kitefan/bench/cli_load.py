"""The command line at the realistic load: ``kitefan stream`` in its own process, as a user runs it.

Each case runs against a fresh ``kitefan simulate`` process (:class:`SimulatorProcess`) with
27,000 full-mode symbols on 3 keys × 3 connections × 3000 (the load of :mod:`kitefan.bench.load`)
and a fresh ``python -m kitefan stream --config C`` process; this process measures it from the
outside:

* **jsonl**: ``kitefan stream --format jsonl > /dev/null`` at ``--rate 2``.
* **dashboard**: ``kitefan stream`` (the live dashboard) in a pseudo-terminal of 200 × 50, whose
  master this process reads all along, so the terminal never blocks the stream.
* **slow reader**: ``kitefan stream --format jsonl | reader``, the reader (a thread of this
  process) reads, stops reading for ``stall_s`` (10 s), then reads as fast as it can for
  ``resume_s`` (10 s) while ``kitefan stats`` is asked every half second.
* **max rate**: the simulator at ``--rate max`` → ``kitefan stream --format jsonl > file``.

Each waits for every symbol to be subscribed and the first ticks (the subscribe burst), lets
``warmup_s`` pass, then over ``seconds`` reads:

* **CPU share of one core** of the stream process: ``utime + stime`` of ``/proc/<pid>/stat``
  (every thread, the records' writer thread included) over the wall time of the span;
* **peak resident memory**: ``VmHWM`` of ``/proc/<pid>/status`` at the end of the span (the peak
  since the process started, subscribe burst included), and ``VmRSS`` then;
* **event-loop lag** as the stream measures it itself (``kitefan stats``: ``loop_lag``), its
  ``recent_p99_ms`` and ``recent_max_ms`` sampled every 9 s of the span and at its end, so that
  the samples' 10-second windows cover the whole span: the figure is the largest sample (the p99
  so is the worst 10-second window's, not the span's as a whole);
* **drops**: ``totals.drops`` at the end of the span less at its start, and the summary line the
  stream prints on stderr when stopped (SIGINT) after the span (the whole run);
* ticks/s received (``totals.ticks``), the simulator's CPU share, the load average.

The max-rate case also counts the lines of the file once the stream has stopped: lines/s is the
lines over the streaming seconds of the summary (subscribe burst included), and over the span
alone (the file's growth in bytes over the span, at the file's mean bytes per line).

The ``kitefan stats`` answers come through :class:`~kitefan.control.ControlClient`, what
``kitefan stats`` uses, without the interpreter start-up; the stream's control socket lives in a
throw-away ``$KITEFAN_RUNTIME_DIR``. The keys are fake (``bench-…``) and never printed.

Owns: the command-line benchmark (``kitefan bench cli``). Must not import rich or typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitefan.bench import Figure
from kitefan.bench.harness import (
    BenchmarkError,
    SimulatorProcess,
    bench_key,
    cpu_seconds,
    realistic_tokens,
)
from kitefan.control import RUNTIME_DIR_ENV, ControlClient
from kitefan.errors import KitefanError

__all__ = [
    "CASES",
    "TARGET_DASHBOARD_CPU_SHARE",
    "TARGET_JSONL_CPU_SHARE",
    "TARGET_LAG_MAX_MS",
    "TARGET_LAG_P99_MS",
    "TARGET_LINES_PER_S",
    "TARGET_RSS_MB",
    "CliLoadResult",
    "run_cli_benchmark",
]

TARGET_JSONL_CPU_SHARE = 0.20
TARGET_RSS_MB = 150.0
TARGET_DASHBOARD_CPU_SHARE = 0.15
TARGET_LAG_P99_MS = 5.0
TARGET_LAG_MAX_MS = 50.0
TARGET_LINES_PER_S = 200_000

JSONL = "jsonl"
DASHBOARD = "dashboard"
SLOW_READER = "slow-reader"
MAX_RATE = "max-rate"
#: The cases, in the order a round runs them.
CASES = (JSONL, DASHBOARD, SLOW_READER, MAX_RATE)

_LAG_EVERY_S = 9.0  # the stream's window is 10 whole seconds: 9 leaves no gap between samples
_STATS_EVERY_S = 0.5
_COLUMNS, _ROWS = 200, 50
_SUMMARY = re.compile(
    r"kitefan: (?P<why>[^\n]+?) after (?P<seconds>[\d.]+) s: (?P<received>[\d,]+) ticks from "
    r"\d+ keys \([\d,]+ symbols\), (?:(?P<written>[\d,]+) written, )?(?P<dropped>[\d,]+) "
    r"dropped(?:, (?P<dropped_events>[\d,]+) events dropped)?, (?P<reconnects>\d+) reconnects, "
    r"(?P<undecodable>\d+) undecodable frames"
)
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\r")


def parse_summary(text: str) -> dict[str, Any] | None:
    """The figures of the summary line ``kitefan stream`` prints on stderr (None if absent)."""
    match = _SUMMARY.search(text)
    if match is None:
        return None
    out: dict[str, Any] = {"why": match["why"], "seconds": float(match["seconds"])}
    for name in ("received", "written", "dropped", "dropped_events", "reconnects", "undecodable"):
        value = match[name]
        out[name] = None if value is None else int(value.replace(",", ""))
    return out


@dataclass(frozen=True)
class CliLoadResult:
    """Every run of every case: ``runs[case]`` holds one dict per round.

    Attributes:
        runs: per case, what each run measured (see the module docstring).
        keys: keys streamed.
        symbols: symbols streamed (full mode).
        rate: the simulator's ``--rate`` (except the max-rate case).
        seconds: the measured span of each run (the max-rate case: ``max_rate_seconds``).
        warmup_s: the time let pass after the subscribe burst, before measuring.
        stall_s: how long the slow reader stops reading.
        resume_s: how long it then reads as fast as it can.
        max_rate_seconds: the measured span of the max-rate case.
    """

    runs: dict[str, list[dict[str, Any]]]
    keys: int
    symbols: int
    rate: float
    seconds: float
    warmup_s: float
    stall_s: float
    resume_s: float
    max_rate_seconds: float

    def median(self, case: str, *path: str) -> float | None:
        """The median over a case's runs of one reading, e.g. ``median("jsonl", "cpu_share")``
        (None if no run has it)."""
        values = []
        for run in self.runs.get(case, []):
            value: Any = run
            for name in path:
                value = value.get(name) if isinstance(value, dict) else None
            if value is not None:
                values.append(float(value))
        return statistics.median(values) if values else None

    def figures(self) -> list[Figure]:
        """The figures (medians over runs), with the design's targets."""
        out: list[Figure] = []
        load = f"{self.symbols:,} full symbols, {self.keys} keys, --rate {self.rate:g}"
        for case, label, cpu_target in (
            (JSONL, "jsonl", TARGET_JSONL_CPU_SHARE),
            (DASHBOARD, "dashboard", TARGET_DASHBOARD_CPU_SHARE),
        ):
            if case in self.runs:
                out += self._steady_figures(case, label, cpu_target, load)
        if SLOW_READER in self.runs:
            out += self._slow_reader_figures(load)
        if MAX_RATE in self.runs:
            out += self._max_rate_figures()
        return out

    def _loads(self, case: str) -> str:
        loads = [r["load_average"] for r in self.runs[case]]
        return "load avg " + ", ".join(f"{value:.1f}" for value in loads)

    def _steady_figures(self, case: str, label: str, cpu_target: float, load: str) -> list[Figure]:
        n = len(self.runs[case])
        share = self.median(case, "cpu_share")
        peak = self.median(case, "rss_peak_mb")
        p99 = self.median(case, "loop_lag_ms", "p99")
        lag_max = self.median(case, "loop_lag_ms", "max")
        drops = self.median(case, "drops")
        summary_drops = [r["summary"]["dropped"] for r in self.runs[case] if r.get("summary")]
        span = f"{self.seconds:g} s a run after {self.warmup_s:g} s of warm-up"
        what = (
            "kitefan stream --format jsonl > /dev/null"
            if case == JSONL
            else (f"kitefan stream in a {_COLUMNS}x{_ROWS} pseudo-terminal")
        )
        sim = self.median(case, "simulator_cpu_share")
        figures = [
            Figure(
                "cli",
                f"{label}: ticks/s",
                self.median(case, "ticks_per_s"),
                "ticks/s",
                samples=n,
                note=f"{what}, {load}; simulator {_pct(sim)} of a core; {self._loads(case)}",
            ),
            Figure(
                "cli",
                f"{label}: CPU, one core",
                None if share is None else share * 100,
                "%",
                target=f"< {cpu_target:.0%}".replace("%", " %"),
                ok=None if share is None else share < cpu_target,
                samples=n,
                note=f"stream process utime+stime / wall (every thread), {span}",
            ),
            Figure(
                "cli",
                f"{label}: peak RSS",
                peak,
                "MB",
                target=f"< {TARGET_RSS_MB:.0f} MB" if case == JSONL else "",
                ok=(None if peak is None else peak < TARGET_RSS_MB) if case == JSONL else None,
                samples=n,
                note=f"VmHWM of the stream process, subscribe burst included; at the end "
                f"VmRSS {_num(self.median(case, 'rss_mb'), '.0f')} MB",
            ),
            Figure(
                "cli",
                f"{label}: loop lag p99",
                p99,
                "ms",
                target=f"< {TARGET_LAG_P99_MS:g} ms",
                ok=None if p99 is None else p99 < TARGET_LAG_P99_MS,
                samples=n,
                note="the stream's own probe (kitefan stats loop_lag), worst 10-s window",
            ),
            Figure(
                "cli",
                f"{label}: loop lag max",
                lag_max,
                "ms",
                target=f"< {TARGET_LAG_MAX_MS:g} ms",
                ok=None if lag_max is None else lag_max < TARGET_LAG_MAX_MS,
                samples=n,
                note="the stream's own probe, the span's largest",
            ),
            Figure(
                "cli",
                f"{label}: dropped",
                drops,
                "ticks",
                target="0" if case == JSONL else "",
                ok=(None if drops is None else drops == 0) if case == JSONL else None,
                samples=n,
                note="totals.drops over the span; the whole run's summary line: "
                + (", ".join(f"{d:,}" for d in summary_drops) or "none")
                + " dropped",
            ),
        ]
        return figures

    def _slow_reader_figures(self, load: str) -> list[Figure]:
        case = SLOW_READER
        n = len(self.runs[case])
        lag_max = self.median(case, "resume", "loop_lag_ms", "max")
        p99 = self.median(case, "resume", "loop_lag_ms", "p99")
        stall_max = self.median(case, "stall", "loop_lag_ms", "max")
        what = (
            f"kitefan stream --format jsonl | a reader that stops for {self.stall_s:g} s, then "
            f"reads flat out for {self.resume_s:g} s"
        )
        return [
            Figure(
                "cli",
                "slow reader: lag max",
                lag_max,
                "ms",
                target=f"< {TARGET_LAG_MAX_MS:g} ms",
                ok=None if lag_max is None else lag_max < TARGET_LAG_MAX_MS,
                samples=n,
                note=f"{load}; {what}; during the stall {_num(stall_max, '.1f')} ms; "
                f"{self._loads(case)}",
            ),
            Figure(
                "cli",
                "slow reader: lag p99",
                p99,
                "ms",
                target=f"< {TARGET_LAG_P99_MS:g} ms",
                ok=None if p99 is None else p99 < TARGET_LAG_P99_MS,
                samples=n,
                note="the stream's own probe over the resume's 10-s window",
            ),
            Figure(
                "cli",
                "slow reader: reconnects",
                self.median(case, "reconnects"),
                "reconnects",
                samples=n,
                note="totals.reconnects, stall and resume",
            ),
            Figure(
                "cli",
                "slow reader: dropped",
                self.median(case, "drops"),
                "ticks",
                samples=n,
                note="totals.drops, stall and resume (shed while nobody reads: expected)",
            ),
            Figure(
                "cli",
                "slow reader: stats answer",
                self.median(case, "stats_answer_ms", "max"),
                "ms",
                samples=n,
                note=f"connect + stats every {_STATS_EVERY_S:g} s while the reader resumes; "
                f"median {_num(self.median(case, 'stats_answer_ms', 'p50'), '.1f')} ms",
            ),
        ]

    def _max_rate_figures(self) -> list[Figure]:
        case = MAX_RATE
        n = len(self.runs[case])
        whole = self.median(case, "lines_per_s")
        steady = self.median(case, "lines_per_s_span")
        target = f">= {TARGET_LINES_PER_S:,}"
        sim = self.median(case, "simulator_cpu_share")
        share = self.median(case, "cpu_share")
        return [
            Figure(
                "cli",
                "max rate: lines/s",
                whole,
                "lines/s",
                target=target,
                ok=None if whole is None else whole >= TARGET_LINES_PER_S,
                samples=n,
                note=f"simulator --rate max -> kitefan stream --format jsonl > file: lines in "
                f"the file / the summary's streaming seconds (subscribe burst included); "
                f"{self.symbols:,} full symbols; {self._loads(case)}",
            ),
            Figure(
                "cli",
                "max rate: lines/s steady",
                steady,
                "lines/s",
                target=target,
                ok=None if steady is None else steady >= TARGET_LINES_PER_S,
                samples=n,
                note=f"the file's growth over {self.max_rate_seconds:g} s after the warm-up; "
                f"stream {_pct(share)} of a core, simulator {_pct(sim)}",
            ),
            Figure(
                "cli",
                "max rate: ticks/s",
                self.median(case, "summary_received_per_s"),
                "ticks/s",
                samples=n,
                note="the summary's received / its seconds",
            ),
            Figure(
                "cli",
                "max rate: dropped",
                self.median(case, "summary", "dropped"),
                "ticks",
                samples=n,
                note="the summary's dropped (the whole run); event-loop lag max "
                f"{_num(self.median(case, 'loop_lag_ms', 'max'), '.1f')} ms",
            ),
        ]

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "keys": self.keys,
            "symbols": self.symbols,
            "rate": self.rate,
            "seconds": self.seconds,
            "warmup_s": self.warmup_s,
            "stall_s": self.stall_s,
            "resume_s": self.resume_s,
            "max_rate_seconds": self.max_rate_seconds,
            "runs": self.runs,
        }


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"


def _num(value: float | None, spec: str) -> str:
    return "?" if value is None else format(value, spec)


def run_cli_benchmark(
    rounds: int = 1,
    seconds: float = 20.0,
    warmup_s: float = 5.0,
    stall_s: float | None = None,
    resume_s: float | None = None,
    max_rate_seconds: float | None = None,
    keys: int = 3,
    connections: int = 3,
    tokens_per_connection: int = 3000,
    rate: float = 2.0,
    cases: Sequence[str] = CASES,
    progress: Callable[[str], None] | None = None,
) -> CliLoadResult:
    """Run each case once per round, in turn, each against a fresh simulator and stream.

    Args:
        rounds: how many runs of each case; the figures are their medians.
        seconds: the measured span of the jsonl and dashboard cases.
        warmup_s: how long to stream after the subscribe burst before measuring.
        stall_s: how long the slow reader stops reading (default: 10 s, or ``seconds`` if
            shorter).
        resume_s: how long the slow reader then reads flat out (default: as ``stall_s``).
        max_rate_seconds: the measured span of the max-rate case (default: as ``stall_s``).
        keys: keys, each with ``connections`` connections of ``tokens_per_connection`` tokens.
        connections: connections per key (at most 3).
        tokens_per_connection: full-mode tokens on each connection (at most 3000).
        rate: the simulator's ``--rate`` (packets per instrument per second at most).
        cases: which of :data:`CASES` to run.
        progress: told one line per run.

    Raises:
        ValueError: an unknown case.
        BenchmarkError: the simulator or a stream failed.
    """
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise ValueError(f"unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    short = min(10.0, seconds)
    stall_s = short if stall_s is None else stall_s
    resume_s = short if resume_s is None else resume_s
    max_rate_seconds = short if max_rate_seconds is None else max_rate_seconds
    names = [f"cli{k}" for k in range(keys)]
    tokens = realistic_tokens(keys * connections * tokens_per_connection)
    setup = _Setup(names, tokens, connections, tokens_per_connection, warmup_s)
    if progress is not None:
        progress(
            f"cli: {len(tokens):,} full symbols on {keys} keys at --rate {rate:g}; "
            f"{warmup_s:g} s warm-up, then {seconds:g} s measured; {rounds} round(s) of "
            f"{', '.join(cases)}"
        )
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    for index in range(rounds):
        for case in cases:
            sim_rate = "max" if case == MAX_RATE else f"{rate:g}"
            with SimulatorProcess(names, rate=sim_rate) as sim:
                if case == JSONL:
                    run = asyncio.run(_jsonl(setup, sim, seconds))
                elif case == DASHBOARD:
                    run = asyncio.run(_dashboard(setup, sim, seconds))
                elif case == SLOW_READER:
                    run = asyncio.run(_slow_reader(setup, sim, stall_s, resume_s))
                else:
                    run = asyncio.run(_max_rate(setup, sim, max_rate_seconds))
            runs[case].append(run)
            if progress is not None:
                progress(f"cli round {index + 1}/{rounds}: {case}: {_line(case, run)}")
    return CliLoadResult(
        runs=runs,
        keys=keys,
        symbols=len(tokens),
        rate=rate,
        seconds=seconds,
        warmup_s=warmup_s,
        stall_s=stall_s,
        resume_s=resume_s,
        max_rate_seconds=max_rate_seconds,
    )


def _line(case: str, run: dict[str, Any]) -> str:
    lag = run.get("loop_lag_ms") or run.get("resume", {}).get("loop_lag_ms", {})
    lag_text = f"loop lag p99 {_num(lag.get('p99'), '.1f')} ms max {_num(lag.get('max'), '.1f')} ms"
    if case == SLOW_READER:
        return (
            f"{lag_text} (resume), {run['reconnects']} reconnects, {run['drops']:,} dropped, "
            f"stats answered within {run['stats_answer_ms']['max']:.0f} ms"
        )
    if case == MAX_RATE:
        return (
            f"{_num(run.get('lines_per_s'), ',.0f')} lines/s "
            f"({_num(run.get('lines_per_s_span'), ',.0f')} steady), {lag_text}"
        )
    return (
        f"{run['ticks_per_s']:,.0f} ticks/s, CPU {run['cpu_share']:.1%} of a core, "
        f"peak {run['rss_peak_mb']:.0f} MB, {lag_text}, {run['drops']:,} dropped"
    )


# The stream process ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Setup:
    names: list[str]
    tokens: list[int]
    connections: int
    per_connection: int
    warmup_s: float


def _stream_config(path: Path, url: str, setup: _Setup) -> Path:
    lines = [
        f'url = "{url}"',
        'mode = "full"',
        "max_connections_per_key = 3",
        "max_symbols_per_connection = 3000",
    ]
    for name in setup.names:
        api_key, access_token = bench_key(name)
        lines += ["[[keys]]", f'id = "{name}"', f'api_key = "{api_key}"']
        lines.append(f'access_token = "{access_token}"')
    lines += ["[symbols]", f"full = {setup.tokens}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _environment(runtime: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, env.get("PYTHONPATH", "").split(":"))])
    env["PYTHONUNBUFFERED"] = "1"
    env[RUNTIME_DIR_ENV] = str(runtime)
    env.update(extra)
    return env


def _status_mb(pid: int) -> tuple[float | None, float | None]:
    """``VmRSS`` and ``VmHWM`` of a process, in MB (None off Linux or once it is gone)."""
    now = peak = None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    now = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return now, peak


class _Stream:
    """One ``kitefan stream --config C [ARGS]`` process and its control socket."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        config: Path,
        env: dict[str, str],
        stderr: Path | None,
    ) -> None:
        self.process = process
        self.config = config
        self.env = env
        self.stderr_path = stderr
        self.stderr_text = ""
        self._client: ControlClient | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stats(self) -> dict[str, Any]:
        """The stream's stats, on one connection kept open (opened at the first call)."""
        if self._client is None:
            self._client = await ControlClient.connect(self.config, environ=self.env)
        return await self._client.stats()

    async def fresh_stats(self) -> tuple[dict[str, Any], float]:
        """The stream's stats on a new connection, as ``kitefan stats`` asks, and how long
        connecting and the answer took (seconds)."""
        asked = time.perf_counter()
        client = await ControlClient.connect(self.config, environ=self.env)
        async with client:
            stats = await client.stats()
        return stats, time.perf_counter() - asked

    async def streaming(self, symbols: int, connections: int, within_s: float = 120.0) -> None:
        """Wait until every symbol is subscribed on every connection and ticks arrive."""
        deadline = time.monotonic() + within_s
        last = "it did not start"
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise BenchmarkError(f"kitefan stream exited ({self.process.returncode})")
            try:
                totals = (await self.stats())["totals"]
            except KitefanError as exc:
                last = str(exc)
                self._client = None
            else:
                last = f"{totals['symbols']:,} symbols, {totals['connections_up']} connections up"
                if (
                    totals["symbols"] >= symbols
                    and totals["connections_up"] >= connections
                    and totals["ticks"] > 0
                ):
                    return
            await asyncio.sleep(0.2)
        raise BenchmarkError(f"kitefan stream was not streaming after {within_s:g} s: {last}")

    async def stop(self) -> dict[str, Any] | None:
        """SIGINT, wait for the exit, and the summary line's figures."""
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(60):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise BenchmarkError("kitefan stream did not stop within 60 s of SIGINT") from None
        if self.stderr_path is not None:
            self.stderr_text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return parse_summary(self.stderr_text)


@contextlib.asynccontextmanager
async def _stream(
    setup: _Setup,
    url: str,
    args: Sequence[str],
    *,
    stdout: int,
    stdin: int | None = None,
    stderr: int | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[_Stream]:
    """Start the stream (stderr to a file unless ``stderr`` is given); kill it if left running."""
    with tempfile.TemporaryDirectory(prefix="kitefan-bench-cli-") as tmp:
        config = _stream_config(Path(tmp) / "kitefan.toml", url, setup)
        environment = _environment(Path(tmp) / "run", **(env or {}))
        stderr_path = None if stderr is not None else Path(tmp) / "stderr.txt"
        with contextlib.ExitStack() as files:
            if stderr_path is not None:
                stderr = files.enter_context(stderr_path.open("wb")).fileno()
            # This interpreter and fixed arguments, never input from elsewhere.
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "kitefan",
                "stream",
                "--config",
                str(config),
                *args,
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=stdout,
                stderr=stderr,
                env=environment,
            )
            stream = _Stream(process, config, environment, stderr_path)
            try:
                yield stream
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def _steady(stream: _Stream, sim: SimulatorProcess, seconds: float) -> dict[str, Any]:
    """Measure a streaming stream over ``seconds`` (see the module docstring)."""
    clock = time.perf_counter
    stats0 = await stream.stats()
    wall0, cpu0, sim0 = clock(), cpu_seconds(stream.pid), cpu_seconds(sim.pid)
    load0 = os.getloadavg()[0]
    lags: list[dict[str, Any]] = []
    end = wall0 + seconds
    while (now := clock()) < end:
        await asyncio.sleep(min(_LAG_EVERY_S, end - now))
        stats = await stream.stats()
        lags.append(stats["loop_lag"] or {})
    wall1, cpu1, sim1 = clock(), cpu_seconds(stream.pid), cpu_seconds(sim.pid)
    rss, peak = _status_mb(stream.pid)
    wall = wall1 - wall0
    totals0, totals1 = stats0["totals"], stats["totals"]
    return {
        "seconds": wall,
        "load_average": max(load0, os.getloadavg()[0]),
        "ticks": totals1["ticks"] - totals0["ticks"],
        "ticks_per_s": (totals1["ticks"] - totals0["ticks"]) / wall,
        "cpu_share": (cpu1 - cpu0) / wall if cpu0 is not None and cpu1 is not None else None,
        "simulator_cpu_share": (
            (sim1 - sim0) / wall if sim0 is not None and sim1 is not None else None
        ),
        "rss_mb": rss,
        "rss_peak_mb": peak,
        "loop_lag_ms": _worst(lags),
        "loop_lag_windows": lags,
        "drops": totals1["drops"] - totals0["drops"],
        "reconnects": totals1["reconnects"] - totals0["reconnects"],
    }


def _worst(windows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The largest p99 and max over the stream's 10-second lag windows."""
    p99s = [w["recent_p99_ms"] for w in windows if w.get("recent_p99_ms") is not None]
    maxes = [w["recent_max_ms"] for w in windows if w.get("recent_max_ms") is not None]
    return {"p99": max(p99s, default=None), "max": max(maxes, default=None)}


async def _jsonl(setup: _Setup, sim: SimulatorProcess, seconds: float) -> dict[str, Any]:
    args = ["--format", "jsonl"]
    async with _stream(setup, sim.url, args, stdout=subprocess.DEVNULL) as s:
        await s.streaming(len(setup.tokens), len(setup.names) * setup.connections)
        await asyncio.sleep(setup.warmup_s)
        run = await _steady(s, sim, seconds)
        run["summary"] = await s.stop()
    return run


async def _dashboard(setup: _Setup, sim: SimulatorProcess, seconds: float) -> dict[str, Any]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", _ROWS, _COLUMNS, 0, 0))
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    shown = bytearray()
    read = 0

    def drain() -> None:
        nonlocal read
        try:
            chunk = os.read(master, 1 << 16)
        except BlockingIOError:
            return
        except OSError:  # EIO: every process holding the terminal has closed it
            loop.remove_reader(master)
            return
        if not chunk:
            loop.remove_reader(master)
            return
        read += len(chunk)
        shown.extend(chunk)
        del shown[: -(1 << 16)]

    loop.add_reader(master, drain)
    env = {"TERM": "xterm-256color"}
    try:
        async with _stream(
            setup, sim.url, ["--format", "live"], stdout=slave, stdin=slave, stderr=slave, env=env
        ) as s:
            os.close(slave)
            slave = -1
            await s.streaming(len(setup.tokens), len(setup.names) * setup.connections)
            await asyncio.sleep(setup.warmup_s)
            before = read
            run = await _steady(s, sim, seconds)
            run["terminal_bytes_per_s"] = (read - before) / run["seconds"]
            await s.stop()
            # The last of what it wrote (the summary line), once it has exited.
            with contextlib.suppress(OSError):
                while chunk := os.read(master, 1 << 16):
                    shown.extend(chunk)
            run["summary"] = parse_summary(_ANSI.sub(b"", bytes(shown)).decode(errors="replace"))
    finally:
        loop.remove_reader(master)
        os.close(master)
        if slave >= 0:
            os.close(slave)
    return run


class _Reader(threading.Thread):
    """Reads a pipe as fast as it can, except while paused; counts the bytes."""

    def __init__(self, fd: int) -> None:
        super().__init__(name="kitefan-bench-reader", daemon=True)
        self.fd = fd
        self.bytes = 0
        self.reading = threading.Event()
        self.reading.set()

    def run(self) -> None:
        while self.reading.wait():
            try:
                chunk = os.read(self.fd, 1 << 20)
            except OSError:
                return
            if not chunk:
                return
            self.bytes += len(chunk)


async def _slow_reader(
    setup: _Setup, sim: SimulatorProcess, stall_s: float, resume_s: float
) -> dict[str, Any]:
    read_end, write_end = os.pipe()
    reader = _Reader(read_end)
    reader.start()
    try:
        async with _stream(setup, sim.url, ["--format", "jsonl"], stdout=write_end) as s:
            os.close(write_end)
            write_end = -1
            await s.streaming(len(setup.tokens), len(setup.names) * setup.connections)
            await asyncio.sleep(setup.warmup_s)
            load0 = os.getloadavg()[0]
            before = await s.stats()
            reader.reading.clear()
            await asyncio.sleep(stall_s)
            stalled = await s.stats()
            resumed_at = time.perf_counter()
            bytes0 = reader.bytes
            reader.reading.set()
            answers: list[float] = []
            end = resumed_at + resume_s
            while time.perf_counter() < end:
                _, took = await s.fresh_stats()
                answers.append(took * 1000)
                await asyncio.sleep(max(0.0, min(_STATS_EVERY_S - took, end - time.perf_counter())))
            after = await s.stats()
            read_bytes = reader.bytes - bytes0
            summary = await s.stop()
    finally:
        reader.reading.set()
        if write_end >= 0:
            os.close(write_end)
        reader.join(10)
        os.close(read_end)
    answers.sort()
    totals0, totals1 = before["totals"], after["totals"]
    return {
        "load_average": max(load0, os.getloadavg()[0]),
        "stall": {"seconds": stall_s, "loop_lag_ms": _worst([stalled["loop_lag"] or {}])},
        "resume": {
            "seconds": resume_s,
            "loop_lag_ms": _worst([after["loop_lag"] or {}]),
            "bytes_read": read_bytes,
        },
        "loop_lag_since_start_ms": (after["loop_lag"] or {}).get("max_ms"),
        "reconnects": totals1["reconnects"] - totals0["reconnects"],
        "drops": totals1["drops"] - totals0["drops"],
        "stats_answer_ms": {
            "answers": len(answers),
            "p50": statistics.median(answers) if answers else None,
            "max": answers[-1] if answers else None,
        },
        "summary": summary,
    }


async def _max_rate(setup: _Setup, sim: SimulatorProcess, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kitefan-bench-out-") as tmp:
        path = Path(tmp) / "out.jsonl"
        with path.open("wb") as out:
            async with _stream(setup, sim.url, ["--format", "jsonl"], stdout=out.fileno()) as s:
                await s.streaming(len(setup.tokens), len(setup.names) * setup.connections)
                await asyncio.sleep(min(setup.warmup_s, 2.0))
                size0, at0 = path.stat().st_size, time.perf_counter()
                run = await _steady(s, sim, seconds)
                size1, at1 = path.stat().st_size, time.perf_counter()
                summary = await s.stop()
        lines = size = 0
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                lines += chunk.count(b"\n")
                size += len(chunk)
    run["summary"] = summary
    run["lines"] = lines
    run["bytes_per_line"] = size / lines if lines else None
    if summary is not None and summary["seconds"] > 0:
        run["lines_per_s"] = lines / summary["seconds"]
        run["summary_received_per_s"] = summary["received"] / summary["seconds"]
    if lines:
        run["lines_per_s_span"] = (size1 - size0) / (size / lines) / (at1 - at0)
    return run
