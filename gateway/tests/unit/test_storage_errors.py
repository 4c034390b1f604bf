"""Storage failures: the Elasticsearch client's exceptions become storage errors, and the
API answers each kind of storage error with one status and one sentence."""

from __future__ import annotations

import json

import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from flock_gateway.app import create_app
from flock_gateway.config import Config
from flock_gateway.storage.errors import (
    StorageError,
    StorageFull,
    StorageRejected,
    StorageThrottled,
    StorageUnavailable,
    translate_errors,
)

DETAIL = "ApiError(403, 'security_exception', 'user [flock_gateway] lacks privilege')"


FLOOD_STAGE = {
    "type": "cluster_block_exception",
    "reason": "index [flock-agents] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded "
    "flood-stage watermark, index has read-only-allow-delete block; for more information, ...]",
}


def api_error(status: int, error: dict | None = None) -> ApiError:
    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(),
        duration=0.0,
        node=NodeConfig("http", "127.0.0.1", 9200),
    )
    return ApiError(f"status {status}", meta, {"error": error or {"type": "x"}})


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionError("refused"), StorageUnavailable),
        (api_error(429), StorageThrottled),
        (api_error(429, FLOOD_STAGE), StorageFull),
        (
            api_error(403, {"type": "cluster_block_exception", "reason": "index closed"}),
            StorageRejected,
        ),
        (api_error(403), StorageRejected),
        (api_error(400), StorageRejected),
        (api_error(500), StorageUnavailable),
        (api_error(503), StorageUnavailable),
    ],
)
def test_client_exceptions_become_storage_errors(exc, kind):
    @translate_errors
    def call():
        raise exc

    with pytest.raises(kind) as raised:
        call()
    assert type(raised.value) is kind
    assert raised.value.__cause__ is exc


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (StorageThrottled(DETAIL), 429, "Storage is busy, slow down and try again later"),
        (StorageUnavailable(DETAIL), 503, "Storage is unavailable, try again later"),
        (StorageRejected(DETAIL), 503, "Storage refused the request, try again later"),
        (StorageError(DETAIL), 503, "Storage failed, try again later"),
    ],
)
def test_api_answers_storage_errors(exc, status, message):
    app = create_app(Config(es_hosts=("http://127.0.0.1:1",), startup_check=False))

    @app.get("/fail")
    def fail():
        raise exc

    res = app.test_client().get("/fail")
    assert res.status_code == status
    assert json.loads(res.data) == {"error": True, "error_msg": message}
    assert res.headers["Retry-After"] == "10"
    assert DETAIL not in res.text  # what Elasticsearch said goes to the log only


def test_a_full_disk_is_answered_503_with_a_longer_retry_after():
    app = create_app(Config(es_hosts=("http://127.0.0.1:1",), startup_check=False))

    @app.get("/fail")
    def fail():
        raise StorageFull(DETAIL)

    res = app.test_client().get("/fail")
    assert res.status_code == 503
    assert "out of disk space" in json.loads(res.data)["error_msg"]
    assert res.headers["Retry-After"] == "60"
    metrics = app.test_client().get("/metrics").text
    assert 'flock_storage_errors_total{reason="disk_full",pid=' in metrics
