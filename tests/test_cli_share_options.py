"""``kitefan stream --share`` refuses, in one line and before anything connects, what it cannot
share: no Redis for the leases, the demo, a lease too short to close a key in time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_configs import config_file
from processes import invoke


def config(path: Path, tuning: str = "") -> Path:
    return config_file(
        path,
        'url = "ws://127.0.0.1:9"\n'
        f"{tuning}\n"
        '[[keys]]\nid = "alpha"\napi_key = "SENTINEL-api-key-alpha"\n'
        'access_token = "SENTINEL-token-alpha-0001"\n'
        "[symbols]\nquote = [256265]\n",
    )


@pytest.mark.parametrize(
    ("args", "tuning", "error"),
    [
        (
            [],
            "",
            "error: --share: needs a Redis to hold the keys' leases: add "
            "--publish redis://HOST[:PORT][/DB] (or [publish] url in the config)",
        ),
        (
            ["--publish", "redis://127.0.0.1:9/0"],
            "[tuning]\nshare_lease_s = 2\n",
            "error: --share: a share lease of 2 s is too short to close a "
            "key's connections (2 s, tuning.close_timeout_s) before it can pass on: make "
            "tuning.share_lease_s at least 5.2",
        ),
    ],
)
def test_what_share_cannot_work_with_is_a_usage_error(
    args: list[str], tuning: str, error: str, tmp_path: Path, runtime_dir: Path
) -> None:
    path = config(tmp_path / "k.toml", tuning)
    result = invoke("stream", "--config", str(path), "--format", "none", "--share", *args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [error]
    assert os.listdir(runtime_dir) == []  # refused before the control socket was made


def test_the_demo_has_nothing_to_share(runtime_dir: Path) -> None:
    result = invoke("stream", "--demo", "--share", "--publish", "redis://127.0.0.1:9/0")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: --share: the demo runs a simulator of its own in each process: nothing to share"
    ]
