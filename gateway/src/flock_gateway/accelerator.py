"""The compiled accelerator behind :mod:`.rows` (``gateway/rowpath``, Rust; optional).

``flock-gateway-rowpath`` parses a results body and, when every line is a plain result
line (each field named in :data:`PLAIN_LINE` present with its exact JSON type, named for
the sending host, flat objects of strings, integers, booleans and nulls, within
:mod:`.validation`'s limits), writes the bulk lines of its documents: the bytes
:class:`~.documents.DocumentBuilder` and :mod:`.storage.ndjson` write for the same body,
byte for byte (``tests/unit/test_accelerator.py`` holds it to that). For anything else
it answers None and :mod:`.rows` runs the Python path from the start.

It decides nothing of its own: the field names, types and limits it checks come from
:mod:`.validation` (:data:`RULES`), each row time's index, ``@timestamp`` and line parts
from the request's builder (:meth:`~.documents.DocumentBuilder.row_time`), the ids'
prefix from :meth:`~.documents.DocumentBuilder.id_prefix`; for the current-state documents
it writes beside them, their ids' prefix and the parts after each id from
:class:`~.state.StateLines`. A line it takes is one the
Python path accepts as it is; every refusal, and its message, is the Python path's.

Without the package (a controller without a Rust toolchain builds no wheel of it) the
gateway works the same, on the Python path only.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from . import validation
from .documents import DocumentBuilder
from .indices import RESULTS
from .state import StateLines

try:
    import flock_rowpath as _native
except ImportError:  # not installed: the Python path does all the work
    _native = None

# A plain result line: what osquery sends for a differential result, every field present
# with the strictest JSON type the full check (validation.validate_result_item) allows;
# "decorations" is optional. Lines with other fields of scalar values are plain too.
PLAIN_LINE: dict[str, str] = {
    **dict.fromkeys(validation.RESULT_STRING_FIELDS, "string"),
    **dict.fromkeys(validation.RESULT_INT_FIELDS, "int"),
    "numerics": "bool",
    **dict.fromkeys(validation.RESULT_OBJECT_FIELDS, "object"),
    # the host's own field: checked against the sender; host_uuid (the original README's
    # spelling) and snapshot lines are left to the Python path
    "hostIdentifier": "host",
    "host_uuid": "decline",
    "snapshot": "decline",
}
OPTIONAL = ("decorations",)

RULES: Any = None
if _native is not None:
    RULES = _native.Rules(
        fields=PLAIN_LINE,
        optional=list(OPTIONAL),
        query_field="name",
        time_field="unixTime",
        max_keys=validation.MAX_KEYS_PER_OBJECT,
        max_key_len=validation.MAX_KEY_LEN,
        max_depth=validation.MAX_DEPTH,
    )


def available() -> bool:
    return _native is not None


def parse(body: bytes, *, wrapped: bool) -> Any | None:
    """The body's lines (a JSON array; ``wrapped``: osquery's ``{"node_key", "log_type":
    "result", "data"}``, whose ``node_key`` and ``log_type`` the tree carries), or None:
    no accelerator, or a body it leaves to the Python path (declined as soon as it is read
    far enough to tell, before the rest of it is built). ``len()`` is the number of lines."""
    if _native is None:
        return None
    return _native.parse(body, wrapped, RULES)


class Written(NamedTuple):
    """A body's result documents as bulk lines, and its lines' query names."""

    bulk: bytes
    documents: int
    names: Any = ()


def results(
    tree: Any,
    builder: DocumentBuilder,
    host: str,
    allows: Callable[[Any], bool] | None,
    state: StateLines | None = None,
) -> Written | None:
    """The documents of ``tree``'s result lines, sent by ``host``, as ``builder`` makes
    them (its tag, time, retention and budget), when every line's query ``allows`` (None:
    any query); the rows older than the retention are added to ``builder.expired``, and
    the stored lines' current-state documents to ``state`` (if given). None, and the
    builder and state untouched, for a body that is not plain, is over its budget or
    names a query not allowed: the Python path then handles it from the start."""
    built = tree.results(
        RULES,
        host,
        builder.id_prefix(RESULTS),
        partial(_parts, builder),
        builder.budget.max_docs,
        builder.budget.max_bytes,
        None if state is None else (state.row_prefix, state.head, state.compiled_parts),
    )
    if built is None:
        return None
    bulk, documents, expired, names, state_bulk, state_documents, unordered = built
    if allows is not None and not all(map(allows, names)):
        return None
    builder.expired += expired
    if state is not None:
        state.take_compiled(state_bulk, state_documents, unordered)
    return Written(bulk, documents, names)


def _parts(builder: DocumentBuilder, unix_time: int) -> tuple[bytes, bytes] | None:
    when = builder.row_time(RESULTS, unix_time, unix_time)
    return None if when is None else (when.before_id, when.before_row)
