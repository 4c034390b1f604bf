"""`make dev`: a test Elasticsearch node + the gateway on http://127.0.0.1:5000.

Runs in the foreground; prints ``ES_URL=http://127.0.0.1:<port>`` (where the node listens)
so you can look at what was stored, e.g. ``curl "$ES_URL/flock-results-*/_search?pretty"``.
Ctrl-C stops both. Env: FLOCK_ES_URL (reuse a running node instead), PORT (default 5000),
HOST (default 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator

from flock_testinfra.esnode import node_url

from flock_gateway.app import create_app
from flock_gateway.config import load_config
from flock_gateway.indices import IndexNames
from flock_gateway.storage.client import make_client
from flock_gateway.storage.templates import setup_storage


@contextlib.contextmanager
def es_url() -> Iterator[str]:
    print("starting the test Elasticsearch node (the first run builds it)...", file=sys.stderr)
    with node_url(prefix="flock-dev-es-") as url:
        yield url


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        with es_url() as url:
            print(f"ES_URL={url}", flush=True)
            env = {k: v for k, v in os.environ.items() if k != "FLOCK_CONFIG"}
            env["FLOCK_ES_HOSTS"] = url
            cfg = load_config(env=env)
            report = setup_storage(make_client(cfg), IndexNames(cfg.index_prefix))
            print(f"storage: {json.dumps(report['templates'])}", file=sys.stderr)
            app = create_app(cfg)
            print(f"gateway: http://{host}:{port}  (try the README's curl examples; Ctrl-C stops)",
                  flush=True)  # fmt: skip
            app.run(host=host, port=port, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
