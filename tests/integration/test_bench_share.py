"""``kitefan bench share`` kills the holder of a key among three ``--share`` streams and reports
the takeover. Functional only: no time is asserted but the benchmark's own safety counts."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pytest
from processes import invoke

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(120)
def test_bench_share_reports_the_takeover_and_that_no_key_had_two_holders() -> None:
    if shutil.which("redis-server") is None or importlib.util.find_spec("redis") is None:
        if os.environ.get("CI"):
            pytest.fail("CI runs every test: needs redis-server and redis-py")
        pytest.skip("needs redis-server and redis-py (pip install -e '.[redis]')")
    result = invoke("bench", "share", "--rounds", "1", "--seconds", "2", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert "share round 1/1: takeover after SIGKILL " in result.stderr
    report = json.loads(result.stdout)
    assert report["command"] == "kitefan bench share --rounds 1 --seconds 2"
    figures = {f["name"]: f for f in report["figures"]}
    takeover = figures["share takeover after SIGKILL"]
    assert (takeover["unit"], takeover["target"], takeover["samples"]) == ("s", "<= 15", 1)
    assert takeover["value"] > 0
    assert figures["share handshakes refused with 429"]["value"] == 0
    assert figures["share most connections of one key at once"]["value"] == 2
    details = report["details"]["share"]
    assert details["lease_s"] == 2.0 and len(details["takeovers_s"]) == 1
