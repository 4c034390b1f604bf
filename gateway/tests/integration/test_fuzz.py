"""Seeded fuzzing of every endpoint against the real node: while Elasticsearch is healthy,
no input is answered with a 5xx (a 503 would make an agent resend the same batch forever),
and every answer is the JSON error shape.

10,000 requests, each a valid request of one endpoint with one to three mutations drawn
from the classes the gateway must survive: broken JSON and encodings, wrong types, numbers
storage cannot take, forged gateway fields, expansion bombs, deep nesting, odd key
spellings, gzip tricks, bad credentials. Set FLOCK_FUZZ_SEED to replay another sequence;
the seed and the status counts are printed.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
import time
import zlib
from collections import Counter
from typing import Any

import pytest

from flock_gateway.app import create_app
from flock_gateway.config import Config

from .helpers import osquery_line

CASES = 10_000
ENDPOINTS = (
    ("submit",) * 3
    + ("logs",) * 3
    + ("osquery_log",) * 3
    + ("config",) * 2
    + (
        "enroll",
        "register",
    )
)
SECRET = "enroll-secret-fuzzing-0123456789"
HOST = "fuzz-host"
OSQ = "6A5B4C3D-2E1F-4A9B-8C7D-6E5F4A3B2C1D"


# inflates past max_decompressed_bytes (8 MiB here); built once
BOMB = gzip.compress(b"[" + b" " * 9_000_000 + b"]")


def _basic(username: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()}


WEIRD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**63,
    2**64,
    -(2**64),
    10**30,
    1e308,
    1.5,
    "",
    " ",
    "\u0000",
    "\ud800",
    "é" * 300,
    "x" * 40_000,
    [],
    [1, [2, [3]]],
    {},
    {"a": {"b": {"c": 1}}},
    "9" * 1200,
    "Infinity",
]
WEIRD_KEYS = [
    "flock.username",
    "flock",
    "@timestamp",
    "_id",
    "_source",
    "",
    " ",
    ".",
    "a..b",
    "a.",
    ".a",
    "flock\u002eusername",
    "x" * 300,
    "\ud800",
    "columns.flock.username",
    "data",
    "data.columns.name",
]


class Fuzzer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def value(self) -> Any:
        return self.rng.choice(WEIRD_VALUES)

    def mutate_obj(self, obj: Any, depth: int = 0) -> Any:
        """One random structural change somewhere in a JSON value."""
        r = self.rng
        if isinstance(obj, dict) and obj and depth < 4 and r.random() < 0.5:
            key = r.choice(list(obj))
            return {**obj, key: self.mutate_obj(obj[key], depth + 1)}
        if isinstance(obj, list) and obj and depth < 4 and r.random() < 0.5:
            i = r.randrange(len(obj))
            return [*obj[:i], self.mutate_obj(obj[i], depth + 1), *obj[i + 1 :]]
        choice = r.randrange(8)
        if choice == 0 and isinstance(obj, dict):
            return {**obj, r.choice(WEIRD_KEYS): self.value()}
        if choice == 1 and isinstance(obj, dict) and obj:
            out = dict(obj)
            del out[r.choice(list(out))]
            return out
        if choice == 2 and isinstance(obj, list):
            return obj * r.choice((0, 2, 50))
        if choice == 3:
            nested: Any = "x"
            for _ in range(r.choice((5, 9, 30))):
                nested = r.choice(([nested], {"k": nested}))
            return nested
        if choice == 4 and isinstance(obj, dict):
            return {**obj, "snapshot": [{}] * r.choice((1, 1000, 30_000))}
        if choice == 5 and isinstance(obj, dict):
            return {**obj, "columns": {f"c{i}": "v" for i in range(r.choice((10, 999, 1001)))}}
        return self.value()

    def mutate_bytes(self, body: bytes) -> bytes:
        r = self.rng
        choice = r.randrange(7)
        if choice == 0 and body:
            return body[: r.randrange(len(body))]
        if choice == 1 and body:
            i = r.randrange(len(body))
            return body[:i] + bytes([r.randrange(256)]) + body[i + 1 :]
        if choice == 2:
            return body.replace(b"1", b"1e309", 1)
        if choice == 3:
            return body + r.choice((b"x", b"]", b"\x00", b" " * 10))
        if choice == 4:
            text = body.decode("utf-8", "replace")
            return text.encode(r.choice(("utf-16", "latin-1")), "replace")
        if choice == 5:
            return body.replace(b'"', b"'", 1)
        return b"[" * r.choice((10, 1000, 100_000))


def _flock_body(rng: random.Random) -> Any:
    return [osquery_line(HOST, counter=rng.randrange(10**6)) for _ in range(rng.randint(1, 3))]


def _log_body(rng: random.Random) -> Any:
    now = int(time.time() * 1000)
    return [{"type": "server_enabled", "timestamp": now - rng.randrange(10**6)}]


def _encode(fz: Fuzzer, body: bytes, headers: dict[str, str]) -> bytes:
    r = fz.rng
    choice = r.randrange(10)
    if choice == 0:
        headers["Content-Encoding"] = "gzip"
        return gzip.compress(body) + r.choice((b"", b"junk", gzip.compress(b"]")))
    if choice == 1:
        headers["Content-Encoding"] = r.choice(("deflate", "br", "gzip, gzip", "identity"))
        return zlib.compress(body) if headers["Content-Encoding"] == "deflate" else body
    if choice == 2 and r.random() < 0.1:
        headers["Content-Encoding"] = "gzip"
        return BOMB
    return body


@pytest.fixture
def fuzz_client(es_url, prefix, storage):
    config = Config(
        es_hosts=(es_url,),
        index_prefix=prefix,
        enroll_secrets=(SECRET,),
        register_requires_secret=False,
        max_body_bytes=4 * 1024 * 1024,
        max_decompressed_bytes=8 * 1024 * 1024,
        log_level="WARNING",  # 10,000 access log lines would cost more than the requests
        bulk_linger_ms=0,  # one client: nothing to wait for
    )
    client = create_app(config).test_client()
    res = client.post("/register", json={"username": HOST})
    token = json.loads(res.data)["auth_token"]
    res = client.post("/osquery/enroll", json={"enroll_secret": SECRET, "host_identifier": OSQ})
    node_key = json.loads(res.data)["node_key"]
    return client, token, node_key


def test_no_input_gets_a_5xx_while_storage_is_healthy(fuzz_client):
    client, token, node_key = fuzz_client
    seed = int(os.environ.get("FLOCK_FUZZ_SEED", "20261130"))
    rng = random.Random(seed)  # noqa: S311 - reproducible test inputs, not secrets
    fz = Fuzzer(rng)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    started = time.perf_counter()
    for case in range(CASES):
        # registering and enrolling are writes even when valid: fewer of them keep the
        # run short without losing a kind of input
        endpoint = rng.choice(ENDPOINTS)
        headers = {"Content-Type": "application/json"}
        if endpoint == "submit":
            path, obj = "/submit", _flock_body(rng)
            headers.update(_basic(HOST, token))
        elif endpoint == "logs":
            path, obj = "/submit_flock_logs", _log_body(rng)
            headers.update(_basic(HOST, token))
        elif endpoint == "osquery_log":
            lines = [osquery_line(OSQ, counter=rng.randrange(10**6))]
            kind = rng.choice(("result", "status"))
            path, obj = "/osquery/log", {"node_key": node_key, "log_type": kind, "data": lines}
        elif endpoint == "enroll":
            path, obj = "/osquery/enroll", {"enroll_secret": SECRET, "host_identifier": OSQ}
        elif endpoint == "config":
            path, obj = "/osquery/config", {"node_key": node_key}
        else:
            path, obj = "/register", {"username": f"fz{case}", "name": "Fuzz"}
        for _ in range(rng.randint(1, 3)):
            obj = fz.mutate_obj(obj)
        try:
            body = json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        except (ValueError, OverflowError):
            body = b"{}"
        if rng.random() < 0.3:
            body = fz.mutate_bytes(body)
        if rng.random() < 0.05:
            headers["Authorization"] = rng.choice(
                ("Basic !!!", "Bearer x", "Basic " + base64.b64encode(b"__x:y").decode(), "")
            )
        body = _encode(fz, body, headers)
        res = client.post(path, data=body, headers=headers)
        statuses[res.status_code] += 1
        if res.status_code >= 500 or res.mimetype != "application/json":
            failures.append(f"case {case} {path} -> {res.status_code} {res.data[:200]!r}")
        elif res.status_code != 200 and json.loads(res.data).get("error") is not True:
            failures.append(f"case {case} {path} -> {res.status_code} without the error shape")
    elapsed = time.perf_counter() - started
    counts = dict(sorted(statuses.items()))
    print(f"fuzz seed={seed} cases={CASES} in {elapsed:.1f}s statuses={counts}")
    assert failures == []
    assert statuses[200] > CASES // 20  # the mutations leave enough valid requests to store
    assert len(statuses) >= 4  # and enough invalid ones of several kinds
