"""Benchmark figures as people and scripts see them: a Rich table and a JSON document.

Pure: a :class:`~kitefan.bench.report.BenchReport` in, a renderable or a string out.

Owns: ``bench_view``, ``bench_json``, ``format_value``. Must not import asyncio, websockets or
typer, or do any I/O.
"""

from __future__ import annotations

import json

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kitefan.bench import Figure
from kitefan.bench.report import BenchReport

__all__ = ["bench_json", "bench_view", "format_value"]


def format_value(figure: Figure) -> str:
    """The value with its unit, rounded as the unit deserves (``520,290 ticks/s``, ``7.8x``)."""
    value = figure.value
    if value is None:
        return "-"
    match figure.unit:
        case "ticks/s":
            return f"{value:,.0f} ticks/s"
        case "x":
            return f"{value:.1f}x"
        case "s":
            return f"{value:.3f} s"
        case "%":
            return f"{value:.1f} %"
        case "MB":
            return f"{value:.0f} MB"
        case "ms":
            return f"{value:.2f} ms"
        case "bytes":
            return f"{value:.1f} bytes"
        case "lines/s" | "ticks":
            return f"{value:,.0f} {figure.unit}"
        case _:
            return f"{value:g} {figure.unit}"


def _result(figure: Figure) -> Text:
    if figure.ok is None:
        return Text("")
    return Text("pass", style="green") if figure.ok else Text("short", style="bold red")


def bench_view(report: BenchReport) -> RenderableType:
    """The figures (median, target, pass or short, samples), what each covers, then the
    machine, the date and the command that reproduces them. Fits 80 columns."""
    figures = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    figures.add_column("figure", no_wrap=True)
    figures.add_column("median", justify="right", no_wrap=True)
    figures.add_column("target", no_wrap=True)
    figures.add_column("result", no_wrap=True)
    figures.add_column("n", justify="right")
    notes = Table(box=None, pad_edge=False, show_header=False)
    notes.add_column("figure", style="dim", no_wrap=True)
    notes.add_column("note", overflow="fold")
    last = ""
    for figure in report.figures:
        if figure.benchmark != last:
            figures.add_row(Text(figure.benchmark, style="bold"))
            last = figure.benchmark
        figures.add_row(
            f"  {figure.name}",
            format_value(figure),
            figure.target,
            _result(figure),
            str(figure.samples) if figure.samples else "",
        )
        if figure.note:
            notes.add_row(f"{figure.benchmark} {figure.name}", figure.note)
    footer = Text.assemble(
        ("machine: ", "dim"),
        report.machine,
        "\n",
        ("date:    ", "dim"),
        report.date,
        "\n",
        ("command: ", "dim"),
        report.command,
    )
    return Group(figures, Text(""), notes, Text(""), footer)


def bench_json(report: BenchReport) -> str:
    """The report as one JSON document (indented)."""
    return json.dumps(report.as_dict(), indent=2)
