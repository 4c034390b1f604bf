"""Turn validated result lines into Elasticsearch documents with retry-safe ids.

* ``@timestamp`` comes from the row's own ``unixTime`` (UTC); rows without one get the
  receipt time.
* The daily index is derived from that timestamp, and the document id from the agent, the
  row's canonical JSON and its occurrence number among identical rows of the same request.
  A batch re-sent after a timeout therefore maps to the same index + id pairs and, written
  with ``op_type=create``, is stored once.
* Snapshot results (``"snapshot": [...]``) are expanded to one document per row.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import fields

# Rows stamped further in the future than this (a laptop with a wrong clock) are still
# stored, under the receipt day, so that one bad clock cannot create far-future indices.
MAX_FUTURE = timedelta(days=2)


@dataclass(frozen=True)
class Doc:
    index: str
    id: str
    source: dict[str, Any]


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def doc_id(username: str, kind: str, canonical_row: str, occurrence: int) -> str:
    digest = hashlib.sha256()
    for part in (username, kind, canonical_row, str(occurrence)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:40]


def parse_epoch(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def row_time(unix_seconds: float | None, received: datetime) -> datetime:
    """The row's own time if sane, else the receipt time."""
    if unix_seconds is None:
        return received
    try:
        ts = datetime.fromtimestamp(unix_seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return received
    if ts > received + MAX_FUTURE or ts.year < 1971:
        return received
    return ts


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def daily_index(prefix: str, kind: str, ts: datetime) -> str:
    return f"{prefix}-{kind}-{ts:%Y.%m.%d}"


@dataclass
class Tag:
    username: str
    name: str
    source: str  # fields.FLOCK_AGENT or fields.OSQUERY


class DocumentBuilder:
    """Builds docs for one request; tracks occurrences of identical rows for the ids.

    Rows older than the retention period are not stored (they would be deleted by the
    next prune anyway, and each one could otherwise create a stale daily index); they
    are counted in ``expired``.
    """

    def __init__(
        self,
        prefix: str,
        tag: Tag,
        retention_days: int,
        received: datetime | None = None,
    ) -> None:
        self.prefix = prefix
        self.tag = tag
        self.received = received or datetime.now(tz=UTC)
        self.oldest = (self.received - timedelta(days=retention_days)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.expired = 0
        self._seen: Counter[str] = Counter()

    def _flock(self) -> dict[str, Any]:
        return {
            fields.USERNAME: self.tag.username,
            fields.NAME: self.tag.name,
            fields.SOURCE: self.tag.source,
            fields.RECEIVED_AT: iso(self.received),
        }

    def _make(
        self, kind: str, row: dict[str, Any], ts: datetime, identity: Any = None
    ) -> Doc | None:
        if ts < self.oldest:
            self.expired += 1
            return None
        canon = canonical(row if identity is None else identity)
        key = f"{kind}\x00{canon}"
        occurrence = self._seen[key]
        self._seen[key] += 1
        source = dict(row)
        source[fields.TIMESTAMP] = iso(ts)
        source[fields.GATEWAY] = self._flock()
        return Doc(
            index=daily_index(self.prefix, kind, ts),
            id=doc_id(self.tag.username, kind, canon, occurrence),
            source=source,
        )

    def results(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """osquery result lines (differential or snapshot) -> one doc per row."""
        docs: list[Doc | None] = []
        for item in items:
            ts = row_time(parse_epoch(item.get("unixTime")), self.received)
            if isinstance(item.get("snapshot"), list):
                base = {k: v for k, v in item.items() if k != "snapshot"}
                base.setdefault("action", "snapshot")
                base_digest = hashlib.sha256(canonical(base).encode("utf-8")).hexdigest()
                for position, row in enumerate(item["snapshot"]):
                    expanded = {**base, "columns": row}
                    # the row's position keeps identical rows of one snapshot apart
                    identity = ["snapshot", base_digest, position, row]
                    docs.append(self._make("results", expanded, ts, identity=identity))
            else:
                docs.append(self._make("results", item, ts))
        return [d for d in docs if d is not None]

    def agent_logs(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """Flock agent event log lines; ``timestamp`` is in milliseconds."""
        docs = []
        for item in items:
            ms = parse_epoch(item.get("timestamp"))
            seconds = ms / 1000 if ms is not None and abs(ms) < 10**15 else None
            ts = row_time(seconds, self.received)
            docs.append(self._make("agent-logs", item, ts))
        return [d for d in docs if d is not None]

    def status(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """osquery status log lines."""
        docs = [
            self._make("status", item, row_time(parse_epoch(item.get("unixTime")), self.received))
            for item in items
        ]
        return [d for d in docs if d is not None]
