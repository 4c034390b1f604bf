"""Turn validated result lines into Elasticsearch documents with retry-safe ids.

* Layout: the gateway owns the top level of every document (``@timestamp``, ``flock.*``);
  everything the client sent goes, unchanged, under ``data``. However a client spells a
  key (dotted, nested, escaped), it lands below ``data.`` and can never reach a field the
  gateway sets.
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

import orjson

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
    """Sorted keys, compact, UTF-8: the text a row's id is derived from.

    orjson writes the same text as ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` (the id scheme's definition) about 30 times faster, except for
    floats in exponent notation (``1e16``, not ``1e+16``); what orjson refuses (integers
    beyond 64 bits, non-string keys) goes through the standard library.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
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


def daily_index(prefix: str, kind: str, ts: datetime, granularity: str = "day") -> str:
    """The index of a row stamped ``ts``: one per UTC day (``2026.11.30``), ISO week
    (``2026.w48``) or month (``2026.11``)."""
    if granularity == "week":
        year, week, _ = ts.isocalendar()
        return f"{prefix}-{kind}-{year}.w{week:02d}"
    if granularity == "month":
        return f"{prefix}-{kind}-{ts:%Y.%m}"
    return f"{prefix}-{kind}-{ts:%Y.%m.%d}"


# The one top-level key holding what the client sent; every other top-level key is the
# gateway's own.
CLIENT_KEY = fields.CLIENT


@dataclass
class Tag:
    username: str
    name: str
    source: str  # fields.FLOCK_AGENT or fields.OSQUERY


@dataclass(frozen=True)
class Budget:
    """What one request may expand to: documents, and bytes of client data in them.

    A snapshot line expands to one document per row, each carrying the line's other
    fields, so a small body can ask for far more documents and memory than it weighs.
    Counting before building keeps the work per request proportional to the body.
    """

    max_docs: int = 20_000
    max_bytes: int = 64 * 1024 * 1024


class TooLarge(ValueError):
    """The request would expand beyond its budget; resending it unchanged cannot help."""


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
        *,
        budget: Budget | None = None,
        granularity: str = "day",
    ) -> None:
        self.prefix = prefix
        self.granularity = granularity
        self.tag = tag
        self.received = received or datetime.now(tz=UTC)
        self.oldest = (self.received - timedelta(days=retention_days)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.budget = budget or Budget()
        self.expired = 0
        self._docs = 0
        self._bytes = 0
        self._seen: Counter[str] = Counter()
        # the same for every document of the request: built once, shared (read-only)
        self._gateway = {
            fields.USERNAME: tag.username,
            fields.NAME: tag.name,
            fields.SOURCE: tag.source,
            fields.RECEIVED_AT: iso(self.received),
        }
        # rows of one request mostly share their timestamp: (index, @timestamp) per kind+ts
        self._stamps: dict[tuple[str, datetime], tuple[str, str]] = {}

    def _flock(self) -> dict[str, Any]:
        return self._gateway

    def _stamp(self, kind: str, ts: datetime) -> tuple[str, str]:
        key = (kind, ts)
        stamp = self._stamps.get(key)
        if stamp is None:
            stamp = (daily_index(self.prefix, kind, ts, self.granularity), iso(ts))
            self._stamps[key] = stamp
        return stamp

    def _spend(self, docs: int, size: int) -> None:
        self._docs += docs
        self._bytes += size
        if self._docs > self.budget.max_docs:
            raise TooLarge(
                f"the request expands to more than {self.budget.max_docs} rows: "
                "send smaller batches"
            )
        if self._bytes > self.budget.max_bytes:
            raise TooLarge(
                f"the request expands to more than {self.budget.max_bytes} bytes of rows: "
                "send smaller batches"
            )

    def _make(
        self,
        kind: str,
        row: dict[str, Any],
        ts: datetime,
        identity: Any = None,
        canon: str | None = None,
    ) -> Doc | None:
        if ts < self.oldest:
            self.expired += 1
            return None
        if canon is None:
            canon = canonical(row if identity is None else identity)
        key = f"{kind}\x00{canon}"
        occurrence = self._seen[key]
        self._seen[key] += 1
        index, stamp = self._stamp(kind, ts)
        source = {fields.TIMESTAMP: stamp, fields.GATEWAY: self._gateway, CLIENT_KEY: row}
        return Doc(
            index=index,
            id=doc_id(self.tag.username, kind, canon, occurrence),
            source=source,
        )

    def _plain(self, kind: str, item: dict[str, Any], ts: datetime) -> Doc | None:
        canon = canonical(item)
        self._spend(1, len(canon))
        return self._make(kind, item, ts, canon=canon)

    def results(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """osquery result lines (differential or snapshot) -> one doc per row."""
        docs: list[Doc | None] = []
        for item in items:
            ts = row_time(parse_epoch(item.get("unixTime")), self.received)
            if isinstance(item.get("snapshot"), list):
                rows = item["snapshot"]
                base = {k: v for k, v in item.items() if k != "snapshot"}
                base.setdefault("action", "snapshot")
                base_canon = canonical(base)
                # every row document repeats the base: charge for it before building any
                self._spend(len(rows), len(base_canon) * len(rows))
                base_digest = hashlib.sha256(base_canon.encode("utf-8")).hexdigest()
                for position, row in enumerate(rows):
                    expanded = {**base, "columns": row}
                    # the row's position keeps identical rows of one snapshot apart
                    identity = ["snapshot", base_digest, position, row]
                    canon = canonical(identity)
                    self._spend(0, len(canon))
                    docs.append(self._make("results", expanded, ts, canon=canon))
            else:
                docs.append(self._plain("results", item, ts))
        return [d for d in docs if d is not None]

    def agent_logs(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """Flock agent event log lines; ``timestamp`` is in milliseconds."""
        docs = []
        for item in items:
            ms = parse_epoch(item.get("timestamp"))
            seconds = ms / 1000 if ms is not None and abs(ms) < 10**15 else None
            ts = row_time(seconds, self.received)
            docs.append(self._plain("agent-logs", item, ts))
        return [d for d in docs if d is not None]

    def status(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """osquery status log lines."""
        docs = [
            self._plain("status", item, row_time(parse_epoch(item.get("unixTime")), self.received))
            for item in items
        ]
        return [d for d in docs if d is not None]
