"""Turn validated result lines into Elasticsearch documents with retry-safe ids.

* Layout: the gateway owns the top level of every document (``@timestamp``, ``flock.*``);
  everything the client sent goes, unchanged, under ``data``. However a client spells a
  key (dotted, nested, escaped), it lands below ``data.`` and can never reach a field the
  gateway sets.
* ``@timestamp`` comes from the row's own ``unixTime`` (UTC); rows without one get the
  receipt time.
* The daily index is derived from that timestamp, and the document id from the agent, the
  row's canonical JSON and every row before it in the same request (a hash chain). A batch
  re-sent after a timeout, as it was or with more lines after it (both clients resend their
  oldest lines first, in the same order), therefore maps to the same index + id pairs and,
  written with ``op_type=create``, is stored once; identical rows are two documents unless
  everything sent before them in their requests is identical too.
* Snapshot results (``"snapshot": [...]``) are expanded to one document per row.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from . import fields
from .indices import AGENT_LOGS, RESULTS, STATUS

if TYPE_CHECKING:  # state.py builds on this module
    from .state import StateLines

# Rows stamped further in the future than this (a laptop with a wrong clock) are still
# stored, under the receipt day, so that one bad clock cannot create far-future indices.
MAX_FUTURE = timedelta(days=2)


class RowTime(NamedTuple):
    """Where a row stamped at one time goes, and the parts of its documents' bulk lines
    that follow from that time (shared by every row of a request stamped the same)."""

    index: str
    timestamp: str
    # A document's bulk lines are ``before_id``, its id, ``before_row``, the client's row
    # as JSON, LINES_END: the ``create`` action up to the id, then the rest of the action
    # and the source line up to the client's data. The compiled accelerator
    # (accelerator.py) splices the same parts.
    before_id: bytes
    before_row: bytes


LINES_END = b"}\n"


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


def canonical_bytes(value: Any) -> bytes:
    """Sorted keys, compact, UTF-8: the text a row's id is derived from.

    orjson writes the same text as ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` (the id scheme's definition) at C speed, except for
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


def id_prefix(username: str, kind: str) -> bytes:
    """What every id of ``username``'s ``kind`` documents hashes first."""
    return username.encode("utf-8") + b"\x00" + kind.encode("utf-8") + b"\x00"


def _link(hasher: Any, canonical_row: bytes, previous: bytes) -> bytes:
    """The chain's next link: sha256 of the previous link and the row's own digest."""
    row = hasher.copy()
    row.update(canonical_row)  # not joined to the prefix first: a copy of the row less
    return hashlib.sha256(previous + row.digest()).digest()


# an id is the first 40 hex digits of its link (160 bits: no collision in practice)
ID_DIGITS = 40
# the link before a request's first row
FIRST_LINK = bytes(32)


def doc_ids(username: str, kind: str, canonical_rows: Iterable[str]) -> list[str]:
    """The ids of a request's rows, in order: each is the first 40 hex digits of its link,
    ``sha256(previous link || sha256(username NUL kind NUL canonical-row))``, the link
    before the first row 32 zero bytes."""
    hasher = hashlib.sha256(id_prefix(username, kind))
    ids, link = [], FIRST_LINK
    for row in canonical_rows:
        link = _link(hasher, row.encode("utf-8"), link)
        ids.append(link.hex()[:ID_DIGITS])
    return ids


def parse_epoch(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a quarantined inf
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
    # the host's platform family and OS version, once its os_version rows told them
    platform: str | None = None
    os_version: str | None = None


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
    """Builds docs for one request; chains the ids of its rows.

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
        # per kind: the id chain's last link (a row's id covers every row before it)
        self._links: dict[str, bytes] = {}
        self._hashers: dict[str, Any] = {}
        # the same for every document of the request: built once, shared (read-only)
        self._gateway = {
            fields.USERNAME: tag.username,
            fields.NAME: tag.name,
            fields.SOURCE: tag.source,
            fields.RECEIVED_AT: iso(self.received),
        }
        if tag.platform is not None:
            self._gateway[fields.PLATFORM] = tag.platform
        if tag.os_version is not None:
            self._gateway[fields.OS_VERSION] = tag.os_version
        # rows of one request mostly share their time: its RowTime, or None when expired,
        # per kind and raw time value
        self._times: dict[tuple[str, Any], RowTime | None] = {}

    def row_time(self, kind: str, raw: Any, seconds: float | None) -> RowTime | None:
        """Where a ``kind`` row whose time field is ``raw`` (``seconds`` since the epoch, or
        None) goes; None when the row is older than the retention period."""
        key = (kind, raw)
        try:
            return self._times[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable raw value: no time, and nothing to cache
            key = (kind, None)
            seconds = None
        ts = row_time(seconds, self.received)
        found = None
        if ts >= self.oldest:
            timestamp = iso(ts)
            head = orjson.dumps({fields.TIMESTAMP: timestamp, fields.GATEWAY: self._gateway})
            index = daily_index(self.prefix, kind, ts, self.granularity)
            found = RowTime(
                index,
                timestamp,
                action_head(index) + b'"',
                b'"}}\n%b,"%b":' % (head[:-1], CLIENT_KEY.encode()),
            )
        self._times[key] = found
        return found

    @property
    def gateway_fields(self) -> dict[str, Any]:
        """The gateway's members of every document of the request (read-only)."""
        return self._gateway

    def id_prefix(self, kind: str) -> bytes:
        return id_prefix(self.tag.username, kind)

    def spend(self, docs: int, size: int) -> None:
        """Charge ``docs`` documents of ``size`` bytes of client data to the budget."""
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
        self, kind: str, row: dict[str, Any], when: RowTime | None, canon: bytes, data: bool
    ) -> Doc | None:
        """The document of ``row``, its id made of ``canon``; ``data``: ``canon`` is the
        row's own JSON text, so the bulk lines are written now."""
        # an expired row is a link too: a resend made once more rows have expired keeps the
        # later rows' ids
        ident = self._next_id(kind, canon)
        if when is None:
            self.expired += 1
            return None
        source = {fields.TIMESTAMP: when.timestamp, fields.GATEWAY: self._gateway, CLIENT_KEY: row}
        lines = None
        if data:
            lines = b"".join((when.before_id, ident.encode(), when.before_row, canon, LINES_END))
        return Doc(when.index, ident, source, lines)

    def _plain(
        self,
        kind: str,
        item: dict[str, Any],
        when: RowTime | None,
        stored: Callable[[dict[str, Any], bytes], None] | None = None,
    ) -> Doc | None:
        """The document of a line stored whole; ``stored`` is then given the line and its
        canonical text."""
        canon = canonical_bytes(item)
        self.spend(1, len(canon))
        # the canonical text is the row itself, keys sorted: stored as is, it spares a
        # second encoding of every row
        doc = self._make(kind, item, when, canon, data=True)
        if doc is not None and stored is not None:
            stored(item, canon)
        return doc

    def _next_id(self, kind: str, canon: bytes) -> str:
        """The id of the request's next ``kind`` row, ``canon`` (see :func:`doc_ids`)."""
        hasher = self._hashers.get(kind)
        if hasher is None:
            hasher = self._hashers[kind] = hashlib.sha256(self.id_prefix(kind))
        link = self._links[kind] = _link(hasher, canon, self._links.get(kind, FIRST_LINK))
        return link.hex()[:ID_DIGITS]

    def results(
        self, items: Iterable[dict[str, Any]], state: StateLines | None = None
    ) -> list[Doc]:
        """osquery result lines (differential or snapshot) -> one doc per row; each stored
        line is also handed to ``state``, if given."""
        docs: list[Doc] = []
        differential = None if state is None else state.differential
        for item in items:
            raw = item.get("unixTime")
            when = self.row_time(RESULTS, raw, parse_epoch(raw))
            if isinstance(item.get("snapshot"), list):
                docs += self._snapshot(item, when)
                if state is not None and when is not None:  # an expired line is not stored
                    state.snapshot(item)
            elif (doc := self._plain(RESULTS, item, when, differential)) is not None:
                docs.append(doc)
        return docs

    def _snapshot(self, item: dict[str, Any], when: RowTime | None) -> Iterable[Doc]:
        rows = item["snapshot"]
        base = {k: v for k, v in item.items() if k != "snapshot"}
        base.setdefault("action", "snapshot")
        base_canon = canonical_bytes(base)
        # every row document repeats the base: charge for it before building any
        self.spend(len(rows), len(base_canon) * len(rows))
        base_digest = hashlib.sha256(base_canon).hexdigest()
        for position, row in enumerate(rows):
            expanded = {**base, "columns": row}
            # the row's position keeps identical rows of one snapshot apart
            identity = ["snapshot", base_digest, position, row]
            canon = canonical_bytes(identity)
            self.spend(0, len(canon))
            doc = self._make(RESULTS, expanded, when, canon, data=False)
            if doc is not None:
                yield doc

    def agent_logs(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """Flock agent event log lines; ``timestamp`` is in milliseconds."""
        docs = []
        for item in items:
            raw = item.get("timestamp")
            ms = parse_epoch(raw)
            seconds = ms / 1000 if ms is not None and abs(ms) < 10**15 else None
            docs.append(self._plain(AGENT_LOGS, item, self.row_time(AGENT_LOGS, raw, seconds)))
        return [d for d in docs if d is not None]

    def status(self, items: Iterable[dict[str, Any]]) -> list[Doc]:
        """osquery status log lines."""
        docs = []
        for item in items:
            raw = item.get("unixTime")
            docs.append(self._plain(STATUS, item, self.row_time(STATUS, raw, parse_epoch(raw))))
        return [d for d in docs if d is not None]

    def quarantined(self, kind: str, line: Any, reason: str, seconds: float | None) -> Doc | None:
        """A ``kind`` line that cannot be stored as sent (``reason``), in quarantine form:
        the gateway's fields, the reason and the line kept whole as one unindexed JSON string
        (``flock.raw_json``), nothing under ``data``. Filed under the line's own time
        (``seconds``; else the receipt time) like a stored row; its id, chained over the
        request's quarantined lines as rows' ids are, keeps a resent batch stored once.
        None when the line is older than the retention period."""
        text = _raw_json(line)
        self.spend(1, len(text))
        raw = line.get(_TIME_FIELD.get(kind, "unixTime")) if isinstance(line, dict) else None
        when = self.row_time(kind, raw, seconds)
        canon = json.dumps(line, sort_keys=True, separators=(",", ":")).encode("ascii")
        ident = self._next_id(kind + QUARANTINE_ID_SUFFIX, canon)
        if when is None:
            self.expired += 1
            return None
        gateway = {
            **self._gateway,
            fields.QUARANTINE_REASON: reason[:1000],
            fields.RAW_JSON: text,
        }
        source = {fields.TIMESTAMP: when.timestamp, fields.GATEWAY: gateway}
        return Doc(when.index, ident, source)


# Quarantined lines' ids hash this after the kind, so that they never meet a stored row's.
QUARANTINE_ID_SUFFIX = "\x00quarantine"
# The field of a kind's line that holds its time (what row_time caches by).
_TIME_FIELD = {AGENT_LOGS: "timestamp"}


def _raw_json(line: Any) -> str:
    """A line as compact JSON text, its keys in the order sent; with \\u escapes only when
    it holds strings UTF-8 cannot carry (lone surrogates)."""
    text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(line, separators=(",", ":"))
    return text
