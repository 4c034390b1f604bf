"""gunicorn and Flask alone: the floor under the gateway's CPU per request, for the benchmark.

Not a gateway: the smallest Flask app that does what any server of ``/submit`` must do
with a request, read and parse its body and answer in JSON, and nothing else (no
authentication, no checks, no storage). Run by bench_submit.py under gunicorn with the
gateway role's own configuration (same worker class, workers and threads), and sent the
same requests as the gateway, its CPU per request is what serving HTTP through gunicorn
and Flask costs on the machine; the gateway's own work is what it spends above that.

    gunicorn --config <the role's gunicorn.conf.py> 'framework_floor:create_app()'
"""

from __future__ import annotations

import orjson
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(error=False)

    @app.post("/submit")
    def submit() -> ResponseReturnValue:
        data = orjson.loads(request.get_data())
        rows = len(data) if isinstance(data, list) else 1
        return jsonify(error=False, processed_count=rows, stored_count=rows)

    return app
