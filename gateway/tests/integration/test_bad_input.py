"""The bad-input table: every failure is JSON {"error": true, "error_msg"} with the right
status, never a 500."""

import gzip
import json

import pytest

from flock_gateway.config import Config

from .helpers import basic, osquery_line, register

HOST = "host-1"
# A line that cannot be stored as sent: the request answers 200 and the line is kept in
# quarantine form (flock.quarantine_reason, flock.raw_json), so that it never holds back
# the lines after it (an agent resends a refused request unchanged, for ever).
Q = "quarantined"


@pytest.fixture(scope="module")
def shared(es, es_url):
    """One storage prefix, app and agent for the whole (read-mostly) table."""
    import uuid

    from flock_gateway.app import create_app
    from flock_gateway.indices import IndexNames
    from flock_gateway.storage.templates import setup_storage

    from ..conftest import drop_prefix

    prefix = "t" + uuid.uuid4().hex[:10]
    setup_storage(es, IndexNames(prefix))
    client = create_app(Config(es_hosts=(es_url,), index_prefix=prefix)).test_client()
    token = register(client, HOST, "Laptop")
    yield client, token
    drop_prefix(es, prefix)


def _cases():
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    deep_ok_json = json.dumps([{"hostIdentifier": HOST, "x": _nest(20)}]).encode()
    return [
        # (id, path, body, extra headers, expected status, or Q)
        ("empty body", "/submit", b"", {}, 400),
        ("whitespace body", "/submit", b"  \n", {}, 400),
        ("not json", "/submit", b"hello", {}, 400),
        ("truncated json", "/submit", b'[{"hostIdentifier": "host-1"', {}, 400),
        ("non-utf8", "/submit", b'[{"hostIdentifier": "host-1", "x": "\xff\xfe"}]', {}, 400),
        (
            "latin-1 body",
            "/submit",
            '[{"hostIdentifier":"host-1","x":"é"}]'.encode("latin-1"),
            {},
            400,
        ),
        ("lone surrogate", "/submit", b'[{"hostIdentifier": "host-1", "x": "\\udc80"}]', {}, Q),
        ("NaN", "/submit", b'[{"hostIdentifier": "host-1", "x": NaN}]', {}, Q),
        ("deep nesting (parser)", "/submit", deep, {}, 400),
        ("deep nesting (objects)", "/submit", deep_ok_json, {}, Q),
        (
            "huge integer",
            "/submit",
            b'[{"hostIdentifier": "host-1", "x": ' + b"9" * 5000 + b"}]",
            {},
            400,
        ),
        ("number body", "/submit", b"42", {}, 400),
        ("string body", "/submit", b'"x"', {}, 400),
        ("array of non-objects", "/submit", b"[1, 2]", {}, Q),
        ("missing host", "/submit", b"[{}]", {}, Q),
        ("wrong host", "/submit", b'[{"hostIdentifier": "host-2"}]', {}, Q),
        ("host not a string", "/submit", b'[{"hostIdentifier": ["host-1"]}]', {}, Q),
        (
            "columns not an object",
            "/submit",
            b'[{"hostIdentifier": "host-1", "columns": 1}]',
            {},
            Q,
        ),
        (
            "nested column",
            "/submit",
            b'[{"hostIdentifier": "host-1", "columns": {"a": {"b": 1}}}]',
            {},
            Q,
        ),
        # kept under data.*, where a metadata-looking name is an ordinary field
        ("metadata field", "/submit", b'[{"hostIdentifier": "host-1", "_id": "x"}]', {}, 200),
        ("infinity", "/submit", b'[{"hostIdentifier": "host-1", "x": 1e309}]', {}, Q),
        (
            "1200-digit unixTime",
            "/submit",
            b'[{"hostIdentifier": "host-1", "unixTime": ' + b"9" * 1200 + b"}]",
            {},
            Q,
        ),
        (
            "integer past 64 bits in a column",
            "/submit",
            b'[{"hostIdentifier": "host-1", "columns": {"a": 18446744073709551616}}]',
            {},
            Q,
        ),
        ("empty field name", "/submit", b'[{"hostIdentifier": "host-1", "": 1}]', {}, Q),
        ("dotted field name", "/submit", b'[{"hostIdentifier": "host-1", "a..b": 1}]', {}, Q),
        ("bad gzip", "/submit", b"\x1f\x8bnot gzip", {"Content-Encoding": "gzip"}, 400),
        ("unknown encoding", "/submit", b"[]", {"Content-Encoding": "br"}, 400),
        ("logs: not an array", "/submit_flock_logs", b'"x"', {}, 400),
        ("logs: no type", "/submit_flock_logs", b'[{"timestamp": 1}]', {}, Q),
        ("logs: no timestamp", "/submit_flock_logs", b'[{"type": "x"}]', {}, Q),
        (
            "logs: twig without id",
            "/submit_flock_logs",
            b'[{"type": "enable_twig", "timestamp": 1}]',
            {},
            Q,
        ),
        (
            "logs: huge timestamp",
            "/submit_flock_logs",
            b'[{"type": "x", "timestamp": ' + b"9" * 400 + b"}]",
            {},
            Q,
        ),
    ]


def _nest(depth):
    value = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [pytest.param(*case[1:], id=case[0]) for case in _cases()],
)
def test_bad_input(shared, path, body, headers, status):
    client, token = shared
    res = client.post(
        path,
        data=body,
        headers={**basic(HOST, token), "Content-Type": "application/json", **headers},
    )
    assert res.mimetype == "application/json"
    obj = json.loads(res.data)
    if status == Q:
        assert res.status_code == 200, res.data
        assert obj["error"] is False
        assert obj["quarantined_count"] == obj["processed_count"] >= 1, obj
        assert obj["stored_count"] == obj["quarantined_count"], obj
        return
    assert res.status_code == status, res.data
    assert obj["error"] is (status != 200)
    if status != 200:
        assert obj["error_msg"]


def test_huge_strings_are_stored(client, es, prefix):
    token = register(client, HOST)
    big = "x" * 3_000_000
    res = client.post(
        "/submit",
        json=[osquery_line(HOST, columns={"blob": big, "ok": "y"})],
        headers=basic(HOST, token),
    )
    assert res.status_code == 200
    from .helpers import stored

    (hit,) = stored(es, prefix, query={"term": {"flock.username": HOST}})
    assert len(hit["_source"]["data"]["columns"]["blob"]) == 3_000_000


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic"}, 401),
        ({"Authorization": "Basic %%%"}, 401),
        ({"Authorization": "Bearer abc"}, 401),
        ({"Authorization": "Basic " + "A" * 5000}, 401),
    ],
)
def test_bad_credentials(shared, headers, status):
    client, _ = shared
    for method, path in (("GET", "/ping"), ("POST", "/submit"), ("POST", "/submit_flock_logs")):
        res = client.open(path, method=method, data=b"[]", headers=headers)
        assert res.status_code == status
        assert json.loads(res.data)["error"] is True
        assert res.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/json"),
        (b"{", "application/json"),
        (b"[]", "application/json"),
        (b'{"username": 5}', "application/json"),
        (b'{"username": "a b"}', "application/json"),
        (b'{"username": "ok", "name": "a\\nb"}', "application/json"),
        (b'{"username": "ok", "name": "' + b"n" * 500 + b'"}', "application/json"),
        (b"username=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"username=" + b"u" * 200, "application/x-www-form-urlencoded"),
        (b"\x00\x01\x02", "application/octet-stream"),
    ],
)
def test_bad_registration(shared, body, content_type):
    client, _ = shared
    res = client.post("/register", data=body, content_type=content_type)
    assert res.status_code == 400
    assert json.loads(res.data)["error"] is True


def test_method_and_path_errors_are_json(shared):
    client, _ = shared
    for method, path, status in (
        ("GET", "/submit", 405),
        ("POST", "/ping", 405),
        ("GET", "/register", 405),
        ("GET", "/nope", 404),
        ("GET", "/_search", 404),
        ("POST", "/flock-results-*/_search", 404),
    ):
        res = client.open(path, method=method)
        assert res.status_code == status
        assert json.loads(res.data)["error"] is True


def test_body_over_limit_is_413(es_url, prefix, storage):
    from flock_gateway.app import create_app

    cfg = Config(
        es_hosts=(es_url,),
        index_prefix=prefix,
        max_body_bytes=64 * 1024,
        max_decompressed_bytes=1024 * 1024,
    )
    client = create_app(cfg).test_client()
    token = register(client, HOST)
    lines = [osquery_line(HOST, columns={"pad": "p" * 1000}) for _ in range(100)]
    res = client.post("/submit", json=lines, headers=basic(HOST, token))
    assert res.status_code == 413
    assert json.loads(res.data)["error"] is True
    # a gzip bomb: small compressed, huge inflated
    bomb = gzip.compress(b"[" + b" " * (50 * 1024 * 1024) + b"]")
    assert len(bomb) < 64 * 1024
    res = client.post(
        "/submit",
        data=bomb,
        headers={
            **basic(HOST, token),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert res.status_code == 413


def test_default_limit_fits_a_full_osquery_batch(shared):
    client, token = shared
    """osquery sends up to 1024 lines per request; the default limit takes a full batch."""
    lines = [
        osquery_line(
            HOST,
            name="apps",
            columns={
                "path": f"/Applications/App{i}.app",
                "bundle_version": "1.0." + str(i),
                "info": "i" * 4000,
            },
        )
        for i in range(1024)
    ]
    assert len(json.dumps(lines)) > 2 * 1024 * 1024
    res = client.post("/submit", json=lines, headers=basic(HOST, token))
    assert res.status_code == 200
    assert json.loads(res.data)["processed_count"] == 1024


def test_every_gzip_member_is_stored(client, es, prefix):
    token = register(client, HOST)
    first = json.dumps([osquery_line(HOST, counter=1)]).encode()
    second = json.dumps([osquery_line(HOST, counter=2)]).encode()
    # two members: the JSON arrays join into "[...][...]", which is not one JSON value
    res = client.post(
        "/submit",
        data=gzip.compress(first) + gzip.compress(second),
        headers={**basic(HOST, token), "Content-Encoding": "gzip"},
    )
    assert res.status_code == 400
    body = json.dumps([osquery_line(HOST, counter=1), osquery_line(HOST, counter=2)]).encode()
    half = len(body) // 2
    res = client.post(
        "/submit",
        data=gzip.compress(body[:half]) + gzip.compress(body[half:]),
        headers={**basic(HOST, token), "Content-Encoding": "gzip"},
    )
    assert res.status_code == 200, res.data
    assert json.loads(res.data)["stored_count"] == 2
    from .helpers import stored

    assert sorted(h["_source"]["data"]["counter"] for h in stored(es, prefix)) == [1, 2]
    res = client.post(
        "/submit",
        data=gzip.compress(body) + b"trailing",
        headers={**basic(HOST, token), "Content-Encoding": "gzip"},
    )
    assert res.status_code == 400
