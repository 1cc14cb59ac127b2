"""The ``[record]`` table: what a valid table becomes, the exact message of every problem, and
what ``kitefan config show`` writes back."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_configs import config_file

from kitefan.config import RecordConfig, dump_config, load_config
from kitefan.errors import ConfigError
from kitefan.loader import UNUSABLE_SETTINGS

KEYS = '[[keys]]\nid = "a"\napi_key = "SENTINELAPIKEY42"\naccess_token = "SENTINELTOKEN5432"\n'
SYMBOLS = "[symbols]\nquote = [408065]\n"


def write(tmp_path: Path, record: str) -> Path:
    # A [record] table goes last; a top-level setting first, where TOML keeps it top-level.
    text = KEYS + SYMBOLS + record if record.startswith("[") else record + KEYS
    path = config_file(tmp_path / "kitefan.toml", text)
    return path


def load(tmp_path: Path, record: str, **env: str) -> RecordConfig | None:
    return load_config(write(tmp_path, record), environ=env).record


def test_no_record_table_records_nothing(tmp_path: Path) -> None:
    assert load(tmp_path, "") is None


def test_a_relative_path_is_the_config_files_directorys(tmp_path: Path) -> None:
    assert load(tmp_path, '[record]\npath = "ticks"\n') == RecordConfig(tmp_path / "ticks")
    assert load(tmp_path, '[record]\npath = "/data/${DAY}.kfr"\n', DAY="d1") == RecordConfig(
        Path("/data/d1.kfr")
    )


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            "[record]\n",
            [
                'record.path: missing; give path = "ticks/" (a directory: one file per day) '
                "or a file"
            ],
        ),
        ("[record]\npath = 5\n", ["record.path: must be a string, not 5"]),
        ('[record]\npath = ""\n', ["record.path: must not be empty"]),
        (
            '[record]\npath = "x"\npaht = "y"\n',
            ["record.paht: unknown key (did you mean path?)"],
        ),
        ('record = "ticks"\n', ["record: must be a table ([record])"]),
    ],
)
def test_each_problem_has_its_place(tmp_path: Path, table: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, table)
    assert caught.value.problems == expected


def test_an_unset_variable_is_no_problem_for_who_does_not_record(tmp_path: Path) -> None:
    path = write(tmp_path, '[record]\npath = "${NOT_SET}/ticks"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.problems == ["record.path: environment variable NOT_SET is not set"]
    assert "record" in UNUSABLE_SETTINGS
    assert load_config(path, environ={}, unused={"record"}).record is None


def test_config_show_writes_the_table_back(tmp_path: Path) -> None:
    shown = dump_config(load_config(write(tmp_path, '[record]\npath = "ticks"\n'), environ={}))
    assert shown.endswith(f'[record]\npath = "{tmp_path / "ticks"}"\n')
