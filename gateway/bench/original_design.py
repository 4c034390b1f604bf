"""A stand-in for the original Flock server's design, for the benchmark's baseline only.

Not the original's code (which this repository does not carry) and not a gateway: the
smallest Flask app with the original's request path, so that its cost can be measured
beside the gateway's under the same gunicorn settings, on the same node, with the same
agents and bodies:

  * ``POST /register`` stores the agent's token in an index of its own;
  * ``POST /submit`` authenticates with one search for the username and token (the
    original used an analysed ``match`` query; here a ``match`` as well), then indexes
    each row with one ``index`` call.

It answers ``{"error": false, "stored_count": N}`` (the original answered without the
count; the load generator needs it). Run by bench_submit.py under gunicorn:
``gunicorn 'original_design:create_app()'`` with ``ORIGINAL_ES_URL`` and
``ORIGINAL_INDEX`` set.
"""

from __future__ import annotations

import os
import secrets

from elasticsearch import Elasticsearch
from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue


def create_app() -> Flask:
    es = Elasticsearch(os.environ["ORIGINAL_ES_URL"], request_timeout=60)
    index = os.environ["ORIGINAL_INDEX"]
    agents = f"{index}-agents"
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(error=False)

    @app.post("/register")
    def register() -> ResponseReturnValue:
        username = (request.get_json(silent=True) or request.form)["username"]
        token = secrets.token_hex(16)
        es.index(index=agents, document={"username": username, "auth_token": token}, refresh=True)
        return jsonify(auth_token=token, error=False)

    @app.post("/submit")
    def submit() -> ResponseReturnValue:
        auth = request.authorization
        if auth is None:
            abort(401)
        hits = es.search(
            index=agents,
            size=1,
            query={
                "bool": {
                    "must": [
                        {"match": {"username": auth.username}},
                        {"match": {"auth_token": auth.password}},
                    ]
                }
            },
        )["hits"]["hits"]
        if not hits:
            abort(401)
        data = request.get_json()
        rows = data if isinstance(data, list) else [data]
        for row in rows:
            es.index(index=index, document=row)
        return jsonify(error=False, stored_count=len(rows))

    return app
