"""Write documents with one bulk request, retry-safe.

Every document is written with ``op_type=create`` under an id derived from its content
(see :mod:`flock_gateway.documents`): a 409 conflict means an earlier attempt already
stored it and counts as stored. Per-item 429/5xx (and 401/403/404, which mean our own
setup is wrong) make the whole request fail with a storage error (the API answers 429 or
503) so the agent keeps the batch and resends it; what was stored by this attempt then
turns into 409s.

A document Elasticsearch refuses for its content (e.g. a field whose type conflicts with
the mapping) would be refused forever, and an agent resending it forever would never get
past it. Such documents are stored instead in quarantine form: the client's data kept
whole as one unindexed JSON string, ``flock.raw_json``, with the reason in
``flock.quarantine_reason``; a quarantine copy holds only fields the template maps, so
the mapping can never refuse it in turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import orjson
from elasticsearch import ApiError, Elasticsearch, TransportError

from ..documents import Doc
from ..fields import CLIENT, GATEWAY, QUARANTINE_REASON, RAW_JSON, TIMESTAMP
from ..logging import get_logger
from . import ndjson
from .batcher import BulkBatcher
from .bulk_http import BulkSender
from .errors import (
    StorageError,
    StorageFull,
    StorageThrottled,
    StorageUnavailable,
    is_disk_block,
    storage_error,
)

log = get_logger("storage")

_RETRYABLE_ITEM_STATUSES = {401, 403, 404, 408, 429}
# Only what the classification below reads: a smaller answer to transfer and parse.
_FILTER = "errors,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by"
_NO_ERRORS = b'{"errors":false,'
_CREATED = {"status": 201}


class AllCreated(Sequence[dict[str, Any]]):
    """The items of a bulk answer without errors: ``n`` documents, each created. A shared
    bulk is sliced into its requests' parts without building an item per document."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> AllCreated: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | AllCreated:
        if isinstance(index, slice):
            return AllCreated(len(range(*index.indices(self.n))))
        if not -self.n <= index < self.n:
            raise IndexError(index)
        return _CREATED

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter([_CREATED] * self.n)


def bulk_items(answer: bytes) -> Sequence[dict[str, Any]]:
    """The per-document items of a bulk answer (filtered by ``_FILTER``), in order.

    Without errors every item is a 201 and only needs counting (in the bytes); otherwise
    the answer is parsed and walked."""
    if answer.startswith(_NO_ERRORS):
        return AllCreated(answer.count(b'"status":'))
    # each item is keyed by its action: "create" (rows), "index" (current-state documents)
    return [next(iter(item.values())) for item in orjson.loads(answer)["items"]]


@dataclass
class WriteResult:
    created: int = 0
    duplicates: int = 0
    quarantined: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    # current-state documents: written, or already newer (a version conflict: done)
    state_written: int = 0
    state_refused: int = 0  # refused for their content (the rows' results are quarantined)

    @property
    def stored(self) -> int:
        return self.created + self.duplicates + self.quarantined


def _quarantine(doc: Doc, reason: str) -> Doc:
    src = doc.source
    raw = json.dumps(src.get(CLIENT), ensure_ascii=False, separators=(",", ":"))
    gateway = {**src[GATEWAY], QUARANTINE_REASON: reason[:1000], RAW_JSON: raw}
    return Doc(index=doc.index, id=doc.id, source={TIMESTAMP: src[TIMESTAMP], GATEWAY: gateway})


class BulkWriter:
    """Writes each request's documents through the shared-bulk batcher."""

    def __init__(
        self,
        client: Elasticsearch,
        *,
        sender: Any = None,
        max_rows: int = 2000,
        max_bytes: int = 8 * 1024 * 1024,
        linger_ms: float = 0.0,
        concurrency: int = 1,
    ) -> None:
        self._fixed_sender = sender
        self.client = client
        self.batcher = BulkBatcher(
            self._send,
            max_rows=max_rows,
            max_bytes=max_bytes,
            linger_ms=linger_ms,
            concurrency=concurrency,
            on_error=_storage_error,
        )

    @property
    def client(self) -> Elasticsearch:
        return self._client

    @client.setter
    def client(self, client: Elasticsearch) -> None:
        self._client = client
        self._sender = self._fixed_sender or BulkSender(client, _FILTER)

    def _send(self, body: bytes) -> Sequence[dict[str, Any]]:
        return bulk_items(self._sender.send(body))

    def write(self, docs: list[Doc]) -> WriteResult:
        return self.write_lines(ndjson.body(docs), len(docs))

    def write_lines(
        self, lines: bytes, count: int, state: bytes = b"", state_count: int = 0
    ) -> WriteResult:
        """Write ``count`` documents given as their bulk lines (``create`` action, source),
        and ``state_count`` current-state documents (``index`` action with an external
        version, source) in the same bulk: both are stored, or the write fails."""
        result = WriteResult()
        if not count + state_count:
            return result
        items = self.batcher.submit(lines + state if state_count else lines, count + state_count)
        result.requests += 1
        if type(items) is AllCreated:
            result.created = count
            result.state_written = state_count
            return result
        if len(items) != count + state_count:
            raise StorageUnavailable(
                f"bulk answered {len(items)} items for {count + state_count} documents"
            )
        refused: list[tuple[int, str]] = []
        retry_statuses: set[int] = set()
        disk_blocked = 0
        for position, item in enumerate(items):
            status = item.get("status", 500)
            state = position >= count  # after the rows: their current-state documents
            if status in (200, 201) or (state and status == 409):
                # a state document's 409: a newer version is there already
                if state:
                    result.state_written += 1
                else:
                    result.created += 1
            elif status == 409:
                result.duplicates += 1
            elif status >= 500 or status in _RETRYABLE_ITEM_STATUSES:
                retry_statuses.add(status)
                result.errors.append(_error_type(item))
                disk_blocked += is_disk_block(item.get("error"))
            elif state:
                result.state_refused += 1
            else:
                refused.append((position, _reason(item)))
        if result.state_refused:
            log.warning(
                "current-state documents refused by the mapping were not stored",
                extra={"refused": result.state_refused},
            )
        if retry_statuses:
            log.warning(
                "bulk items failed, asking the agent to retry",
                extra={"failed": len(result.errors), "error_types": sorted(set(result.errors))},
            )
            total = count + state_count
            failed = f"{len(result.errors)} of {total} documents failed: {sorted(retry_statuses)}"
            if disk_blocked:
                raise StorageFull(f"{failed}; {disk_blocked} in indices the disk watermark blocks")
            if retry_statuses == {429}:
                raise StorageThrottled(failed)
            raise StorageUnavailable(failed)
        if refused:
            refused_docs = ndjson.docs_at(lines, [position for position, _ in refused])
            qdocs = [
                _quarantine(doc, reason)
                for doc, (_, reason) in zip(refused_docs, refused, strict=True)
            ]
            qitems = self.batcher.submit(ndjson.body(qdocs), len(qdocs))
            result.requests += 1
            for item in qitems:
                status = item.get("status", 500)
                if status in (200, 201):
                    result.quarantined += 1
                elif status == 409:
                    result.duplicates += 1
                else:
                    log.error("quarantine write failed", extra={"error_type": _error_type(item)})
                    raise StorageUnavailable(f"quarantine write failed: {_error_type(item)}")
            log.warning(
                "documents refused by the mapping were quarantined",
                extra={"quarantined": result.quarantined},
            )
        return result


def _error_type(item: dict[str, Any]) -> str:
    error = item.get("error")
    if isinstance(error, dict):
        return str(error.get("type", "unknown"))
    return str(item.get("status", "unknown"))


def _reason(item: dict[str, Any]) -> str:
    error = item.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type', 'unknown')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            reason += f" ({cause.get('type', '')}: {cause.get('reason', '')})"
        return reason
    return f"status {item.get('status')}"


def _storage_error(exc: Exception) -> Callable[[], StorageError]:
    """What each request of a failed shared bulk raises (a new exception per thread)."""
    log.warning("bulk request failed", extra={"error_type": type(exc).__name__})
    if isinstance(exc, ApiError | TransportError):
        return lambda: storage_error(exc)
    return lambda: StorageUnavailable(f"bulk request failed: {type(exc).__name__}: {exc}")
