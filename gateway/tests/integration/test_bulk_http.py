"""The shared bulk's own POST against the real node: the answers it reads, the client's
retry rules over several hosts, and the client's own errors. Credentials, timeouts and
retries are the client's: a STAND-IN server (the open test node checks none) records what
arrives and answers 401, 429 or nothing at all on demand."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from elasticsearch import (
    ApiError,
    AuthenticationException,
    BadRequestError,
    ConnectionError,
    ConnectionTimeout,
    Elasticsearch,
)

from flock_gateway.config import Config
from flock_gateway.storage.bulk_http import BulkSender
from flock_gateway.storage.client import make_client
from flock_gateway.storage.errors import StorageRejected, storage_error
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


class StandIn(BaseHTTPRequestHandler):
    """STAND-IN node: records each request (headers, body). Answers 401 unless the
    request carries ``authorization`` (when set); leaves the first ``stall`` requests
    unanswered until the test ends; answers 429 to the first ``throttle`` requests it
    does answer; then a bulk answer without errors."""

    seen: list[tuple[dict[str, str], bytes]]
    authorization: str | None
    throttle: int
    stall: int
    release: threading.Event

    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(({k.lower(): v for k, v in self.headers.items()}, data))
        if len(self.seen) <= self.stall:
            self.release.wait(10)
            return
        if self.authorization and self.headers.get("Authorization") != self.authorization:
            reason = "unable to authenticate user"
            status, payload = 401, {"error": {"type": "security_exception", "reason": reason}}
        elif len(self.seen) <= self.stall + self.throttle:
            status, payload = 429, {"error": {"type": "es_rejected_execution_exception"}}
        else:
            status, payload = 200, {"errors": False, "items": [{"create": {"status": 201}}]}
        answer = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def standin():
    def start(*, throttle: int = 0, stall: int = 0, authorization: str | None = None):
        attrs = {
            "seen": [],
            "throttle": throttle,
            "stall": stall,
            "authorization": authorization,
            "release": release,
        }
        handler = type("Handler", (StandIn,), attrs)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", handler.seen

    release = threading.Event()
    servers: list[ThreadingHTTPServer] = []
    yield start
    release.set()
    for server in servers:
        server.shutdown()
        server.server_close()


class PublicOnly:
    """An Elasticsearch client (or one of its parts) seen through its public names only:
    reading a name that starts with "_" fails the test, so the sender cannot depend on the
    client's private fields, which a client upgrade may rename or drop silently."""

    def __init__(self, target: object) -> None:
        self.public_only_target = target

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AssertionError(f"the sender read the client's private attribute {name!r}")
        value = getattr(self.public_only_target, name)
        module = type(value).__module__
        if not callable(value) and module.startswith(("elasticsearch", "elastic_transport")):
            return PublicOnly(value)
        return value


GOOD = "Basic ZmxvY2tfZ2F0ZXdheTpzM2NyZXQ="  # flock_gateway:s3cret


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"es_username": "flock_gateway", "es_password": "s3cret"}, GOOD),
        ({"es_api_key": "aWQ6a2V5"}, "ApiKey aWQ6a2V5"),
    ],
)
def test_the_clients_credentials_and_retries_on_429(standin, auth, expected):
    url, seen = standin(throttle=1)
    client = make_client(Config(es_hosts=(url,), es_max_retries=2, **auth))
    sent = b'{"create":{}}\n{}\n'
    answer = BulkSender(client, _FILTER).send(sent)
    assert len(bulk_items(answer)) == 1
    assert len(seen) == 2  # the 429 was retried
    assert {headers["authorization"] for headers, _ in seen} == {expected}
    assert {data for _, data in seen} == {sent}
    # the compatibility mimetypes the client itself sends to an 8.x node
    assert {headers["accept"] for headers, _ in seen} == {
        "application/vnd.elasticsearch+json; compatible-with=8"
    }


@pytest.mark.parametrize("raw_answers", [False, True])
def test_429_after_the_last_retry_is_the_clients_exception(standin, raw_answers):
    url, seen = standin(throttle=5)
    client = make_client(Config(es_hosts=(url,), es_max_retries=1), raw_answers=raw_answers)
    with pytest.raises(ApiError) as raised:
        BulkSender(client, _FILTER).send(b'{"create":{}}\n{}\n')
    assert raised.value.meta.status == 429
    # the same error whether the client parses answers or hands them over as bytes
    assert raised.value.message == "es_rejected_execution_exception"
    assert isinstance(raised.value.body, dict)
    assert len(seen) == 2


def test_a_client_with_raw_answers_gives_the_node_s_bytes(es_url):
    """The writer's client (raw_answers) answers the node's own bytes, which the writer
    counts without parsing; its other calls still work."""
    client = make_client(Config(es_hosts=(es_url,)), raw_answers=True)
    index = f"raw-{uuid.uuid4().hex[:8]}"
    answer = BulkSender(client, _FILTER).send(body(index, ["a", "b"]))
    assert answer.startswith(b'{"errors":false,')
    assert type(bulk_items(answer)) is AllCreated
    assert len(bulk_items(BulkSender(client, _FILTER).send(body(index, ["a"])))) == 1


def test_wrong_credentials_are_the_clients_401(standin):
    url, seen = standin(authorization=GOOD)
    config = Config(es_hosts=(url,), es_username="flock_gateway", es_password="wrong")
    with pytest.raises(AuthenticationException) as raised:
        BulkSender(make_client(config), _FILTER).send(b'{"create":{}}\n{}\n')
    assert raised.value.meta.status == 401
    assert raised.value.message == "security_exception"
    assert len(seen) == 1  # a 401 is not retried
    assert isinstance(storage_error(raised.value), StorageRejected)


def test_a_derived_clients_own_settings_through_public_names_only(standin):
    """A client made with ``options(...)`` carries its own credentials and retries; the
    sender uses each client's, and reads no private field to find them."""
    url, seen = standin(throttle=10, authorization=GOOD)
    base = Elasticsearch(url, request_timeout=5)
    derived = base.options(basic_auth=("flock_gateway", "s3cret"), max_retries=1)
    with pytest.raises(ApiError) as raised:
        BulkSender(PublicOnly(derived), _FILTER).send(b'{"create":{}}\n{}\n')  # type: ignore[arg-type]
    assert raised.value.meta.status == 429
    assert len(seen) == 2  # the derived client's max_retries=1, not the default 3
    assert {headers["authorization"] for headers, _ in seen} == {GOOD}
    with pytest.raises(AuthenticationException):  # the base client has no credentials
        BulkSender(PublicOnly(base), _FILTER).send(b'{"create":{}}\n{}\n')  # type: ignore[arg-type]


@pytest.mark.parametrize("retry_on_timeout", [True, False])
def test_the_clients_timeout_and_retry_on_timeout(standin, retry_on_timeout):
    url, seen = standin(stall=1)
    client = make_client(Config(es_hosts=(url,), es_timeout=30, es_max_retries=2))
    quick = client.options(request_timeout=0.3, retry_on_timeout=retry_on_timeout)
    sender = BulkSender(PublicOnly(quick), _FILTER)  # type: ignore[arg-type]
    if retry_on_timeout:
        assert len(bulk_items(sender.send(b'{"create":{}}\n{}\n'))) == 1
        assert len(seen) == 2
    else:
        with pytest.raises(ConnectionTimeout):
            sender.send(b'{"create":{}}\n{}\n')
        assert len(seen) == 1


def test_the_body_reaches_the_node_as_the_given_object(standin, monkeypatch):
    """The body is handed to the node without being serialized again (a copy of a
    several-megabyte bulk per request otherwise)."""
    url, _ = standin()
    client = make_client(Config(es_hosts=(url,)))
    arrived: list[object] = []
    for node in client.transport.node_pool.all():
        perform = node.perform_request

        def spy(method, target, body=None, *, perform=perform, **kwargs):
            arrived.append(body)
            return perform(method, target, body=body, **kwargs)

        monkeypatch.setattr(node, "perform_request", spy)
    sent = b'{"create":{}}\n{}\n'
    BulkSender(client, _FILTER).send(sent)
    assert len(arrived) == 1
    assert arrived[0] is sent
