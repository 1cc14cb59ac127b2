"""``kitefan bench fanout`` runs both pipelines through a real redis-server and reports every
figure. Functional only: no speed is asserted (the benchmark measures it)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pytest
from processes import invoke

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(180)  # two pipelines of four processes each, the official client's included
def test_bench_fanout_reports_both_sides_of_both_pipelines() -> None:
    if shutil.which("redis-server") is None or importlib.util.find_spec("redis") is None:
        if os.environ.get("CI"):
            pytest.fail("CI runs every test: needs redis-server and redis-py")
        pytest.skip("needs redis-server and redis-py (pip install -e '.[redis]')")
    result = invoke("bench", "fanout", "--rounds", "1", "--seconds", "0.5", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["command"] == "kitefan bench fanout --rounds 1 --seconds 0.5"
    names = [f["name"] for f in report["figures"] if f["benchmark"] == "fanout"]
    assert names[:4] == [
        "kitefan ticks/s through Redis",
        "kitefan publish CPU per 100k ticks",
        "kitefan tail CPU per 100k ticks",
        "kitefan redis CPU per 100k ticks",
    ]
    first = report["figures"][0]
    assert (first["target"], first["unit"], first["samples"]) == (">= 200,000", "ticks/s", 1)
    assert first["value"] > 0
    runs = report["details"]["fanout"]["runs"]
    assert len(runs["kitefan"]) == 1
    run = runs["kitefan"][0]
    assert run["tail"]["ticks"] > 0
    assert run["publish"]["ticks"] > 0
    assert run["publish_dropped_ticks"] == 0
    assert "fanout round 1/1: kitefan " in result.stderr
    if "kiteconnect on_ticks + XADD per tick" in runs:
        assert names[-1] == "kitefan / baseline ticks/s"
