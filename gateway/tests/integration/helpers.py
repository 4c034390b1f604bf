from __future__ import annotations

import base64
import json
import time
from typing import Any

from elasticsearch import Elasticsearch

# the osquery tests' enrollment secrets (the oconfig fixture): current and previous
SECRET = "enroll-secret-current-0123456789"
OLD_SECRET = "enroll-secret-previous-987654321"


def basic(username: str, token: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{username}:{token}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def register(client, username: str, name: str | None = None) -> str:
    """Register the way Flock agent does (JSON body) and return the token."""
    body: dict[str, Any] = {"username": username}
    if name is not None:
        body["name"] = name
    res = client.post("/register", json=body)
    assert res.status_code == 200, res.data
    data = json.loads(res.data)
    assert data["error"] is False
    return data["auth_token"]


def submit(client, username: str, token: str, data: Any, path: str = "/submit"):
    return client.post(
        path,
        data=json.dumps(data),
        headers={**basic(username, token), "Content-Type": "application/json"},
    )


def stored(es: Elasticsearch, prefix: str, kind: str = "results", query=None) -> list[dict]:
    pattern = f"{prefix}-{kind}-*"
    es.indices.refresh(index=pattern, allow_no_indices=True, expand_wildcards="all")
    resp = es.search(
        index=pattern,
        query=query or {"match_all": {}},
        size=10_000,
        allow_no_indices=True,
        sort=["_doc"],
    )
    return list(resp["hits"]["hits"])


def osquery_line(host: str, name: str = "os_version", **kw: Any) -> dict[str, Any]:
    """An osquery differential result line as osqueryd writes it (filesystem/TLS logger)."""
    unix = int(time.time()) - 3600
    line = {
        "name": name,
        "hostIdentifier": host,
        "calendarTime": time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(unix)),
        "unixTime": unix,
        "epoch": 0,
        "counter": 0,
        "numerics": False,
        "decorations": {"username": "nick"},
        "columns": {"name": "macOS", "version": "14.1", "major": "14", "minor": "1"},
        "action": "added",
    }
    line.update(kw)
    return line
