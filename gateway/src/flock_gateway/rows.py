"""A body of result lines, read, checked and written as bulk lines: the one seam for rows.

Both result endpoints hand their body here: ``/submit`` (Flock agent's array of result
lines, or the original README's one object) through :func:`submitted`, ``/osquery/log``
(osquery's ``{"node_key", "log_type", "data"}``) through :class:`LogBody`. What comes
back is a :class:`Batch`: the documents' bulk lines, ready for the writer, and the counts
the answer reports.

The rules (what a line may hold, which lines are refused, with which message) are
:mod:`.validation`'s, and the documents (index, id, layout) are
:class:`~.documents.DocumentBuilder`'s. The optional compiled accelerator
(:mod:`.accelerator`) sits behind this module: for the common body it writes the same
bytes faster; for anything else it declines and the Python path answers. The endpoints
do not know whether it exists.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from itertools import repeat
from typing import Any, NamedTuple

import orjson

from . import accelerator
from .documents import DocumentBuilder, TooLarge, parse_epoch
from .errors import BadRequest, PayloadTooLarge
from .indices import AGENT_LOGS, RESULTS, STATUS
from .state import StateLines
from .storage import ndjson
from .validation import (
    check_structure,
    parse_json,
    parse_object,
    validate_flock_log_item,
    validate_result_item,
)


class Batch(NamedTuple):
    """What a body comes to (a tuple: one per request, made in a fraction of a frozen
    dataclass's time)."""

    lines: int  # lines the body held
    bulk: bytes  # the stored documents' bulk lines (``create`` action, source)
    documents: int  # documents in ``bulk``
    expired: int  # rows older than the retention period, not stored
    refused: int = 0  # lines whose query the sender may not send, not stored
    dropped: int = 0  # osquery status lines the gateway is set to drop
    quarantined: int = 0  # lines that cannot be stored as sent, in ``bulk`` in quarantine form
    # the stored lines' current-state documents (written with the documents), when asked
    state: StateLines | None = None


class Sender(NamedTuple):
    """Whose lines these are, and which of them are stored."""

    host: str  # the host identifier every line must name
    # the queries whose lines are stored (the others are counted as refused); None: any
    allows: Callable[[Any], bool] | None = None


class OtherHost(Exception):
    """An osquery body's lines name another host than the one its node key belongs to."""


def submitted(
    body: bytes, builder: DocumentBuilder, sender: Sender, state: StateLines | None = None
) -> Batch:
    """A ``/submit`` body: one result line (an object) or an array of them, each naming
    ``sender.host`` in ``hostIdentifier`` or ``host_uuid``. A line that cannot be stored as
    sent (another host's, of wrong types, numbers Elasticsearch cannot take...) is
    quarantined with the reason, so that one line never holds back the others: an agent
    resends a refused request unchanged, for ever. BadRequest only for a body that is not
    JSON or not an object or array of them; PayloadTooLarge when the body expands beyond
    its budget. The stored lines are also handed to ``state``."""
    tree = accelerator.parse(body, wrapped=False)
    if tree is not None:
        batch = _compiled(tree, builder, sender, state)
        if batch is not None:
            return batch
    items, checked = body_lines(body)
    good, bad = checked_lines(items, sender.host, checked)
    return with_quarantined(_built(good, builder, sender, state), builder, bad, len(items))


def body_lines(body: bytes) -> tuple[list[Any], bool]:
    """The lines of a body that is one JSON object or an array, and whether their
    structure is checked (:func:`_parsed`). BadRequest for a body that is not JSON, or
    neither an object nor an array."""
    value, checked = _parsed(body)
    if isinstance(value, dict):
        return [value], checked
    if not isinstance(value, list):
        raise BadRequest("Data is not an array")
    return value, checked


Refused = tuple[Any, str]  # a line that cannot be stored as sent, and why


def checked_lines(
    items: list[Any], host: str | None, checked: bool = True
) -> tuple[list[dict[str, Any]], list[Refused]]:
    """Lines that can be stored as sent, and the others with the reason: result lines of
    ``host``, or (``host`` None) Flock agent event log lines; ``checked``: the lines' JSON
    structure was checked already."""
    good: list[dict[str, Any]] = []
    bad: list[Refused] = []
    for i, item in enumerate(items):
        try:
            if not checked:
                check_structure([item])
            if not isinstance(item, dict):
                raise BadRequest(f"Item {i} is not an object")
            if host is None:
                validate_flock_log_item(i, item)
            else:
                validate_result_item(i, item, host)
        except BadRequest as exc:
            bad.append((item, exc.message))
        else:
            good.append(item)
    return good, bad


def agent_logs(body: bytes, builder: DocumentBuilder) -> Batch:
    """A ``/submit_flock_logs`` body: Flock agent event log lines, those that cannot be
    stored as sent quarantined, as :func:`submitted`."""
    items, checked = body_lines(body)
    good, bad = checked_lines(items, None, checked)
    try:
        docs = builder.agent_logs(good)
    except TooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    batch = Batch(len(items), ndjson.body(docs), len(docs), builder.expired)
    return with_quarantined(batch, builder, bad, len(items), AGENT_LOGS)


def with_quarantined(
    batch: Batch, builder: DocumentBuilder, bad: list[Refused], lines: int, kind: str = RESULTS
) -> Batch:
    """``batch`` with the quarantine form of the ``bad`` lines of a body of ``lines``."""
    if not bad:
        return batch._replace(lines=lines) if batch.lines != lines else batch
    time_field = "timestamp" if kind == AGENT_LOGS else "unixTime"
    docs = []
    try:
        for line, reason in bad:
            epoch = parse_epoch(line.get(time_field)) if isinstance(line, dict) else None
            if epoch is not None and kind == AGENT_LOGS:
                seconds = epoch / 1000 if abs(epoch) < 10**15 else None
            else:
                seconds = epoch
            doc = builder.quarantined(kind, line, reason, seconds)
            if doc is not None:
                docs.append(doc)
    except TooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    return batch._replace(
        lines=lines,
        bulk=batch.bulk + ndjson.body(docs),
        documents=batch.documents + len(docs),
        expired=builder.expired,
        quarantined=len(docs),
    )


class LogBody:
    """An ``/osquery/log`` body. Its node key and log type are read first (they decide
    who sent it); :meth:`batch` then reads its lines."""

    def __init__(self, body: bytes, *, max_lines: int, max_line_bytes: int) -> None:
        self._body = body
        self._max_lines = max_lines
        self._max_line_bytes = max_line_bytes
        self._tree: Any = None
        self._checked = True  # the lines' structure is checked with the body's
        # a body over the line limit may hold a line over it, which only the Python path
        # measures
        if len(body) <= max_line_bytes:
            self._tree = accelerator.parse(body, wrapped=True)
        if self._tree is not None:
            self.node_key: Any = self._tree.node_key
            self.log_type: Any = self._tree.log_type
            self._data: dict[str, Any] | None = None
        else:
            self._data, self._checked = _log_object(body)
            self.node_key = self._data.get("node_key")
            self.log_type = self._data.get("log_type")

    def batch(
        self,
        builder: DocumentBuilder,
        sender: Sender,
        *,
        keep_status: bool,
        state: StateLines | None = None,
    ) -> Batch:
        """The lines as documents. A line without ``hostIdentifier`` is the sender's;
        OtherHost when one names another host. Status lines are stored when
        ``keep_status``, else counted as dropped. Stored result lines are also handed to
        ``state``."""
        if self.log_type not in ("result", "status"):
            raise BadRequest("log_type must be 'result' or 'status'")
        if self._tree is not None and len(self._tree) <= self._max_lines:
            batch = _compiled(self._tree, builder, sender, state)
            if batch is not None:
                return batch
        if self._data is None:  # the accelerator read the body, and declined its lines
            self._data, self._checked = _log_object(self._body)
        lines, bad = self._lines(self._data.get("data"))
        host = sender.host
        named = map(dict.get, lines, repeat("hostIdentifier"), repeat(host))
        if any(map(operator.ne, named, repeat(host))):
            raise OtherHost
        count = len(lines) + len(bad)
        if self.log_type == "status":
            if not keep_status:
                return Batch(count, b"", 0, 0, dropped=count)
            try:
                docs = builder.status(lines)
            except TooLarge as exc:
                raise PayloadTooLarge(str(exc)) from None
            batch = Batch(count, ndjson.body(docs), len(docs), builder.expired)
            return with_quarantined(batch, builder, bad, count, STATUS)
        for line in lines:
            line.setdefault("hostIdentifier", host)
        good, wrong = checked_lines(lines, host)
        return with_quarantined(_built(good, builder, sender, state), builder, bad + wrong, count)

    def _lines(self, data: Any) -> tuple[list[dict[str, Any]], list[Refused]]:
        """The body's lines as objects, and those that are not (or not JSON), with why."""
        if not isinstance(data, list):
            raise BadRequest("data must be an array")
        if len(data) > self._max_lines:
            raise PayloadTooLarge(f"more than {self._max_lines} lines in one request")
        limit = self._max_line_bytes
        # no line of a body within the limit can be beyond it
        measure = len(self._body) > limit
        lines = []
        bad: list[Refused] = []
        for i, raw in enumerate(data):
            try:
                if isinstance(raw, str):  # some osquery versions send each line as JSON text
                    if len(raw) > limit:
                        raise PayloadTooLarge(f"line {i} is larger than the line limit")
                    line = parse_json(raw.encode("utf-8", "surrogatepass"))
                else:
                    line = raw
                    if measure and _longer_than(line, limit):
                        raise PayloadTooLarge(f"line {i} is larger than the line limit")
                    if not self._checked:
                        check_structure([line])
                if not isinstance(line, dict):
                    raise BadRequest(f"Item {i} is not an object")
            except BadRequest as exc:
                bad.append((raw, exc.message))
            else:
                lines.append(line)
        # parse_json already checked the whole body's structure (or each line above), and
        # each line that came as a JSON string when it was parsed
        return lines, bad


def _parsed(body: bytes) -> tuple[Any, bool]:
    """The body's JSON value, and whether its structure is checked: when
    :func:`~.validation.parse_json` refuses a body the standard library reads, the fault is
    inside it (too deep, numbers out of range, invalid Unicode in a string) and is left to
    the checks of each line. BadRequest for a body that is not JSON at all."""
    try:
        return parse_json(body), True
    except BadRequest as exc:
        try:
            return json.loads(body), False
        except (ValueError, RecursionError):
            raise exc from None


def _log_object(body: bytes) -> tuple[dict[str, Any], bool]:
    """An osquery log body's object, and whether its structure is checked (see
    :func:`_parsed`)."""
    try:
        return parse_object(body), True
    except BadRequest as exc:
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            raise exc from None
        if not isinstance(value, dict):
            raise exc from None
        return value, False


def _longer_than(line: Any, limit: int) -> bool:
    """Whether the line's JSON text has more than ``limit`` characters."""
    try:
        if len(orjson.dumps(line)) <= limit:  # UTF-8 bytes: never fewer than characters
            return False
    except TypeError:  # what orjson cannot encode (integers beyond 64 bits)
        pass
    return len(json.dumps(line, ensure_ascii=False)) > limit


def _compiled(
    tree: Any, builder: DocumentBuilder, sender: Sender, state: StateLines | None
) -> Batch | None:
    written = accelerator.results(tree, builder, sender.host, sender.allows, state)
    if written is None:
        return None
    if state is not None and state.may_tell_os(written.names):
        # lines that may tell the host's platform, which every state document of the
        # request carries: its state is made from the rows once they are all read
        state.from_bulk(written.bulk)
    return Batch(len(tree), written.bulk, written.documents, builder.expired, state=state)


def _built(
    lines: list[dict[str, Any]],
    builder: DocumentBuilder,
    sender: Sender,
    state: StateLines | None = None,
) -> Batch:
    """Checked result lines as documents, those of queries the sender may send."""
    allowed = lines
    if sender.allows is not None:
        # a request's lines come from a few queries: each name is looked up once (after
        # validate_result_item, every name is a string or absent)
        names = set(map(dict.get, lines, repeat("name")))
        if not all(map(sender.allows, names)):
            allowed = [line for line in lines if sender.allows(line.get("name"))]
    try:
        docs = builder.results(allowed, state)
    except TooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    return Batch(
        len(lines),
        ndjson.body(docs),
        len(docs),
        builder.expired,
        refused=len(lines) - len(allowed),
        state=state,
    )
