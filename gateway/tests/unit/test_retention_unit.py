from datetime import date

from flock_gateway.storage.names import IndexNames
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
