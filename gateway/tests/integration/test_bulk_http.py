"""The shared bulk's own POST against the real node: the answers it reads, the client's
retry rules over several hosts, and the client's own errors. Credentials travel as the
client's: a STAND-IN server (the open test node checks none) records what arrives."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from elasticsearch import ApiError, BadRequestError, ConnectionError

from flock_gateway.config import Config
from flock_gateway.storage.bulk_http import BulkSender
from flock_gateway.storage.client import make_client
from flock_gateway.storage.results import _FILTER, AllCreated, bulk_items


def body(index: str, ids: list[str]) -> bytes:
    lines = []
    for i in ids:
        lines.append(json.dumps({"create": {"_index": index, "_id": i}}))
        lines.append(json.dumps({"@timestamp": "2026-11-30T00:00:00Z", "n": i}))
    return ("\n".join(lines) + "\n").encode()


def test_created_then_duplicates(es_url, prefix):
    sender = BulkSender(make_client(Config(es_hosts=(es_url,))), _FILTER)
    index = f"{prefix}-results-2026.11.30"
    first = sender.send(body(index, ["a", "b", "c"]))
    items = bulk_items(first)
    assert type(items) is AllCreated
    assert len(items) == 3
    again = bulk_items(sender.send(body(index, ["a", "d"])))
    assert [item["status"] for item in again] == [409, 201]
    assert again[0]["error"]["type"] == "version_conflict_engine_exception"


def test_a_dead_host_is_skipped_for_the_next(es_url, dead_url, prefix):
    client = make_client(Config(es_hosts=(dead_url, es_url), es_max_retries=2))
    sender = BulkSender(client, _FILTER)
    index = f"{prefix}-results-2026.11.30"
    for n in range(4):  # whichever host the pool offers first
        assert len(bulk_items(sender.send(body(index, [f"d{n}"])))) == 1


def test_unreachable_is_the_clients_connection_error(dead_url):
    sender = BulkSender(make_client(Config(es_hosts=(dead_url,), es_max_retries=1)), _FILTER)
    with pytest.raises(ConnectionError) as raised:
        sender.send(body("x-results", ["a"]))
    assert len(raised.value.errors) == 1  # the first attempt's, before the retry


def test_an_error_answer_is_the_clients_own_exception(es_url):
    client = make_client(Config(es_hosts=(es_url,)))
    broken = b'{"bogus":{"_index":"x"}}\n{}\n'
    with pytest.raises(BadRequestError) as ours:
        BulkSender(client, _FILTER).send(broken)
    with pytest.raises(BadRequestError) as theirs:
        client.bulk(operations=broken, filter_path=_FILTER)
    assert ours.value.meta.status == theirs.value.meta.status == 400
    assert ours.value.message == theirs.value.message
    assert ours.value.body == theirs.value.body


class Recorder(BaseHTTPRequestHandler):
    """STAND-IN node: records each request's headers; answers 429 to the first
    ``throttle`` requests, then a bulk answer without errors."""

    seen: list[dict[str, str]]
    throttle: int

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        if len(self.seen) <= self.throttle:
            status, payload = 429, {"error": {"type": "es_rejected_execution_exception"}}
        else:
            status, payload = 200, {"errors": False, "items": [{"create": {"status": 201}}]}
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    def start(throttle: int):
        handler = type("Handler", (Recorder,), {"seen": [], "throttle": throttle})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", handler.seen

    servers: list[ThreadingHTTPServer] = []
    yield start
    for server in servers:
        server.shutdown()


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {"es_username": "flock_gateway", "es_password": "s3cret"},
            "Basic ZmxvY2tfZ2F0ZXdheTpzM2NyZXQ=",
        ),
        ({"es_api_key": "aWQ6a2V5"}, "ApiKey aWQ6a2V5"),
    ],
)
def test_the_clients_credentials_and_retries_on_429(recorder, auth, expected):
    url, seen = recorder(throttle=1)
    client = make_client(Config(es_hosts=(url,), es_max_retries=2, **auth))
    answer = BulkSender(client, _FILTER).send(b'{"create":{}}\n{}\n')
    assert len(bulk_items(answer)) == 1
    assert len(seen) == 2  # the 429 was retried
    assert {h["authorization"] for h in seen} == {expected}
    assert all("x-ndjson" in h["content-type"] for h in seen)


def test_429_after_the_last_retry_is_the_clients_exception(recorder):
    url, seen = recorder(throttle=5)
    client = make_client(Config(es_hosts=(url,), es_max_retries=1))
    with pytest.raises(ApiError) as raised:
        BulkSender(client, _FILTER).send(b'{"create":{}}\n{}\n')
    assert raised.value.meta.status == 429
    assert raised.value.message == "es_rejected_execution_exception"
    assert len(seen) == 2
