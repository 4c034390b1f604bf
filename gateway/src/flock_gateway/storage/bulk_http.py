"""``POST /_bulk`` of a body that is already NDJSON bytes, through the client's public API.

A shared bulk is already NDJSON bytes (:mod:`.ndjson`). It goes out through
``Elasticsearch.perform_request``, the client's public low-level call, so everything the
client was configured with applies as it does to the client's own calls, including on a
client derived with ``client.options(...)``: its credentials and other headers, the
compatibility mimetypes, ``request_timeout``, ``max_retries``, ``retry_on_status`` and
``retry_on_timeout``, the node pool's choice of node and dead-node handling, the product
check, and a non-2xx answer raised as the client's own ``ApiError`` subclass (callers'
error handling is unchanged). Nothing here reads a private attribute of the client or
repeats the transport's retry loop, so a client upgrade keeps these rules in one place.

Why the request says ``application/json`` rather than ``application/x-ndjson``: the
transport turns the body into bytes with the serializer registered for the request's
content type. The NDJSON serializer copies even a ``bytes`` body into a new buffer, line
by line (``elastic_transport.NdjsonSerializer.dumps``), while the JSON serializers
(``JsonSerializer.dumps``, which the client's ``OrjsonSerializer`` inherits) hand
``bytes`` back as the very same object, so the body goes out as given. Elasticsearch
parses a bulk body the same way for both types: they are one content type to it, split on
newlines (the body ends with one, as :mod:`.ndjson` writes it).

The answer: a client made with ``make_client(config, raw_answers=True)`` hands JSON
answers back as the bytes Elasticsearch sent, so a successful bulk's items are counted in
the bytes (:func:`.results.bulk_items`) instead of being built into a dict each, which
would cost more than the rest of sending the bulk. Any other client works too, at that
cost (its parsed answer is written back to bytes).
"""

from __future__ import annotations

from typing import Any

import orjson
from elasticsearch import ApiError, Elasticsearch

# The client rewrites these to the compatibility mimetypes it sends to an 8.x node.
_HEADERS = {"content-type": "application/json", "accept": "application/json"}


class BulkSender:
    """Sends bulk bodies through ``client``; answers the 2xx answer as JSON bytes."""

    def __init__(self, client: Elasticsearch, filter_path: str) -> None:
        self._client = client
        self._params = {"filter_path": filter_path}

    def send(self, body: bytes) -> bytes:
        """The 2xx answer; raises the client's ApiError / TransportError otherwise."""
        try:
            resp = self._client.perform_request(
                "POST", "/_bulk", params=self._params, headers=_HEADERS, body=body
            )
        except ApiError as exc:
            if isinstance(exc.body, bytes):
                raise _parsed(exc) from None
            raise
        answer = resp.body
        return answer if isinstance(answer, bytes) else orjson.dumps(answer)


def _parsed(exc: ApiError) -> ApiError:
    """The error as a client that parses answers makes it (its message from the body)."""
    try:
        body: Any = orjson.loads(exc.body)
    except orjson.JSONDecodeError:
        body = exc.body.decode("utf-8", "replace")
    message: Any = str(body)
    if isinstance(body, dict):
        error = body.get("error", message)
        message = error["type"] if isinstance(error, dict) and "type" in error else error
    return type(exc)(message=message, meta=exc.meta, body=body)
