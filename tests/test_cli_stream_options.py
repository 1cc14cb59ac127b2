"""The dashboard's options of ``kitefan stream`` reject what they cannot show, in one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from processes import kitefan, run_sync


def stream(*args: str, runtime: Path) -> Any:
    return run_sync(
        *kitefan("stream", "--demo", "--format", "jsonl", *args),
        env={**os.environ, "KITEFAN_RUNTIME_DIR": str(runtime)},
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["--watch", "NSE:INFY,NSE:NOPE"],
            "error: --watch: 'NSE:NOPE' is not a symbol of this stream (give a "
            "token or EXCHANGE:TRADINGSYMBOL of the config's symbols)",
        ),
        (["--depth", "NSE:INFY,NSE:TCS"], "error: --depth: one symbol, not 2"),
        (
            ["--sort", "price"],
            "error: --sort price: use movers, active, volume or symbol; "
            "see `kitefan stream --help`",
        ),
    ],
)
def test_bad_dashboard_options_are_usage_errors(
    args: list[str], error: str, tmp_path: Path
) -> None:
    done = stream(*args, "--duration", "1", runtime=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", error + "\n")
