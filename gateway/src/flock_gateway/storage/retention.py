"""Retention: delete indices whose days are all older than N days.

ILM and data-stream lifecycles are x-pack features the open node lacks, so the gateway's
``prune`` command (run daily by a systemd timer) does it: the index for day D (or the
ISO week / month containing D, see ``index_granularity``) holds rows stamped on day D
(UTC), and is deleted once its last day is more than ``retention_days`` days before
today. Indices of every granularity are recognised, so changing it loses nothing.

Beside the age, an optional disk budget (``retention_max_bytes``): while the daily
indices together (replicas included) take more than that, the oldest go first, oldest
day first; an index whose period includes today (or a later day) is never deleted, since
rows are being written to it.

The current-state index (``<prefix>-state``) is not dated and never deleted; each prune
takes from it the tombstones older than the retention and the rows of revoked hosts
(see :mod:`.state_prune`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from ..indices import DAILY_KINDS, IndexNames
from .errors import translate_errors
from .state_prune import prune_tombstones, sweep_revocations


def index_day(index: str, prefix: str, kind: str) -> date | None:
    """The last day an index holds rows of (day, ISO week or month index), else None."""
    head = f"{prefix}-{kind}-"
    if not index.startswith(head):
        return None
    suffix = index[len(head) :]
    try:
        if ".w" in suffix:
            year, week = suffix.split(".w")
            if len(week) != 2:
                return None
            return date.fromisocalendar(int(year), int(week), 7)
        if suffix.count(".") == 1:
            first = datetime.strptime(suffix, "%Y.%m").date()
            return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return datetime.strptime(suffix, "%Y.%m.%d").replace(tzinfo=UTC).date()
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


def over_budget(sizes: dict[str, int], names: IndexNames, max_bytes: int, today: date) -> list[str]:
    """The oldest indices to delete so that the rest take at most ``max_bytes``; never an
    index whose last day is today or later. Indices not named as the gateway names them
    count towards the total but are never chosen."""
    dated = []
    for index in sizes:
        for kind in DAILY_KINDS:
            day = index_day(index, names.prefix, kind)
            if day is not None:
                dated.append((day, index))
                break
    total = sum(sizes.values())
    doomed = []
    for day, index in sorted(dated):
        if total <= max_bytes or day >= today:
            break
        doomed.append(index)
        total -= sizes[index]
    return doomed


@translate_errors
def daily_index_sizes(client: Elasticsearch, names: IndexNames) -> dict[str, int]:
    """Bytes on disk of each daily index, replicas included (index privilege monitor)."""
    pattern = ",".join(names.daily_pattern(kind) for kind in DAILY_KINDS)
    stats = client.indices.stats(index=pattern, metric="store", expand_wildcards="all")
    return {
        index: int(body["total"]["store"]["size_in_bytes"])
        for index, body in stats.body.get("indices", {}).items()
    }


@translate_errors
def list_daily_indices(client: Elasticsearch, names: IndexNames) -> list[str]:
    pattern = ",".join(names.daily_pattern(kind) for kind in DAILY_KINDS)
    # GET <pattern>/_settings needs only the index privilege view_index_metadata; _cat/indices
    # would also need the cluster privilege monitor, which the retention user does not have.
    found = client.indices.get_settings(
        index=pattern, name="index.uuid", expand_wildcards="all", allow_no_indices=True
    )
    return sorted(found.body)


@translate_errors
def prune(
    client: Elasticsearch,
    names: IndexNames,
    retention_days: int,
    *,
    today: date | None = None,
    dry_run: bool = False,
    max_bytes: int = 0,
) -> dict[str, Any]:
    today = today or datetime.now(tz=UTC).date()
    doomed = expired_indices(list_daily_indices(client, names), names, retention_days, today)
    _delete(client, doomed, dry_run)
    report: dict[str, Any] = {
        "retention_days": retention_days,
        "cutoff": (today - timedelta(days=retention_days)).isoformat(),
        "deleted": doomed,
    }
    if max_bytes:
        sizes = {
            index: size
            for index, size in daily_index_sizes(client, names).items()
            if index not in doomed
        }
        over = over_budget(sizes, names, max_bytes, today)
        _delete(client, over, dry_run)
        report.update(
            max_bytes=max_bytes,
            bytes=sum(size for index, size in sizes.items() if index not in over),
            deleted_for_budget=over,
        )
        doomed = doomed + over
    tombstones = prune_tombstones(client, names, today - timedelta(days=retention_days), dry_run)
    revoked = sweep_revocations(client, names, dry_run)
    report.update(
        state_tombstones_deleted=tombstones,
        state_revoked_deleted=revoked,
        dry_run=dry_run,
        changed=bool(doomed or tombstones or revoked) and not dry_run,
    )
    return report


def _delete(client: Elasticsearch, indices: list[str], dry_run: bool) -> None:
    if indices and not dry_run:
        for start in range(0, len(indices), 50):
            client.indices.delete(index=",".join(indices[start : start + 50]))
