"""The publisher's figures where a running stream's figures are shown: the stats document
(``kitefan stats --format json``), the Prometheus metrics, and ``kitefan stats``' view."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry, generate_latest
from test_metrics import STATS, samples
from test_render_stats import text_of

from kitefan.metrics import FeedCollector
from kitefan.render.stats import stats_view
from kitefan.stats import PublishStats

PUBLISH = PublishStats(
    url="redis://:SENT…78@127.0.0.1:6379/0",
    stream="kitefan:frames",
    state="down",
    published_entries=1200,
    published_ticks=45_000,
    dropped_ticks=3_100,
    dropped_events=2,
    buffered_entries=40,
    buffered_bytes=8192,
    reconnects=1,
    last_error="Connection refused",
)
PUBLISHING = dataclasses.replace(STATS, publish=PUBLISH)


def test_the_document_has_publish_only_while_publishing() -> None:
    assert "publish" not in STATS.as_dict()
    assert PUBLISHING.as_dict()["publish"] == {
        "url": "redis://:SENT…78@127.0.0.1:6379/0",
        "stream": "kitefan:frames",
        "state": "down",
        "published_entries": 1200,
        "published_ticks": 45_000,
        "dropped_ticks": 3_100,
        "dropped_events": 2,
        "buffered_entries": 40,
        "buffered_bytes": 8192,
        "reconnects": 1,
        "last_error": "Connection refused",
    }
    assert {k: v for k, v in PUBLISHING.as_dict().items() if k != "publish"} == STATS.as_dict()


def scraped(stats: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FeedCollector(lambda: stats))  # type: ignore[arg-type, return-value]  # a stats stand-in
    return samples(generate_latest(registry).decode())


def test_the_metrics_count_what_was_published_and_dropped() -> None:
    got = scraped(PUBLISHING)
    label = (("stream", "kitefan:frames"),)
    assert {k: v for k, v in got.items() if k[0].startswith("kitefan_publish_")} == {
        ("kitefan_publish_entries_total", label): 1200,
        ("kitefan_publish_ticks_total", label): 45_000,
        ("kitefan_publish_dropped_ticks_total", label): 3_100,
        ("kitefan_publish_dropped_events_total", label): 2,
        ("kitefan_publish_reconnects_total", label): 1,
        ("kitefan_publish_up", label): 0,
        ("kitefan_publish_buffered_bytes", label): 8192,
    }
    assert not [k for k in scraped(STATS) if k[0].startswith("kitefan_publish_")]


def test_kitefan_stats_shows_a_line_of_publishing() -> None:
    text = text_of(stats_view(PUBLISHING.as_dict(), source="s"), width=200)
    assert (
        "publishing to redis://:SENT…78@127.0.0.1:6379/0 kitefan:frames: down, 45,000 ticks in "
        "1,200 entries, 3,100 ticks and 2 events dropped, 1 reconnects (Connection refused)"
    ) in text
    assert "publishing to" not in text_of(stats_view(STATS.as_dict(), source="s"), width=200)
