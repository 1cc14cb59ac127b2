"""The ``[publish]`` table and Redis URLs: what a valid table becomes, the exact message of every
problem, and the password masked wherever it is shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_configs import config_file

from kitefan.config import (
    DEFAULT_PUBLISH_MAXLEN,
    DEFAULT_PUBLISH_STREAM,
    PublishConfig,
    RedisURL,
    dump_config,
    load_config,
    parse_redis_url,
)
from kitefan.errors import ConfigError

KEYS = '[[keys]]\nid = "a"\napi_key = "SENTINELAPIKEY42"\naccess_token = "${TOKEN}"\n'
SYMBOLS = "[symbols]\nquote = [408065]\n"
SECRET = "SENTINEL-redis-pass-5678"
ENV = {"TOKEN": "SENTINELTOKEN5432", "REDIS_PASSWORD": SECRET}


def load(tmp_path: Path, publish: str) -> PublishConfig | None:
    # A [publish] table goes last; a top-level setting first, where TOML keeps it top-level.
    text = KEYS + SYMBOLS + publish if publish.startswith("[") else publish + KEYS
    path = config_file(tmp_path / "kitefan.toml", text)
    return load_config(path, environ=ENV).publish


def problems(tmp_path: Path, publish: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, publish)
    return caught.value.problems


def test_no_publish_table_publishes_nothing(tmp_path: Path) -> None:
    assert load(tmp_path, "") is None


def test_a_table_with_a_url_from_the_environment(tmp_path: Path) -> None:
    publish = load(
        tmp_path,
        '[publish]\nurl = "redis://feed:${REDIS_PASSWORD}@10.0.0.5:6380/2"\n'
        'stream = "md:frames"\nmaxlen = 5000\nformat = "json"\n',
    )
    assert publish == PublishConfig(
        RedisURL("redis", "10.0.0.5", 6380, 2, "feed", SECRET), "md:frames", 5000, "json"
    )
    assert SECRET not in repr(publish)
    assert str(publish.url) == "redis://feed:SENT…78@10.0.0.5:6380/2"


def test_the_defaults(tmp_path: Path) -> None:
    publish = load(tmp_path, '[publish]\nurl = "redis://localhost"\n')
    assert publish == PublishConfig(RedisURL("redis", "localhost"), "kitefan:frames", 1_000_000)
    assert (DEFAULT_PUBLISH_STREAM, DEFAULT_PUBLISH_MAXLEN) == ("kitefan:frames", 1_000_000)
    assert publish.format == "frame"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '[publish]\nurl = "http://:${REDIS_PASSWORD}@h"\n',
            [
                "publish.url: must be redis://[[user]:password@]HOST[:PORT][/DB] "
                "(or rediss:// for TLS)"
            ],
        ),
        (
            '[publish]\nurl = "redis://:${REDIS_PASSWORD}@h:99999"\n',
            ["publish.url: the port must be a number from 1 to 65535"],
        ),
        (
            '[publish]\nurl = "redis://:${REDIS_PASSWORD}@h/x"\n',
            ["publish.url: the database must be a number (/0, /1, ...), not /x"],
        ),
        (
            '[publish]\nurl = "redis://${NOPE}"\n',
            ["publish.url: environment variable NOPE is not set"],
        ),
        ("[publish]\nurl = 5\n", ["publish.url: must be a string"]),
        (
            '[publish]\nstream = "s"\n',
            ['publish.url: missing; give url = "redis://HOST[:PORT][/DB]"'],
        ),
        (
            '[publish]\nurl = "redis://h"\nmaxlen = 0\nformat = "xml"\nstream = " "\nmax = 1\n',
            [
                "publish.max: unknown key (did you mean maxlen?)",
                "publish.stream: must not be empty",
                "publish.maxlen: must be a positive integer, not 0",
                'publish.format: must be one of frame, json, not "xml"',
            ],
        ),
        (
            '[publish]\nurl = "redis://h"\nmaxlen = true\n',
            ["publish.maxlen: must be a positive integer, not true"],
        ),
        ('publish = "redis://h"\n', ["publish: must be a table ([publish])"]),
    ],
)
def test_each_problem_has_its_place_and_never_the_password(
    tmp_path: Path, table: str, expected: list[str]
) -> None:
    found = problems(tmp_path, table)
    assert found == expected
    assert all(SECRET not in problem for problem in found)


def test_config_show_masks_the_password(tmp_path: Path) -> None:
    path = config_file(
        tmp_path / "kitefan.toml",
        KEYS + SYMBOLS + '[publish]\nurl = "rediss://:${REDIS_PASSWORD}@r.example"\n',
    )
    shown = dump_config(load_config(path, environ=ENV))
    assert SECRET not in shown
    assert shown.endswith(
        '[publish]\nurl = "rediss://:SENT…78@r.example:6379/0"\nstream = "kitefan:frames"\n'
        'maxlen = 1000000\nformat = "frame"\n'
    )


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("redis://h", RedisURL("redis", "h")),
        ("REDIS://h:7000/3", RedisURL("redis", "h", 7000, 3)),
        ("redis://u:p%40ss@h", RedisURL("redis", "h", 6379, 0, "u", "p@ss")),
        ("redis://:pw@h/", RedisURL("redis", "h", 6379, 0, None, "pw")),
        ("redis://pw@h", RedisURL("redis", "h", 6379, 0, None, "pw")),
        ("rediss://[::1]:6390/1", RedisURL("rediss", "::1", 6390, 1)),
    ],
)
def test_redis_urls(text: str, url: RedisURL) -> None:
    assert parse_redis_url(text) == url


def test_a_url_is_shown_with_its_password_masked() -> None:
    assert parse_redis_url("rediss://[::1]:6390/1").shown == "rediss://[::1]:6390/1"
    # With no colon, what comes before the @ is taken as the password: it is masked.
    assert parse_redis_url("redis://longpassword@h").shown == "redis://:long…rd@h:6379/0"
    assert RedisURL("redis", "h", username="u").shown == "redis://u@h:6379/0"
    assert parse_redis_url("redis://:short@h").shown == "redis://:…@h:6379/0"
    assert repr(parse_redis_url("redis://:abcdefgh@h")) == (
        "RedisURL(scheme='redis', host='h', port=6379, db=0, username=None)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("redis://", "names no host: give redis://HOST[:PORT][/DB]"),
        ("redis://:pw@", "names no host: give redis://HOST[:PORT][/DB]"),
        ("redis://h:x", "the port must be a number from 1 to 65535"),
        ("h:6379", "must be redis://[[user]:password@]HOST[:PORT][/DB] (or rediss:// for TLS)"),
    ],
)
def test_bad_urls(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_redis_url(text)
    assert str(caught.value) == message
