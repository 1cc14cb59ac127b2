"""The merge's figures as scripts, people and Prometheus see them: the stats document, the line
of ``kitefan stats`` and the stream's summary, and the three metrics."""

from __future__ import annotations

from kitefan.metrics import FeedCollector
from kitefan.render.stats import redundancy_text
from kitefan.stats import FeedStats, RedundancyStats

REDUNDANCY = RedundancyStats(
    redundancy=2,
    delivered=5400,
    duplicates={"alpha": 2700, "bravo": 2690},
    missed={"alpha": 0, "bravo": 10},
    pending=40,
)


def test_the_document_has_the_figures_only_with_redundancy() -> None:
    plain = FeedStats(keys=(), updated_at=1.0, uptime_s=2.0)
    assert "redundancy" not in plain.as_dict()
    document = FeedStats(keys=(), updated_at=1.0, uptime_s=2.0, redundancy=REDUNDANCY).as_dict()
    assert document["redundancy"] == {
        "redundancy": 2,
        "delivered": 5400,
        "duplicates": {"alpha": 2700, "bravo": 2690},
        "missed": {"alpha": 0, "bravo": 10},
        "one_sided": 10,
        "pending": 40,
    }


def test_the_line_names_the_keys_that_missed() -> None:
    assert redundancy_text(REDUNDANCY.as_dict()) == (
        "redundancy 2: 5,400 ticks once, 5,390 duplicates dropped, "
        "10 one-sided (missed by bravo 10)"
    )
    clean = RedundancyStats(2, 3, {"a": 3, "b": 0}, {"a": 0, "b": 0}, 0)
    assert redundancy_text(clean.as_dict()) == (
        "redundancy 2: 3 ticks once, 3 duplicates dropped, 0 one-sided"
    )


def test_the_metrics_count_per_key() -> None:
    stats = FeedStats(keys=(), updated_at=1.0, uptime_s=2.0, redundancy=REDUNDANCY)
    got = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in FeedCollector(lambda: stats).collect()
        for sample in family.samples
        if sample.name.startswith("kitefan_redundant")
    }
    assert got == {
        ("kitefan_redundant_ticks_total", ()): 5400,
        ("kitefan_redundant_duplicates_total", (("key", "alpha"),)): 2700,
        ("kitefan_redundant_duplicates_total", (("key", "bravo"),)): 2690,
        ("kitefan_redundant_missed_total", (("key", "alpha"),)): 0,
        ("kitefan_redundant_missed_total", (("key", "bravo"),)): 10,
    }
