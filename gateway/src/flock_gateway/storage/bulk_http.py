"""``POST /_bulk`` on the Elasticsearch client's own connection pool, without its API layer.

A shared bulk is already NDJSON bytes (:mod:`.ndjson`). The client's ``bulk()`` would copy
them once more (its NDJSON serialiser joins "lines" into a new buffer), wrap the call in
its API and tracing layers, and parse the whole answer; at the gateway's rates that was a
tenth of its CPU on large batches. Here the body goes to the same node objects the client
uses (its urllib3 pools: same hosts, CA, TLS settings, credentials, timeout), with the
client's retry rules: a connection error or (with ``retry_on_timeout``) a timeout marks
the node dead and tries the next one; 429/502/503/504 are retried; after ``max_retries``
the last answer or error stands. A non-2xx answer raises the client's own ``ApiError``
subclass, built as the client builds it, so callers' error handling is unchanged.
Sniffing is not supported (the gateway never configures it).
"""

from __future__ import annotations

from typing import Any

import orjson
from elastic_transport import ApiResponseMeta, ConnectionError, ConnectionTimeout, TransportError
from elastic_transport.client_utils import DEFAULT
from elasticsearch import ApiError, Elasticsearch
from elasticsearch.exceptions import HTTP_EXCEPTIONS

# what a node with these answers is still healthy for (elastic_transport's own list)
_NOT_DEAD = frozenset({400, 401, 402, 403, 404, 409})
# the compatibility mimetypes the client itself sends to an 8.x node
_HEADERS = {
    "content-type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
    "accept": "application/vnd.elasticsearch+json; compatible-with=8",
}


def _resolve(value: Any, default: Any) -> Any:
    return default if value is DEFAULT else value


class BulkSender:
    """Sends bulk bodies through ``client``'s transport nodes; answers the raw JSON bytes."""

    def __init__(self, client: Elasticsearch, filter_path: str) -> None:
        transport = client.transport
        self._pool = transport.node_pool
        self._target = f"/_bulk?filter_path={filter_path}"
        # the client's own headers carry its credentials (basic auth or API key)
        self._headers = {**dict(client._headers), **_HEADERS}
        self._timeout = client._request_timeout
        self._max_retries: int = _resolve(client._max_retries, transport.max_retries)
        self._retry_on_status = frozenset(
            _resolve(client._retry_on_status, transport.retry_on_status)
        )
        self._retry_on_timeout: bool = _resolve(
            client._retry_on_timeout, transport.retry_on_timeout
        )

    def send(self, body: bytes) -> bytes:
        """The 2xx answer's body; raises the client's ApiError / TransportError otherwise."""
        pool = self._pool
        errors: list[Exception] = []
        last = None
        for attempt in range(self._max_retries + 1):
            node = pool.get()
            try:
                resp = node.perform_request(
                    "POST",
                    self._target,
                    body=body,
                    headers=self._headers,  # type: ignore[arg-type]
                    request_timeout=self._timeout,
                )
            except TransportError as exc:
                retry = False
                if isinstance(exc, ConnectionTimeout):
                    retry = self._retry_on_timeout
                    pool.mark_dead(node)
                elif isinstance(exc, ConnectionError):
                    retry = True
                    pool.mark_dead(node)
                if not retry or attempt >= self._max_retries:
                    if last is not None:
                        return _checked(*last)
                    exc.errors = tuple(errors)
                    raise
                errors.append(exc)
                continue
            status = resp.meta.status
            if 200 <= status < 299 or status in _NOT_DEAD:
                pool.mark_live(node)
            else:
                pool.mark_dead(node)
            if status in self._retry_on_status and attempt < self._max_retries:
                last = (resp.meta, resp.body)
                continue
            return _checked(resp.meta, resp.body)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns


def _checked(meta: ApiResponseMeta, data: bytes) -> bytes:
    if 200 <= meta.status < 299:
        return data
    # the client's own error, made as the client makes it
    try:
        body: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = data.decode("utf-8", "replace")
    message: Any = str(body)
    if isinstance(body, dict):
        error = body.get("error", message)
        message = error["type"] if isinstance(error, dict) and "type" in error else error
    raise HTTP_EXCEPTIONS.get(meta.status, ApiError)(message=message, meta=meta, body=body)
