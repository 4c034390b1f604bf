"""Retention: delete daily indices whose day is older than N days.

ILM and data-stream lifecycles are x-pack features the open node lacks, so the gateway's
``prune`` command (run daily by a systemd timer) does it: the index for day D holds rows
stamped on day D (UTC), and is deleted once D is more than ``retention_days`` days before
today.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from .errors import translate_errors
from .names import DAILY_KINDS, IndexNames


def index_day(index: str, prefix: str, kind: str) -> date | None:
    head = f"{prefix}-{kind}-"
    if not index.startswith(head):
        return None
    try:
        return datetime.strptime(index[len(head) :], "%Y.%m.%d").replace(tzinfo=UTC).date()
    except ValueError:
        return None


def expired_indices(
    indices: list[str], names: IndexNames, retention_days: int, today: date
) -> list[str]:
    cutoff = today - timedelta(days=retention_days)
    out = []
    for index in indices:
        for kind in DAILY_KINDS:
            day = index_day(index, names.prefix, kind)
            if day is not None and day < cutoff:
                out.append(index)
                break
    return sorted(out)


@translate_errors
def list_daily_indices(client: Elasticsearch, names: IndexNames) -> list[str]:
    pattern = ",".join(names.daily_pattern(kind) for kind in DAILY_KINDS)
    rows = client.cat.indices(index=pattern, format="json", h="index", expand_wildcards="all")
    return sorted(row["index"] for row in rows)  # type: ignore[index, union-attr]


@translate_errors
def prune(
    client: Elasticsearch,
    names: IndexNames,
    retention_days: int,
    today: date | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    today = today or datetime.now(tz=UTC).date()
    doomed = expired_indices(list_daily_indices(client, names), names, retention_days, today)
    if doomed and not dry_run:
        for start in range(0, len(doomed), 50):
            client.indices.delete(index=",".join(doomed[start : start + 50]))
    return {
        "retention_days": retention_days,
        "cutoff": (today - timedelta(days=retention_days)).isoformat(),
        "deleted": doomed,
        "dry_run": dry_run,
        "changed": bool(doomed) and not dry_run,
    }
