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
