"""Bounded cost before authentication: what a request without valid credentials gets,
and that the gateway refuses it before it inflates or parses the whole body.

The refusals here are answers a stranger can provoke; the point of each test is that the
answer comes from the credential alone (a body that is broken or huge past the key is
still refused as unauthenticated, not read), while every valid body works as before.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest

from flock_gateway import accelerator, rows
from flock_gateway.api import osquery as osquery_api
from flock_gateway.app import create_app
from flock_gateway.config import Config

from .test_osquery import SECRET, UUID, enroll, post, result_line

UNKNOWN = "nobody-here:" + "0" * 32
SMALL = 64 * 1024
HEADERS = {"Content-Type": "application/json"}
GZIP = {**HEADERS, "Content-Encoding": "gzip"}


@pytest.fixture
def pconfig(es_url, prefix):
    return Config(
        es_hosts=(es_url,),
        index_prefix=prefix,
        enroll_secrets=(SECRET,),
        register_requires_secret=False,
        max_body_bytes=4 * 1024 * 1024,
        max_decompressed_bytes=8 * 1024 * 1024,
        max_small_body_bytes=SMALL,
    )


@pytest.fixture
def pclient(pconfig, storage):
    return create_app(pconfig).test_client()


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """Every parse of a whole osquery body, by which parser."""
    calls: list[str] = []

    def recorded(name, original):
        def parse(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(*args, **kwargs)

        return parse

    monkeypatch.setattr(rows, "parse_object", recorded("python", rows.parse_object))
    monkeypatch.setattr(osquery_api, "parse_object", recorded("python", osquery_api.parse_object))
    monkeypatch.setattr(accelerator, "parse", recorded("compiled", accelerator.parse))
    return calls


def node_key(client) -> str:
    return enroll(client)["node_key"]


def log_body(key: str, lines: list[dict[str, Any]], *, key_first: bool) -> bytes:
    """A log body in the member order osquery writes: node_key first when compressed,
    last when not."""
    if key_first:
        return json.dumps({"node_key": key, "log_type": "result", "data": lines}).encode()
    return json.dumps({"data": lines, "log_type": "result", "node_key": key}).encode()


def answer(res) -> Any:
    return json.loads(res.data)


# osquery's own bodies work, in both of its member orders


@pytest.mark.parametrize("compressed", [True, False])
def test_osquery_log_bodies_in_osquery_member_order_are_stored(pclient, compressed):
    key = node_key(pclient)
    lines = [result_line("os_version", columns={"n": str(i)}) for i in range(50)]
    body = log_body(key, lines, key_first=compressed)
    res = pclient.post(
        "/osquery/log",
        data=gzip.compress(body) if compressed else body,
        headers=GZIP if compressed else HEADERS,
    )
    assert res.status_code == 200
    assert answer(res)["stored_count"] == 50
    assert answer(res)["node_invalid"] is False


# strangers are refused on the key alone


@pytest.mark.parametrize("key_first", [True, False])
def test_an_unknown_node_key_is_refused_without_parsing_the_body(pclient, parses, key_first):
    lines = [result_line("os_version")] * 200
    body = log_body(UNKNOWN, lines, key_first=key_first)
    res = pclient.post("/osquery/log", data=body, headers=HEADERS)
    assert res.status_code == 200
    assert answer(res) == {"node_invalid": True}
    assert parses == []


def test_a_body_broken_past_an_unknown_key_is_refused_as_unauthenticated(pclient, parses):
    broken = b'{"node_key": "%s", "log_type": "result", "data": [{"x": nonsense' % (
        UNKNOWN.encode()
    )
    res = pclient.post("/osquery/log", data=broken, headers=HEADERS)
    assert answer(res) == {"node_invalid": True}
    res = pclient.post("/osquery/config", data=broken, headers=HEADERS)
    assert answer(res) == {"node_invalid": True}
    assert parses == []
    # with a valid key, the same body is the parser's to refuse
    key = node_key(pclient)
    mine = broken.replace(UNKNOWN.encode(), key.encode())
    res = pclient.post("/osquery/log", data=mine, headers=HEADERS)
    assert res.status_code == 400
    assert answer(res) == {"error": True, "error_msg": "Invalid JSON object"}


def test_a_gzip_bomb_behind_an_unknown_key_is_not_inflated(pclient, parses):
    # inflates to 10 MiB, beyond max_decompressed_bytes (8 MiB)
    bomb = gzip.compress(
        b'{"node_key": "%s", "log_type": "result", "data": [' % UNKNOWN.encode()
        + b"[]," * (10 * 1024 * 1024 // 3)
        + b"[]]}"
    )
    res = pclient.post("/osquery/log", data=bomb, headers=GZIP)
    assert answer(res) == {"node_invalid": True}
    assert parses == []
    # an enrolled host's over-large body is a 413, as before
    key = node_key(pclient)
    mine = gzip.compress(gzip.decompress(bomb).replace(UNKNOWN.encode(), key.encode()))
    res = pclient.post("/osquery/log", data=mine, headers=GZIP)
    assert res.status_code == 413
    assert answer(res)["error_msg"] == "Decompressed request body is too large"


def test_a_wrong_enroll_secret_is_refused_without_parsing_the_body(pclient, parses):
    body = b'{"enroll_secret": "not-the-secret-at-all", "host_identifier": "x", "d": [nonsense'
    res = pclient.post("/osquery/enroll", data=body, headers=HEADERS)
    assert answer(res) == {"node_invalid": True}
    assert parses == []


def test_the_parsed_body_decides_when_a_key_is_given_twice(pclient):
    key = node_key(pclient)
    lines = json.dumps([result_line("os_version")]).encode()
    for first, last in ((key, UNKNOWN), (UNKNOWN, key)):
        body = b'{"node_key": "%s", "log_type": "result", "data": %s, "node_key": "%s"}' % (
            first.encode(),
            lines,
            last.encode(),
        )
        res = pclient.post("/osquery/log", data=body, headers=HEADERS)
        assert answer(res) == {"node_invalid": True}, (first, last)


def test_a_key_no_scan_can_place_needs_a_small_body(pclient):
    key = node_key(pclient)
    lines = [result_line("os_version")]

    def hidden(lines: list[dict[str, Any]]) -> bytes:
        # node_key between two nested values
        body = {"log_type": "result", "data": lines, "node_key": key, "x": {"y": 1}}
        return json.dumps(body).encode()

    # a small body is parsed and authenticated as before (x is ignored)
    body = hidden(lines)
    assert len(body) <= SMALL
    res = pclient.post("/osquery/log", data=body, headers=HEADERS)
    assert answer(res)["node_invalid"] is False
    assert answer(res)["stored_count"] == 1
    # a larger one is refused before it is parsed
    big = hidden([result_line("os_version", columns={"n": str(i)}) for i in range(2000)])
    assert len(big) > SMALL
    res = pclient.post("/osquery/log", data=big, headers=HEADERS)
    assert res.status_code == 400
    assert answer(res) == {
        "error": True,
        "error_msg": f"node_key must be the first or the last member of a body over {SMALL} bytes",
    }


def test_gzip_members_are_capped(pclient):
    key = node_key(pclient)
    text = log_body(key, [result_line("os_version")], key_first=True)
    members = [gzip.compress(text[i : i + 4]) for i in range(0, len(text), 4)]
    assert len(members) > 64
    res = pclient.post("/osquery/log", data=b"".join(members), headers=GZIP)
    assert res.status_code == 400
    assert answer(res) == {
        "error": True,
        "error_msg": "Request body has more than 64 gzip members",
    }
    # a few members are read as one body, as gunzip reads them
    third = len(text) // 3 + 1
    few = [gzip.compress(text[i : i + third]) for i in range(0, len(text), third)]
    res = pclient.post("/osquery/log", data=b"".join(few), headers=GZIP)
    assert answer(res)["stored_count"] == 1


# endpoints that need a few KB take no more


TOO_LARGE = {"error": True, "error_msg": "Request body is too large"}


@pytest.mark.parametrize("path", ["/register", "/osquery/enroll", "/osquery/config"])
def test_small_endpoints_refuse_a_body_over_max_small_body_bytes(pclient, parses, path):
    body = json.dumps({"enroll_secret": SECRET, "username": "x", "pad": "p" * SMALL}).encode()
    res = pclient.post(path, data=body, headers=HEADERS)
    assert res.status_code == 413
    assert answer(res) == TOO_LARGE
    # the same without Content-Length (chunked)
    chunked = {"wsgi.input_terminated": True}
    res = pclient.post(
        path, input_stream=io.BytesIO(body), headers=HEADERS, environ_overrides=chunked
    )
    assert res.status_code == 413
    assert answer(res) == TOO_LARGE
    assert parses == []


@pytest.mark.parametrize("path", ["/osquery/enroll", "/osquery/config"])
def test_small_endpoints_inflate_no_more_than_max_small_body_bytes(pclient, path):
    body = json.dumps({"enroll_secret": SECRET, "pad": "p" * SMALL}).encode()
    res = pclient.post(path, data=gzip.compress(body), headers=GZIP)
    assert res.status_code == 413
    assert answer(res) == {"error": True, "error_msg": "Decompressed request body is too large"}


def test_small_endpoints_take_what_fits(pclient):
    details = {"system_info": {"hostname": "h"}, "pad": {"p": "p" * (SMALL - 1024)}}
    enrolment = {"enroll_secret": SECRET, "host_identifier": UUID, "host_details": details}
    res, body = post(pclient, "/osquery/enroll", enrolment)
    assert res.status_code == 200
    assert body["node_invalid"] is False
    res, config = post(pclient, "/osquery/config", {"node_key": body["node_key"]})
    assert config["node_invalid"] is False
    res = pclient.post("/register", json={"username": "small-ok", "name": "n" * 200})
    assert res.status_code == 200
