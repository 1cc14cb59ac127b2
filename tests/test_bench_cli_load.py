"""``kitefan bench cli`` measures ``kitefan stream`` from the outside and reports well-formed
figures. Functional only: a tiny load, and no speed is asserted (speed is measured by the
benchmark itself, never by tests)."""

from __future__ import annotations

import pytest

from kitefan.bench import Figure
from kitefan.bench.cli_load import CASES, parse_summary, run_cli_benchmark
from kitefan.render.bench import format_value

SUMMARY = (
    "kitefan: interrupted after 12.3 s: 1,234,567 ticks from 3 keys (27,000 symbols), "
    "1,234,000 written, 567 dropped, 2 events dropped, 1 reconnects, 0 undecodable frames\n"
)


def test_parse_summary_reads_every_figure_of_the_records_summary() -> None:
    assert parse_summary("some warning\n" + SUMMARY) == {
        "why": "interrupted",
        "seconds": 12.3,
        "received": 1_234_567,
        "written": 1_234_000,
        "dropped": 567,
        "dropped_events": 2,
        "reconnects": 1,
        "undecodable": 0,
    }


def test_parse_summary_reads_the_dashboards_summary_without_written() -> None:
    line = (
        "kitefan: terminated after 3.0 s: 90 ticks from 1 keys (50 symbols), 0 dropped, "
        "0 reconnects, 0 undecodable frames"
    )
    assert parse_summary(line) == {
        "why": "terminated",
        "seconds": 3.0,
        "received": 90,
        "written": None,
        "dropped": 0,
        "dropped_events": None,
        "reconnects": 0,
        "undecodable": 0,
    }
    assert parse_summary("kitefan: error: no keys\n") is None


def test_counts_and_line_rates_print_whole_with_thousands_separators() -> None:
    assert format_value(Figure("cli", "max rate: dropped", 1_054_977.0, "ticks")) == (
        "1,054,977 ticks"
    )
    assert format_value(Figure("cli", "max rate: lines/s", 9397.28, "lines/s")) == ("9,397 lines/s")


def test_an_unknown_case_is_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="unknown case 'everything'; choose from jsonl, "):
        run_cli_benchmark(cases=["everything"])


@pytest.mark.integration
def test_a_tiny_run_of_every_case_reports_every_figure() -> None:
    lines: list[str] = []
    result = run_cli_benchmark(
        seconds=0.5,
        warmup_s=0.2,
        keys=1,
        connections=1,
        tokens_per_connection=20,
        progress=lines.append,
    )
    assert [(f.name, f.unit, f.target) for f in result.figures()] == [
        ("jsonl: ticks/s", "ticks/s", ""),
        ("jsonl: CPU, one core", "%", "< 20 %"),
        ("jsonl: peak RSS", "MB", "< 150 MB"),
        ("jsonl: loop lag p99", "ms", "< 5 ms"),
        ("jsonl: loop lag max", "ms", "< 50 ms"),
        ("jsonl: dropped", "ticks", "0"),
        ("dashboard: ticks/s", "ticks/s", ""),
        ("dashboard: CPU, one core", "%", "< 15 %"),
        ("dashboard: peak RSS", "MB", ""),
        ("dashboard: loop lag p99", "ms", "< 5 ms"),
        ("dashboard: loop lag max", "ms", "< 50 ms"),
        ("dashboard: dropped", "ticks", ""),
        ("slow reader: lag max", "ms", "< 50 ms"),
        ("slow reader: lag p99", "ms", "< 5 ms"),
        ("slow reader: reconnects", "reconnects", ""),
        ("slow reader: dropped", "ticks", ""),
        ("slow reader: stats answer", "ms", ""),
        ("max rate: lines/s", "lines/s", ">= 200,000"),
        ("max rate: lines/s steady", "lines/s", ">= 200,000"),
        ("max rate: ticks/s", "ticks/s", ""),
        ("max rate: dropped", "ticks", ""),
    ]
    for figure in result.figures():
        assert figure.benchmark == "cli"
        assert figure.samples == 1
        if figure.target:
            assert isinstance(figure.ok, bool), figure
        else:
            assert figure.ok is None, figure
    assert len(lines) == 1 + len(CASES)
    assert lines[0].startswith("cli: 20 full symbols on 1 keys at --rate 2; ")
    assert [line.split(":")[1].strip() for line in lines[1:]] == list(CASES)

    details = result.as_dict()
    assert details["symbols"] == 20
    assert (details["stall_s"], details["resume_s"], details["max_rate_seconds"]) == (0.5,) * 3
    for case in CASES:
        (run,) = details["runs"][case]
        summary = run["summary"]
        assert summary is not None, case
        assert summary["why"] == "interrupted"
        assert summary["reconnects"] == 0
        if case == "dashboard":
            # Read back from the pseudo-terminal: the live format writes no records.
            assert summary["written"] is None
            assert run["terminal_bytes_per_s"] > 0
        else:
            assert summary["written"] + summary["dropped"] == summary["received"]
    jsonl = details["runs"]["jsonl"][0]
    assert jsonl["ticks"] > 0
    assert jsonl["rss_peak_mb"] >= jsonl["rss_mb"] > 0
    assert jsonl["loop_lag_windows"][-1]["samples"] > 0
    slow = details["runs"]["slow-reader"][0]
    assert slow["reconnects"] == 0
    assert slow["stats_answer_ms"]["answers"] >= 1
    max_rate = details["runs"]["max-rate"][0]
    # Every line in the file is a record the summary counted as written (ticks and events).
    assert max_rate["lines"] >= max_rate["summary"]["written"] > 0
