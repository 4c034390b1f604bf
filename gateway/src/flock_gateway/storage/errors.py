"""Storage failures in storage's own terms; what they mean to a client is the API's call.

Every public storage function raises only these (or its own domain errors such as
``AlreadyRegistered``): the Elasticsearch client's exceptions never leave the package.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from elasticsearch import ApiError, TransportError

P = ParamSpec("P")
R = TypeVar("R")


class StorageError(Exception):
    """Elasticsearch did not do what was asked; the message says what it answered."""


class StorageUnavailable(StorageError):
    """Elasticsearch cannot be reached, timed out, failed (5xx) or failed part of a batch:
    the same request may succeed later."""


class StorageThrottled(StorageError):
    """Elasticsearch is overloaded (429): the same request may succeed after a pause."""


class StorageFull(StorageUnavailable):
    """Elasticsearch refuses writes because a node's disk is past its flood-stage watermark
    (the indices carry ``index.blocks.read_only_allow_delete``). Elasticsearch lifts the
    block by itself once disk usage falls below the high watermark: the same request
    succeeds then."""


# What Elasticsearch answers for a write to an index blocked by the disk watermark:
# error type cluster_block_exception, reason "index [...] blocked by:
# [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has
# read-only-allow-delete block]".
def is_disk_block(error: object) -> bool:
    """Whether an Elasticsearch error object (``{"type": ..., "reason": ...}``, or a whole
    answer holding one under ``error``) is the disk watermark's write block."""
    if isinstance(error, dict) and isinstance(error.get("error"), dict):
        error = error["error"]
    if not isinstance(error, dict) or error.get("type") != "cluster_block_exception":
        return False
    reason = str(error.get("reason", ""))
    return "read-only-allow-delete" in reason or "flood-stage" in reason


class StorageRejected(StorageError):
    """Elasticsearch refused the request (a 4xx other than 429): the gateway's credentials,
    privileges or indices are not what it needs."""


def storage_error(exc: ApiError | TransportError) -> StorageError:
    """The storage error for an exception of the Elasticsearch client."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TransportError):
        return StorageUnavailable(detail)
    status = exc.meta.status
    if is_disk_block(exc.body):
        return StorageFull(detail)
    if status == 429:
        return StorageThrottled(detail)
    if 400 <= status < 500:
        return StorageRejected(detail)
    return StorageUnavailable(detail)


def translate_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Raise the Elasticsearch client's exceptions out of ``func`` as storage errors."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (ApiError, TransportError) as exc:
            raise storage_error(exc) from exc

    return wrapper
