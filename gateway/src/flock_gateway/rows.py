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
from .documents import DocumentBuilder, TooLarge
from .errors import BadRequest, PayloadTooLarge
from .state import StateLines
from .storage import ndjson
from .validation import as_items, parse_json, parse_object, validate_result_item


class Batch(NamedTuple):
    """What a body comes to (a tuple: one per request, made in a fraction of a frozen
    dataclass's time)."""

    lines: int  # lines the body held
    bulk: bytes  # the stored documents' bulk lines (``create`` action, source)
    documents: int  # documents in ``bulk``
    expired: int  # rows older than the retention period, not stored
    refused: int = 0  # lines whose query the sender may not send, not stored
    dropped: int = 0  # osquery status lines the gateway is set to drop
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
    ``sender.host`` in ``hostIdentifier`` or ``host_uuid``. BadRequest names the first
    line that is refused; PayloadTooLarge when the body expands beyond its budget. The
    stored lines are also handed to ``state``."""
    tree = accelerator.parse(body, wrapped=False)
    if tree is not None:
        batch = _compiled(tree, builder, sender, state)
        if batch is not None:
            return batch
    items = as_items(parse_json(body))
    for i, item in enumerate(items):
        validate_result_item(i, item, sender.host)
    return _built(items, builder, sender, state)


class LogBody:
    """An ``/osquery/log`` body. Its node key and log type are read first (they decide
    who sent it); :meth:`batch` then reads its lines."""

    def __init__(self, body: bytes, *, max_lines: int, max_line_bytes: int) -> None:
        self._body = body
        self._max_lines = max_lines
        self._max_line_bytes = max_line_bytes
        self._tree: Any = None
        # a body over the line limit may hold a line over it, which only the Python path
        # measures
        if len(body) <= max_line_bytes:
            self._tree = accelerator.parse(body, wrapped=True)
        if self._tree is not None:
            self.node_key: Any = self._tree.node_key
            self.log_type: Any = self._tree.log_type
            self._data: dict[str, Any] | None = None
        else:
            self._data = parse_object(body)
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
            self._data = parse_object(self._body)
        lines = self._lines(self._data.get("data"))
        host = sender.host
        named = map(dict.get, lines, repeat("hostIdentifier"), repeat(host))
        if any(map(operator.ne, named, repeat(host))):
            raise OtherHost
        if self.log_type == "status":
            if not keep_status:
                return Batch(len(lines), b"", 0, 0, dropped=len(lines))
            try:
                docs = builder.status(lines)
            except TooLarge as exc:
                raise PayloadTooLarge(str(exc)) from None
            return Batch(len(lines), ndjson.body(docs), len(docs), builder.expired)
        for i, line in enumerate(lines):
            line.setdefault("hostIdentifier", host)
            validate_result_item(i, line, host)
        return _built(lines, builder, sender, state)

    def _lines(self, data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, list):
            raise BadRequest("data must be an array")
        if len(data) > self._max_lines:
            raise PayloadTooLarge(f"more than {self._max_lines} lines in one request")
        limit = self._max_line_bytes
        # no line of a body within the limit can be beyond it
        measure = len(self._body) > limit
        lines = []
        for i, raw in enumerate(data):
            if isinstance(raw, str):  # some osquery versions send each line as a JSON string
                if len(raw) > limit:
                    raise PayloadTooLarge(f"line {i} is larger than the line limit")
                line = parse_json(raw.encode("utf-8", "surrogatepass"))
            else:
                line = raw
                if measure and _longer_than(line, limit):
                    raise PayloadTooLarge(f"line {i} is larger than the line limit")
            if not isinstance(line, dict):
                raise BadRequest(f"Item {i} is not an object")
            lines.append(line)
        # parse_json already checked the whole body's structure, and each line that came
        # as a JSON string when it was parsed
        return lines


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
    written = accelerator.results(tree, builder, sender.host, sender.allows)
    if written is None:
        return None
    if state is not None:
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
