"""Probe messages for credentials problems.

The open Elasticsearch test node has no security module, so it can never answer 401/403.
These two cases use a STAND-IN: a local HTTP server answering exactly what Elasticsearch
with security enabled answers to bad credentials / missing privileges. Reachability and
the missing-registry case are tested against the real node (tests/integration)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flock_gateway.app import create_app
from flock_gateway.config import Config
from flock_gateway.storage.client import make_client, probe

SECURITY_401 = {
    "error": {
        "root_cause": [{"type": "security_exception", "reason": "unable to authenticate user"}],
        "type": "security_exception",
        "reason": "unable to authenticate user [flock_gateway] for REST request [/flock-agents]",
    },
    "status": 401,
}
SECURITY_403 = {
    "error": {
        "type": "security_exception",
        "reason": "action [indices:data/read/get] is unauthorized for user [flock_gateway]",
    },
    "status": 403,
}


def standin(status: int, body: dict):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="security"')
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize(
    ("status", "body", "match"),
    [
        (401, SECURITY_401, r"rejected the gateway's credentials \(401\)"),
        (403, SECURITY_403, r"denied access to 'flock-agents' \(403\)"),
    ],
)
def test_credentials_problems_are_explained(status, body, match):
    server = standin(status, body)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        cfg = Config(es_hosts=(url,), es_username="flock_gateway", es_password="wrong",
                     es_max_retries=0)  # fmt: skip
        result = probe(make_client(cfg), cfg, "flock-agents")
        assert not result.ok
        assert result.message.startswith(f"Elasticsearch at {url} ")
        assert re.search(match, result.message)
        assert "wrong" not in result.message
        # the gateway starts, and is not ready for the same reason
        app = create_app(cfg)
        assert app.extensions["flock"].readiness.result == result
        res = app.test_client().get("/readyz")
        assert res.status_code == 503
        assert "wrong" not in res.text
    finally:
        server.shutdown()
