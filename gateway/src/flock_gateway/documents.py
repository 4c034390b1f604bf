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

import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from . import fields
from .storage.names import AGENT_LOGS, RESULTS, STATUS

# Rows stamped further in the future than this (a laptop with a wrong clock) are still
# stored, under the receipt day, so that one bad clock cannot create far-future indices.
MAX_FUTURE = timedelta(days=2)


# a row time's index, @timestamp, the start of its documents' bulk action (up to the id)
# and of their source line (up to the client's data)
Stamp = tuple[str, str, bytes, bytes]


class Doc(NamedTuple):
    # a tuple: built once per row, and a frozen dataclass costs several times more to make
    index: str
    id: str
    source: dict[str, Any]
    # the document's two lines of the bulk body (``create`` action, ``source``), when the
    # builder wrote them as it made the document: the source line splices in the client's
    # row in its canonical form, which is also what its id is made of
    lines: bytes | None = None


def action_head(index: str) -> bytes:
    """The bulk body's ``create`` action for ``index``, up to the id."""
    return b'{"create":{"_index":%b,"_id":' % orjson.dumps(index)


# A document's bulk lines from its stamp's action head and source head, its id (hex
# digits: nothing to escape) and the client's row as JSON.
_LINES = b'%b"%b"}}\n%b%b}\n'


def canonical_bytes(value: Any) -> bytes:
    """Sorted keys, compact, UTF-8: the text a row's id is derived from.

    orjson writes the same text as ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` (the id scheme's definition) about 30 times faster, except for
    floats in exponent notation (``1e16``, not ``1e+16``); what orjson refuses (integers
    beyond 64 bits, non-string keys) goes through the standard library.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")


def canonical(value: Any) -> str:
    return canonical_bytes(value).decode("utf-8")


def _id_hasher(username: str, kind: str) -> Any:
    digest = hashlib.sha256()
    digest.update(username.encode("utf-8") + b"\x00" + kind.encode("utf-8") + b"\x00")
    return digest


def _id(hasher: Any, canonical_row: bytes, occurrence: int) -> str:
    digest = hasher.copy()
    digest.update(canonical_row)  # not joined to the rest first: a copy of the row less
    digest.update(b"\x00%d\x00" % occurrence)
    return digest.hexdigest()[:40]


def doc_id(username: str, kind: str, canonical_row: str, occurrence: int) -> str:
    """sha256 of ``username NUL kind NUL canonical-row NUL occurrence NUL``, 40 hex digits."""
    return _id(_id_hasher(username, kind), canonical_row.encode("utf-8"), occurrence)


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


# the text of recent seconds up to the seconds: a request's receipt time and its rows'
# times mostly fall in a few seconds (one strftime per second, not per call); cleared
# when it holds a day's worth (far more than ever alternate)
_seconds: dict[datetime, str] = {}


def iso(ts: datetime) -> str:
    second = ts.replace(microsecond=0)
    text = _seconds.get(second)
    if text is None:
        if len(_seconds) > 86_400:
            _seconds.clear()
        text = _seconds[second] = ts.strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{text}{ts.microsecond // 1000:03d}Z"


def daily_index(prefix: str, kind: str, ts: datetime, granularity: str = "day") -> str:
    """The index of a row stamped ``ts``: one per UTC day (``2026.11.30``), ISO week
    (``2026.w48``) or month (``2026.11``)."""
    return _period_index(prefix, kind, ts.date(), granularity)


@functools.lru_cache(maxsize=1024)
def _period_index(prefix: str, kind: str, day: date, granularity: str) -> str:
    if granularity == "week":
        year, week, _ = day.isocalendar()
        return f"{prefix}-{kind}-{year}.w{week:02d}"
    if granularity == "month":
        return f"{prefix}-{kind}-{day:%Y.%m}"
    return f"{prefix}-{kind}-{day:%Y.%m.%d}"


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


@functools.lru_cache(maxsize=16)
def _oldest(received: date, retention_days: int) -> datetime:
    """The start of the oldest UTC day still within the retention period."""
    day = received - timedelta(days=retention_days)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


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
        self.oldest = _oldest(self.received.date(), retention_days)
        self.budget = budget or Budget()
        self.expired = 0
        self._docs = 0
        self._bytes = 0
        # per kind: how often each canonical row occurred so far (identical rows of one
        # request get distinct ids)
        self._seen: dict[str, dict[bytes, int]] = {}
        self._hashers: dict[str, Any] = {}
        # the same for every document of the request: built once, shared (read-only)
        self._gateway = {
            fields.USERNAME: tag.username,
            fields.NAME: tag.name,
            fields.SOURCE: tag.source,
            fields.RECEIVED_AT: iso(self.received),
        }
        # rows of one request mostly share their time: (index, @timestamp, the source
        # line up to the client's data), or None when expired, per kind and raw time value
        self._stamps: dict[tuple[str, Any], Stamp | None] = {}

    def _flock(self) -> dict[str, Any]:
        return self._gateway

    def _stamp(self, kind: str, raw: Any, seconds: float | None) -> Stamp | None:
        """Index and @timestamp of a row whose time field is ``raw`` (``seconds`` since
        the epoch, or None); None when the row is older than the retention period."""
        key = (kind, raw)
        try:
            return self._stamps[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable raw value: no time, and nothing to cache
            key = (kind, None)
            seconds = None
        ts = row_time(seconds, self.received)
        stamp = None
        if ts >= self.oldest:
            timestamp = iso(ts)
            head = orjson.dumps({fields.TIMESTAMP: timestamp, fields.GATEWAY: self._gateway})
            index = daily_index(self.prefix, kind, ts, self.granularity)
            stamp = (
                index,
                timestamp,
                action_head(index),
                b'%b,"%b":' % (head[:-1], CLIENT_KEY.encode()),
            )
        self._stamps[key] = stamp
        return stamp

    def stamp_heads(self, kind: str, raw: int) -> tuple[bytes, bytes] | None:
        """The bulk action head and the source head of a ``kind`` row whose time field is
        the integer ``raw``; None when the row is older than the retention period. For
        the compiled row path (rowpath.py), which writes the rest of the row's lines."""
        stamp = self._stamp(kind, raw, raw)
        return None if stamp is None else (stamp[2], stamp[3])

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
        stamp: Stamp | None,
        canon: bytes,
        data: bytes | None = None,
    ) -> Doc | None:
        """``data``: the row's JSON text, when known (then the source line is spliced)."""
        if stamp is None:
            self.expired += 1
            return None
        seen, hasher = self._hasher(kind)
        occurrence = seen.get(canon, 0)
        seen[canon] = occurrence + 1
        index, timestamp, action, head = stamp
        source = {fields.TIMESTAMP: timestamp, fields.GATEWAY: self._gateway, CLIENT_KEY: row}
        ident = _id(hasher, canon, occurrence)
        lines = None
        if data is not None:
            lines = _LINES % (action, ident.encode(), head, data)
        return Doc(index, ident, source, lines)

    def _plain(self, kind: str, item: dict[str, Any], stamp: Stamp | None) -> Doc | None:
        canon = canonical_bytes(item)
        self._spend(1, len(canon))
        # the canonical text is the row itself, keys sorted: stored as is, it spares a
        # second encoding of every row
        return self._make(kind, item, stamp, canon, canon)

    def _hasher(self, kind: str) -> tuple[dict[bytes, int], Any]:
        seen = self._seen.get(kind)
        if seen is None:
            seen = self._seen[kind] = {}
            self._hashers[kind] = _id_hasher(self.tag.username, kind)
        return seen, self._hashers[kind]

    def results(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """osquery result lines (differential or snapshot) -> one doc per row."""
        return self._rows(RESULTS, items, snapshots=True)

    def _rows(self, kind: str, items: Iterable[dict[str, Any]], *, snapshots: bool) -> list[Doc]:
        # What _plain/_make do for a row, in one loop: at a thousand rows per request the
        # calls between them were a good part of the gateway's CPU per row.
        docs: list[Doc] = []
        append = docs.append
        seen, hasher = self._hasher(kind)
        stamps = self._stamps
        gateway = self._gateway
        max_docs, max_bytes = self.budget.max_docs, self.budget.max_bytes
        dumps, sort_keys = orjson.dumps, orjson.OPT_SORT_KEYS
        new_doc, layout = tuple.__new__, _LINES
        for item in items:
            raw = item.get("unixTime")
            key = (kind, raw)
            if (type(raw) is int or type(raw) is str) and key in stamps:
                stamp = stamps[key]
            else:
                stamp = self._stamp(kind, raw, parse_epoch(raw))
            if snapshots and isinstance(item.get("snapshot"), list):
                self._snapshot(item, stamp, append)
                continue
            try:
                canon = dumps(item, option=sort_keys)
            except TypeError:
                canon = canonical_bytes(item)
            self._docs += 1
            self._bytes += len(canon)
            if self._docs > max_docs or self._bytes > max_bytes:
                self._spend(0, 0)  # raises TooLarge with the reason
            if stamp is None:
                self.expired += 1
                continue
            occurrence = seen.get(canon, 0)
            seen[canon] = occurrence + 1
            index, timestamp, action, head = stamp
            ident = _id(hasher, canon, occurrence)
            # the canonical text is the row itself, keys sorted: stored as is, it spares
            # a second encoding of every row
            append(
                new_doc(
                    Doc,
                    (
                        index,
                        ident,
                        {fields.TIMESTAMP: timestamp, fields.GATEWAY: gateway, CLIENT_KEY: item},
                        layout % (action, ident.encode(), head, canon),
                    ),
                )
            )
        return docs

    def _snapshot(self, item: dict[str, Any], stamp: Stamp | None, append: Any) -> None:
        rows = item["snapshot"]
        base = {k: v for k, v in item.items() if k != "snapshot"}
        base.setdefault("action", "snapshot")
        base_canon = canonical_bytes(base)
        # every row document repeats the base: charge for it before building any
        self._spend(len(rows), len(base_canon) * len(rows))
        base_digest = hashlib.sha256(base_canon).hexdigest()
        for position, row in enumerate(rows):
            expanded = {**base, "columns": row}
            # the row's position keeps identical rows of one snapshot apart
            identity = ["snapshot", base_digest, position, row]
            canon = canonical_bytes(identity)
            self._spend(0, len(canon))
            doc = self._make(RESULTS, expanded, stamp, canon)
            if doc is not None:
                append(doc)

    def agent_logs(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """Flock agent event log lines; ``timestamp`` is in milliseconds."""
        docs = []
        for item in items:
            raw = item.get("timestamp")
            ms = parse_epoch(raw)
            seconds = ms / 1000 if ms is not None and abs(ms) < 10**15 else None
            docs.append(self._plain(AGENT_LOGS, item, self._stamp(AGENT_LOGS, raw, seconds)))
        return [d for d in docs if d is not None]

    def status(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """osquery status log lines."""
        return self._rows(STATUS, items, snapshots=False)
