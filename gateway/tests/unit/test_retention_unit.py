from datetime import date

from flock_gateway.indices import IndexNames
from flock_gateway.storage.retention import expired_indices, index_day


def test_index_day():
    assert index_day("flock-results-2026.11.27", "flock", "results") == date(2026, 11, 27)
    assert index_day("flock-results-2026.13.01", "flock", "results") is None
    assert index_day("flock-results-latest", "flock", "results") is None
    assert index_day("other-results-2026.11.27", "flock", "results") is None


def test_expired_indices():
    names = IndexNames("flock")
    indices = [
        "flock-results-2026.08.28",  # exactly 91 days before 2026-11-27
        "flock-results-2026.08.29",  # 90 days: kept
        "flock-agent-logs-2025.01.01",
        "flock-status-2026.01.01",
        "flock-results-2026.11.27",
        "flock-agents",
        "flock-results-notadate",
    ]
    assert expired_indices(indices, names, 90, date(2026, 11, 27)) == [
        "flock-agent-logs-2025.01.01",
        "flock-results-2026.08.28",
        "flock-status-2026.01.01",
    ]


def test_week_and_month_indices_expire_after_their_last_day():
    names = IndexNames("flock")
    indices = [
        "flock-results-2026.w35",  # ends Sun 2026-08-30
        "flock-results-2026.w36",  # ends Sun 2026-09-06
        "flock-status-2026.08",  # ends 2026-08-31
        "flock-status-2026.09",
        "flock-results-2026.w5",  # not ours
    ]
    today = date(2026, 12, 1)  # cutoff 2026-09-02 with 90 days
    assert expired_indices(indices, names, 90, today) == [
        "flock-results-2026.w35",
        "flock-status-2026.08",
    ]
    assert index_day("flock-results-2026.w53", "flock", "results") == date(2027, 1, 3)
    assert index_day("flock-results-2027.w53", "flock", "results") is None  # no such week
    assert index_day("flock-results-2026.13", "flock", "results") is None
