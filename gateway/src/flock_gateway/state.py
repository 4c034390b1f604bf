"""The current state: what each host's queries return now, as documents of ``<prefix>-state``.

Beside the history (one results document per row and line), the gateway keeps, per host
and query, the rows that are true now:

* a differential ``added`` line makes its row's document present, a ``removed`` line
  makes it absent (``flock.present: false``: a tombstone, so that a late resend of the
  ``added`` line cannot bring it back). The document's id is made of the host, the query
  and the row's columns, so both lines of one row reach one document.
* a snapshot line replaces the host's rows of that query: its rows are written to the
  query's *slots* (ids made of the host, the query and the row's position), and the slots
  the host's earlier, larger snapshots used beyond them become tombstones. How many
  slots a host's query ever used, and the time of its newest snapshot, are kept on the
  host's registry record (:class:`SnapshotMark`): the gateway may read its registry, never
  the state index.

Every state document is written with an external version made of its line's own time
(``unixTime``, then ``counter``): Elasticsearch keeps the newest and refuses an older
write (a ``version_conflict``, which the writer counts as done), so a resent batch
changes nothing and a late line or snapshot cannot undo a newer one, in any order.
Lines without a time of their own within the accepted range (see
:func:`~.documents.row_time`) have no place in that order and are not written here.

Module of pure logic: :class:`StateLines` turns one request's lines into bulk lines;
``api/stored.py`` reads and writes the marks and the registry's platform fields.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from . import fields
from .auth import username_key
from .documents import (
    CLIENT_KEY,
    ID_DIGITS,
    MAX_FUTURE,
    DocumentBuilder,
    canonical_bytes,
    id_prefix,
    iso,
    parse_epoch,
)

# A version is the line's unixTime shifted left by this many bits, with its counter (the
# query's run number, capped) below: later seconds always win, and of two lines of one
# second the later run does.
COUNTER_BITS = 20
MAX_COUNTER = (1 << COUNTER_BITS) - 1
# Lines stamped before 1971 have no time of their own (documents.row_time says so too).
EARLIEST = 365 * 86_400

ROW_IDS = "state-row"
SLOT_IDS = "state-slot"
HOST_IDS = "state-host"
REVOCATION_IDS = "state-revocation"


def line_version(unix_time: Any, counter: Any, received_seconds: float) -> int | None:
    """The external version of a line stamped ``unix_time`` (run ``counter``), or None
    when the line has no usable time of its own."""
    seconds = parse_epoch(unix_time)
    if seconds is None or seconds < EARLIEST:
        return None
    if seconds > received_seconds + MAX_FUTURE.total_seconds():
        return None
    run = parse_epoch(counter)
    run = 0 if run is None or run < 0 else min(run, MAX_COUNTER)
    return (seconds << COUNTER_BITS) | run


def platform_of(columns: Mapping[str, Any]) -> str | None:
    """The platform family of an ``os_version`` row: ``darwin``, ``windows``, or ``linux``
    for anything else osquery reports; None without a platform column."""
    words = [columns.get(c) for c in fields.OS_PLATFORM_COLUMNS]
    words = [w.lower() for w in words if isinstance(w, str) and w]
    if not words:
        return None
    for family in (fields.DARWIN, fields.WINDOWS):
        if any(family in w.split() or w == family for w in words):
            return family
    return fields.LINUX


class OsInfo(NamedTuple):
    platform: str | None
    version: str | None
    at: int  # the line version it was read from: the newest wins


class SnapshotMark(NamedTuple):
    """What the registry keeps of a host's query answered by snapshots."""

    version: int  # the newest snapshot's line version
    size: int  # its rows
    slots: int  # the most slots any of its snapshots used (tombstones beyond ``size``)

    @classmethod
    def read(cls, value: Any) -> SnapshotMark | None:
        if (
            isinstance(value, list)
            and len(value) == 3
            and all(type(v) is int and v >= 0 for v in value)
        ):
            return cls(*value)
        return None


@dataclass
class _Snapshot:
    name: str
    version: int
    base: dict[str, Any]
    rows: list[Any]


class _Row(NamedTuple):
    version: int
    present: bool
    ident: bytes
    data: bytes  # the client's line, canonical JSON


@dataclass
class StateLines:
    """One request's state documents: collected while its lines are built, written out
    by :meth:`bulk` once the host's snapshot marks are known."""

    builder: DocumentBuilder
    index: str
    platform: str | None = None
    os_version: str | None = None
    # query name -> the platform a line of it tells (a host of unknown platform; see
    # Twigs.platform_hints), and what the request's lines told that way
    hints: Mapping[str, str] | None = None
    hinted: str | None = None
    rows: list[_Row] = field(default_factory=list)
    snapshots: list[_Snapshot] = field(default_factory=list)
    os: OsInfo | None = None
    unordered: int = 0  # lines without a time of their own: not in the state

    def __post_init__(self) -> None:
        username = self.builder.tag.username
        self.row_prefix = id_prefix(username, ROW_IDS)
        self.head = b'{"index":{"_index":%b,"_id":"' % orjson.dumps(self.index)
        # documents the compiled accelerator wrote (see compiled_parts)
        self.compiled: list[bytes] = []
        self.compiled_documents = 0
        self._flock_parts: dict[bool, bytes] | None = None
        self._rows = hashlib.sha256(self.row_prefix)
        self._slots = hashlib.sha256(id_prefix(username, SLOT_IDS))
        self._received = self.builder.received.timestamp()
        # a request's lines share a few times, queries and runs: each worked out once
        self._times: dict[int, str] = {}
        self._versions: dict[tuple[Any, Any], int | None] = {}
        self._queries: dict[str, Any] = {}

    def _version(self, line: Mapping[str, Any]) -> int | None:
        key = (line.get("unixTime"), line.get("counter"))
        try:
            version = self._versions[key]
        except KeyError:
            version = self._versions[key] = line_version(*key, self._received)
        except TypeError:  # an unhashable value: never a time
            version = None
        if version is None:
            self.unordered += 1
        return version

    def _timestamp(self, version: int) -> str:
        seconds = version >> COUNTER_BITS
        text = self._times.get(seconds)
        if text is None:
            text = self._times[seconds] = iso(datetime.fromtimestamp(seconds, tz=UTC))
        return text

    def differential(self, line: Mapping[str, Any], canon: bytes) -> None:
        """A stored differential line (``canon``: its canonical JSON)."""
        action = line.get("action")
        if action == "added":
            present = True
        elif action == "removed":
            present = False
        else:
            return
        name = line.get(fields.QUERY_NAME)
        columns = line.get(fields.COLUMNS)
        if not isinstance(name, str) or not isinstance(columns, dict):
            return
        version = self._version(line)
        if version is None:
            return
        query = self._queries.get(name)
        if query is None:
            query = self._queries[name] = self._rows.copy()
            query.update(name.encode("utf-8", "surrogatepass") + b"\x00")
        digest = query.copy()
        digest.update(canonical_bytes(columns))
        self.rows.append(_Row(version, present, digest.hexdigest()[:ID_DIGITS].encode(), canon))
        if present and name == fields.OS_VERSION_QUERY:
            self._note_os(columns, version)
        if self.hints is not None and self.hinted is None:
            self.hinted = self.hints.get(name)

    def _flock(self) -> dict[bool, bytes]:
        """The ``flock`` object of the request's row documents, present and not."""
        gateway = {**self.builder.gateway_fields, fields.KIND: fields.STATE_ROW}
        if self.platform is not None:
            gateway[fields.PLATFORM] = self.platform
        if self.os_version is not None:
            gateway[fields.OS_VERSION] = self.os_version
        return {
            present: orjson.dumps({**gateway, fields.PRESENT: present}) for present in (True, False)
        }

    def compiled_parts(self, unix_time: int) -> tuple[int, bytes, bytes] | None:
        """For the compiled accelerator, of a line stamped ``unix_time``: the bits of its
        versions below the time, and what follows a row document's version, added and
        removed; None for a line without a time of its own (counted in ``unordered``)."""
        version = line_version(unix_time, 0, self._received)
        if version is None:
            return None
        if self._flock_parts is None:
            self._flock_parts = self._flock()
        flock = self._flock_parts
        timestamp = self._timestamp(version)
        return COUNTER_BITS, _tail(timestamp, flock[True]), _tail(timestamp, flock[False])

    def take_compiled(self, bulk: bytes, documents: int, unordered: int) -> None:
        """What the accelerator wrote with :meth:`compiled_parts`."""
        self.compiled.append(bulk)
        self.compiled_documents += documents
        self.unordered += unordered

    def from_bulk(self, bulk: bytes) -> None:
        """The state of results bulk lines (what the compiled accelerator wrote: plain
        lines only, the client's line last in each source), instead of the documents it
        wrote with them."""
        self.compiled.clear()
        self.compiled_documents = self.unordered = 0
        key = b',"%b":' % CLIENT_KEY.encode()
        skip = len(key)
        loads, add = orjson.loads, self.differential
        for source in bulk.split(b"\n")[1::2]:
            start = source.find(key)
            if start >= 0:
                canon = source[start + skip : -1]
                add(loads(canon), canon)

    def snapshot(self, line: Mapping[str, Any]) -> None:
        """A stored snapshot line (its ``snapshot`` a list of rows)."""
        name = line.get(fields.QUERY_NAME)
        if not isinstance(name, str):
            return
        version = self._version(line)
        if version is None:
            return
        base = {k: v for k, v in line.items() if k != "snapshot"}
        base.setdefault("action", "snapshot")
        rows = list(line["snapshot"])
        self.snapshots.append(_Snapshot(name, version, base, rows))
        if self.hints is not None and self.hinted is None:
            self.hinted = self.hints.get(name)
        if name == fields.OS_VERSION_QUERY:
            for row in rows:
                if isinstance(row, dict):
                    self._note_os(row, version)

    def may_tell_os(self, names: Iterable[str]) -> bool:
        """Whether lines of these queries may tell the host's platform or OS version."""
        told = {fields.OS_VERSION_QUERY, *(self.hints or ())}
        return not told.isdisjoint(names)

    @property
    def tells_os(self) -> bool:
        """Whether the request's lines told the host's platform or OS version."""
        return self.os is not None or self.hinted is not None

    def _note_os(self, columns: Mapping[str, Any], version: int) -> None:
        if self.os is not None and self.os.at > version:
            return
        release = columns.get(fields.OS_VERSION_COLUMN)
        platform = platform_of(columns)
        if platform is None and not isinstance(release, str):
            return
        self.os = OsInfo(platform, release if isinstance(release, str) else None, version)

    def bulk(self, marks: Mapping[str, SnapshotMark]) -> tuple[bytes, int, dict[str, SnapshotMark]]:
        """(bulk lines, documents, the marks that changed) given the host's current
        ``marks``. A snapshot not newer than its query's mark is stale: nothing of it."""
        if self.os is not None:
            # the compiled accelerator's documents are written by then: a request that
            # tells the platform is left to the Python path (rows._compiled)
            self.platform = self.os.platform or self.platform
            self.os_version = self.os.version or self.os_version
        # an os_version row says more than a query that runs on one platform only
        self.platform = self.platform or self.hinted
        flock = self._flock()
        head = self.head
        # what comes between a document's id and its line: one per version and presence
        middles: dict[tuple[int, bool], bytes] = {}
        out: list[bytes] = list(self.compiled)
        changed: dict[str, SnapshotMark] = {}
        current = dict(marks)
        rows = list(self.rows)
        for snap in sorted(self.snapshots, key=lambda s: s.version):
            mark = current.get(snap.name)
            if mark is not None and snap.version <= mark.version:
                continue
            slots = max(len(snap.rows), mark.slots if mark is not None else 0)
            current[snap.name] = changed[snap.name] = SnapshotMark(
                snap.version, len(snap.rows), slots
            )
            rows += self._slot_rows(snap, slots)
        for version, present, ident, data in rows:
            middle = middles.get((version, present))
            if middle is None:
                middle = middles[version, present] = _middle(
                    version, self._timestamp(version), flock[present]
                )
            out += (head, ident, middle, data, LINE_END)
        return b"".join(out), self.compiled_documents + len(rows), changed

    def _slot_rows(self, snap: _Snapshot, slots: int) -> list[_Row]:
        prefix = self._slots.copy()
        prefix.update(snap.name.encode("utf-8", "surrogatepass"))
        gone = canonical_bytes(snap.base)
        out = []
        for slot in range(slots):
            digest = prefix.copy()
            digest.update(b"\x00%d" % slot)
            ident = digest.hexdigest()[:ID_DIGITS].encode()
            if slot < len(snap.rows):
                data = canonical_bytes({**snap.base, fields.COLUMNS: snap.rows[slot]})
                out.append(_Row(snap.version, True, ident, data))
            else:
                out.append(_Row(snap.version, False, ident, gone))
        return out


LINE_END = b"}\n"


def _middle(version: int, timestamp: str, flock: bytes) -> bytes:
    """A state document's bulk lines from after its id up to the client's line."""
    return b'","version":%d%b' % (version, _tail(timestamp, flock))


def _tail(timestamp: str, flock: bytes) -> bytes:
    """A state document's bulk lines from after its version up to the client's line."""
    return b',"version_type":"external"}}\n{"%b":"%b","%b":%b,"%b":' % (
        fields.TIMESTAMP.encode(),
        timestamp.encode(),
        fields.GATEWAY.encode(),
        flock,
        CLIENT_KEY.encode(),
    )


def per_host_id(username: str, kind: str) -> str:
    """The id of the host's one state document of ``kind`` (any spelling of its name)."""
    return hashlib.sha256(id_prefix(username_key(username), kind)).hexdigest()[:ID_DIGITS]


def host_lines(
    index: str,
    *,
    username: str,
    name: str,
    source: str,
    last_seen: str,
    seen_ms: int,
    platform: str | None,
    os_version: str | None,
) -> bytes:
    """The bulk lines of the host's one ``host`` document (version: ``last_seen`` in
    milliseconds, so an older write never replaces a newer one)."""
    gateway: dict[str, Any] = {
        fields.USERNAME: username,
        fields.NAME: name,
        fields.SOURCE: source,
        fields.KIND: fields.STATE_HOST,
        fields.LAST_SEEN: last_seen,
    }
    if platform is not None:
        gateway[fields.PLATFORM] = platform
    if os_version is not None:
        gateway[fields.OS_VERSION] = os_version
    action = {
        "index": {
            "_index": index,
            "_id": per_host_id(username, HOST_IDS),
            "version": seen_ms,
            "version_type": "external",
        }
    }
    source_doc = {fields.TIMESTAMP: last_seen, fields.GATEWAY: gateway}
    return orjson.dumps(action) + b"\n" + orjson.dumps(source_doc) + b"\n"


# A host's host document is rewritten at most this often per process: it answers "which
# hosts have been silent for days", not "when exactly".
HOST_SEEN_RESOLUTION = 3600.0
MAX_SEEN_HOSTS = 200_000


class SeenHosts:
    """When this process last wrote each host's ``host`` document (monotonic seconds)."""

    def __init__(self, resolution: float = HOST_SEEN_RESOLUTION) -> None:
        self.resolution = resolution
        self._written: dict[str, float] = {}

    def due(self, username: str, now: float | None = None) -> bool:
        """Whether the host's document is due now; if so, counted as written."""
        now = time.monotonic() if now is None else now
        last = self._written.get(username)
        if last is not None and now - last < self.resolution:
            return False
        if len(self._written) >= MAX_SEEN_HOSTS:
            self._written.clear()  # forgetting costs one early rewrite per host
        self._written[username] = now
        return True

    def forget(self, username: str) -> None:
        """The write failed: due again at the next request."""
        self._written.pop(username, None)
