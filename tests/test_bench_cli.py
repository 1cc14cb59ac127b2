"""``kitefan bench`` runs and prints well-formed figures. Functional only: no timing is asserted
(speed is measured by the benchmarks themselves, never by tests)."""

from __future__ import annotations

import json

from processes import invoke


def test_bench_decode_json_has_every_figure_and_the_machine() -> None:
    result = invoke("bench", "decode", "--rounds", "1", "--seconds", "0.1", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"kitefan", "machine", "date", "command", "figures", "details"}
    assert report["command"] == "kitefan bench decode --rounds 1 --seconds 0.1"
    assert "cores" in report["machine"]
    names = [figure["name"] for figure in report["figures"]]
    assert names[:2] == ["kitefan decode_frame", "kitefan + as_dict()"]
    for figure in report["figures"]:
        assert set(figure) == {
            "benchmark",
            "name",
            "value",
            "unit",
            "target",
            "ok",
            "samples",
            "note",
        }
        assert figure["benchmark"] == "decode"
    decode = report["details"]["decode"]
    assert decode["rounds"] == 1
    assert decode["ticks"] > 0
    assert all(len(samples) == 1 for samples in decode["samples"].values())
    assert "decode round 1/1" in result.stderr


def test_bench_rejects_an_unknown_benchmark() -> None:
    result = invoke("bench", "everything")
    assert result.exit_code == 2
    assert result.stdout == ""


def test_bench_records_json_has_every_writer_and_the_ratios() -> None:
    result = invoke("bench", "records", "--rounds", "1", "--seconds", "0.05", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["command"] == "kitefan bench records --rounds 1 --seconds 0.05"
    figures = {figure["name"]: figure for figure in report["figures"]}
    assert list(figures) == [
        "official _parse_binary + json.dumps",
        "kitefan jsonl",
        "kitefan csv",
        "kitefan jsonl, pure Python",
        "kitefan jsonl / official",
        "kitefan csv / official",
    ]
    assert all(figure["benchmark"] == "records" for figure in figures.values())
    assert figures["kitefan jsonl / official"]["target"] == ">= 10x"
    assert figures["kitefan jsonl / official"]["value"] > 0
    records = report["details"]["records"]
    assert (records["ticks"], records["frames"], records["compiled"]) == (40_000, 400, True)
    assert all(len(samples) == 1 for samples in records["samples"].values())
    assert "records round 1/1" in result.stderr
