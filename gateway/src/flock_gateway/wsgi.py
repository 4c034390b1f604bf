"""WSGI entry point for gunicorn: ``gunicorn flock_gateway.wsgi:app``.

Configuration comes from the environment (FLOCK_*) and/or FLOCK_CONFIG. When
Elasticsearch cannot be used the worker exits with a one-line explanation on stderr and
status 3, which makes gunicorn stop ("Worker failed to boot") instead of serving errors.
"""

from __future__ import annotations

import gc
import sys

from . import server_errors
from .app import CannotStart, create_app
from .config import ConfigError

server_errors.install()

try:
    app = create_app()
except (ConfigError, CannotStart) as exc:
    print(f"flock-gateway: cannot start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(3) from None

# A request's rows are many short-lived, acyclic objects that reference counting frees.
# At Python's default threshold (a collection every 700 net allocations) the cycle
# collector ran several times per large request and moved the rows of requests in
# flight into the older generations, whose collections then walked them again: about a
# tenth of the CPU per row. What the app holds for good (modules, config, schedule) is
# frozen out of collections altogether.
gc.freeze()
gc.set_threshold(50_000, 10, 10)
