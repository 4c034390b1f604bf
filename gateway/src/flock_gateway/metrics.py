"""Process-local counters, exposed at /metrics in Prometheus text format.

Only counts (requests, rows stored/refused, enrollments): never agent names, hosts or
stored data. Each gunicorn worker counts its own requests (the ``pid`` label); sum them.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Mapping

_HELP = {
    "flock_rows_stored_total": "Rows stored (including resent duplicates), by API.",
    "flock_rows_refused_total": "Rows not stored by policy, by API and reason.",
    "flock_rows_expired_total": "Rows older than the retention period, not stored.",
    "flock_state_documents_total": "Current-state documents written (or already newer), by API.",
    "flock_state_unordered_total": "Result lines without a time of their own, kept out of the "
    "current state, by API.",
    "flock_rows_quarantined_total": "Lines that cannot be stored as sent, stored in "
    "quarantine form (flock.quarantine_reason, flock.raw_json), by API.",
    "flock_enroll_total": "osquery enrollment attempts, by result.",
    "flock_node_invalid_total": "osquery requests answered node_invalid, by endpoint.",
    "flock_storage_errors_total": "Requests answered 429/503 because storage failed, by reason "
    "(disk_full: Elasticsearch's disk is past its flood-stage watermark).",
    "flock_bulks_total": "Bulk requests to Elasticsearch (concurrent requests' rows share them).",
    "flock_bulk_rows_total": "Documents (rows and their current-state documents) sent in "
    "those bulk requests.",
    "flock_storage_read_only_indices": "The gateway's indices Elasticsearch has made read-only "
    "(disk past its flood-stage watermark); 0 when writes are accepted.",
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, value: int = 1, **labels: str) -> None:
        if value <= 0:
            return
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] += value

    def get(self, name: str, **labels: str) -> int:
        with self._lock:
            return self._counts[(name, tuple(sorted(labels.items())))]

    def render(
        self, more: Mapping[str, int] | None = None, gauges: Mapping[str, int] | None = None
    ) -> str:
        """The counters, ``more`` (counters kept elsewhere, by name) after them, then
        ``gauges`` (values read now, by name)."""
        pid = str(os.getpid())
        with self._lock:
            items = sorted(self._counts.items())
        items += [((name, ()), value) for name, value in (more or {}).items()]
        items += [((name, ()), value) for name, value in (gauges or {}).items()]
        lines: list[str] = []
        seen: set[str] = set()
        for (name, labels), value in items:
            if name not in seen:
                seen.add(name)
                kind = "gauge" if name in (gauges or {}) else "counter"
                lines.append(f"# HELP {name} {_HELP.get(name, name)}")
                lines.append(f"# TYPE {name} {kind}")
            label_text = ",".join(f'{k}="{v}"' for k, v in (*labels, ("pid", pid)))
            lines.append(f"{name}{{{label_text}}} {value}")
        return "\n".join(lines) + "\n"
